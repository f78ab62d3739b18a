//! SeaORM entities: plain table mappings, nothing web- or CLI-specific.

pub mod audit_event;
pub mod audit_head;
pub mod email_verification_token;
pub mod outbox;
pub mod passkey;
pub mod passkey_challenge;
pub mod pending_login;
pub mod recovery_code;
pub mod reset_token;
pub mod server_key;
pub mod session;
pub mod throttle;
pub mod totp_factor;
pub mod user;
