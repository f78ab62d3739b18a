//! One integration-test binary (one link step) with a module per area.

mod attack;
mod browser;
mod browser_first_hour;
mod browser_passkeys;
mod browser_totp;
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
mod passkeys;
mod passkeys_second_factor;
mod pg;
mod scale;
mod second_factor;
mod security;
mod selfservice;
mod serverkey;
mod service;
mod session_read;
