//! The rules of api.md §3 as configured: password rules, timeouts, throttle windows, the hashing
//! queue's bounds and what the service records.

use std::time::Duration;

use super::domain::{Password, PasswordError};
use super::{mail, password_policy, verification};

/// The rules of api.md §3, as configured.
#[derive(Debug, Clone)]
pub struct Policy {
    pub bcrypt_cost: u32,
    pub password_min_length: usize,
    pub session_idle_timeout: Duration,
    pub session_absolute_timeout: Duration,
    pub reset_token_ttl: Duration,
    pub login_max_failures: u32,
    pub login_failure_window: Duration,
    pub reset_max_requests: u32,
    pub reset_window: Duration,
    /// How many bcrypt computations may run at once.
    pub hash_concurrency: usize,
    /// How many requests may wait for one of them.
    pub hash_queue_max: usize,
    pub reset_delivery: mail::ResetDelivery,
    /// Whether per-client limits are on (`client_rate_per_minute > 0`).
    pub client_limits: bool,
    /// Whether account events are written to the audit log.
    pub audit: bool,
    pub audit_retention: Duration,
    /// The operator's common-password list (api.md §13); the built-in list is always on.
    pub blocklist: password_policy::Blocklist,
    pub email_verification: verification::EmailVerification,
    pub verification_ttl: Duration,
    /// How long a pending login (password right, second factor owed) lives (api.md §10).
    pub second_factor_timeout: Duration,
}

impl Policy {
    pub fn parse_password(&self, raw: impl Into<String>) -> Result<Password, PasswordError> {
        Password::parse(raw.into(), self.password_min_length)
    }

    /// A password about to be *set* for the account `email`: the length rules, then the common
    /// passwords and the email itself (api.md §13). Existing hashes are never re-checked.
    pub fn parse_new_password(&self, raw: impl Into<String>, email: &str) -> Result<Password, PasswordError> {
        let password = self.parse_password(raw)?;
        if self.blocklist.refuses(password.expose(), email) {
            return Err(PasswordError::TooCommon);
        }
        Ok(password)
    }

    /// `last_seen_at` is written at most this often per session, so that resolving a session is
    /// normally a read. A tenth of the idle timeout keeps the idle expiry accurate to 10%.
    pub(super) fn touch_interval(&self) -> Duration {
        (self.session_idle_timeout / 10).min(Duration::from_secs(60))
    }
}
