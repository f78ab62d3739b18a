//! One integration-test binary (one link step) with a module per area.

mod attack;
mod browser;
mod browser_verify;
mod cli;
mod common;
mod e2e;
mod http;
mod mail;
mod operator;
mod ops;
mod pages;
mod pg;
mod registration;
mod scale;
mod security;
mod selfservice;
mod serverkey;
mod service;
