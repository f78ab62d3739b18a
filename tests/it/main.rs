//! One integration-test binary (one link step) with a module per area.

mod attack;
mod browser;
mod browser_first_hour;
mod browser_totp;
mod browser_verify;
mod cli;
mod common;
mod e2e;
mod first_hour;
mod forward;
mod hardening;
mod http;
mod mail;
mod operator;
mod ops;
mod pages;
mod pg;
mod registration;
mod scale;
mod second_factor;
mod security;
mod selfservice;
mod serverkey;
mod service;
mod session_read;
