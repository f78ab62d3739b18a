//! One integration-test binary (one link step) with a module per area.

mod attack;
mod browser;
mod browser_totp;
mod cli;
mod common;
mod e2e;
mod forward;
mod http;
mod mail;
mod operator;
mod ops;
mod pages;
mod pg;
mod scale;
mod second_factor;
mod security;
mod selfservice;
mod service;
