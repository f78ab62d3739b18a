//! The rules a configuration must follow beyond its types: every number within its range, no weak
//! bcrypt cost, what sending mail needs, and how to reach the database.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::{ConfigError, Settings};
use crate::service::db::{DatabaseKind, DatabaseUrl, DbOptions};
use crate::service::mail::ResetDelivery;
use crate::service::verification::EmailVerification;

/// The lowest bcrypt cost accepted unless `allow_weak_bcrypt_cost` is set (tests only).
pub const MIN_BCRYPT_COST: u32 = 10;

/// Every numeric key with its inclusive range (api.md §6: bounded configuration). The README's
/// configuration table lists the same ranges; a test holds them together. The upper bounds keep
/// every date computation far from overflow and every request's work finite.
pub const NUMERIC_RANGES: &[(&str, u64, u64)] = &[
    ("bcrypt_cost", crate::service::hashing::COST_MIN as u64, crate::service::hashing::COST_MAX as u64),
    ("password_min_length", 1, crate::service::domain::PASSWORD_MAX_BYTES as u64),
    ("session_idle_timeout_secs", 1, 31_536_000),
    ("session_absolute_timeout_secs", 1, 31_536_000),
    ("reset_token_ttl_secs", 1, 604_800),
    ("login_max_failures", 1, 10_000),
    ("login_failure_window_secs", 1, 604_800),
    ("reset_max_requests", 1, 10_000),
    ("reset_window_secs", 1, 604_800),
    ("max_body_bytes", 256, 1_048_576),
    ("database_max_connections", 1, 1_000),
    ("database_connect_timeout_secs", 1, 600),
    ("hash_concurrency", 1, 1_024),
    ("hash_queue_max", 0, 100_000),
    ("client_rate_per_minute", 0, 1_000_000),
    ("audit_retention_days", 1, 36_500),
    ("second_factor_timeout_secs", 1, 86_400),
    ("verification_ttl_secs", 60, 2_592_000),
];

/// The fewest pool connections that work on PostgreSQL: migrations hold an advisory lock on one
/// connection while applying them on another.
pub const MIN_POSTGRES_CONNECTIONS: u32 = 2;

impl Settings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Every numeric key against its range, read back from the serialised settings so that a
        // key added to NUMERIC_RANGES cannot be forgotten here.
        let values = serde_json::to_value(self).map_err(ConfigError::Unreadable)?;
        for &(key, min, max) in NUMERIC_RANGES {
            match values.get(key) {
                Some(serde_json::Value::Null) => {}
                Some(v) => match v.as_u64() {
                    Some(n) if (min..=max).contains(&n) => {}
                    _ => return Err(ConfigError::OutOfRange { key: key.into(), min, max, value: v.to_string() }),
                },
                None => return Err(ConfigError::UnknownNumericKey(key)),
            }
        }
        if self.bcrypt_cost < MIN_BCRYPT_COST && !self.allow_weak_bcrypt_cost {
            return Err(ConfigError::WeakBcryptCost(self.bcrypt_cost));
        }
        self.origins()?;
        self.forward_auth()?;
        if self.reset_delivery == ResetDelivery::Email {
            self.needs_mail("reset_delivery = \"email\"")?;
        }
        if self.email_verification == EmailVerification::Required {
            self.needs_mail("email_verification = \"required\"")?;
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.expose_secret().trim().is_empty()) {
            return Err(ConfigError::EmptyMetricsToken);
        }
        self.mail_settings()?;
        if let Some(key) = &self.key {
            crate::service::key::ServerKey::from_base64(key.expose_secret()).map_err(ConfigError::ServerKey)?;
        }
        Ok(())
    }

    /// `setting` sends mail: both `smtp_url` and `mail_from` must be set.
    fn needs_mail(&self, setting: &'static str) -> Result<(), ConfigError> {
        for (key, missing) in [("smtp_url", self.smtp_url.is_none()), ("mail_from", self.mail_from.is_none())] {
            if missing {
                return Err(ConfigError::NeedsMail { setting, key });
            }
        }
        Ok(())
    }

    /// How to reach the database; `database_url` parsed (and so checked) once.
    pub fn db_options(&self) -> Result<DbOptions, ConfigError> {
        let url = DatabaseUrl::parse(&self.database_url)
            .map_err(|e| ConfigError::DatabaseUrl(crate::service::db::error_text(&e)))?;
        if matches!(url.kind(), DatabaseKind::Postgres { .. })
            && let Some(n) = self.database_max_connections.filter(|n| *n < MIN_POSTGRES_CONNECTIONS)
        {
            return Err(ConfigError::TooFewPostgresConnections(n));
        }
        Ok(DbOptions {
            url,
            max_connections: self.database_max_connections,
            connect_timeout: Duration::from_secs(self.database_connect_timeout_secs),
            log_statements: self.database_log_statements,
        })
    }
}
