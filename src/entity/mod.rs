//! SeaORM entities: plain table mappings, nothing web- or CLI-specific.

pub mod audit_event;
pub mod audit_head;
pub mod reset_token;
pub mod session;
pub mod throttle;
pub mod user;
pub mod pending_login;
pub mod recovery_code;
pub mod totp_factor;
