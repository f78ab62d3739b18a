//! One integration-test binary (one link step) with a module per area.

mod common;
mod pg;
mod service;
mod http;
mod cli;
mod e2e;
