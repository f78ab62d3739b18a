//! userauth: a small user-authentication service. One binary is both the operator's CLI and the
//! HTTP server; all behaviour lives in [`service`], which the CLI and the API call.

pub mod api;
pub mod cli;
pub mod config;
pub mod config_keys;
pub mod entity;
pub mod logging;
pub mod service;
