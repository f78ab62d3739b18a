//! The settings: every key of api.md §5 plus a few operational ones, their secure defaults, and
//! what the rest of the program derives from them (the service's policy, the mail settings, the
//! base of links).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::service::Policy;
use crate::service::mail::{MailSettings, ResetDelivery};

/// Output format of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Every key of api.md §5 plus a few operational ones. Defaults are the secure ones, in every
/// profile: a debug build does not weaken anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub address: IpAddr,
    pub port: u16,
    pub database_url: String,
    pub bcrypt_cost: u32,
    /// Lets `bcrypt_cost` go below [`MIN_BCRYPT_COST`](super::MIN_BCRYPT_COST). For test suites; never in production.
    pub allow_weak_bcrypt_cost: bool,
    pub password_min_length: usize,
    pub session_idle_timeout_secs: u64,
    pub session_absolute_timeout_secs: u64,
    pub reset_token_ttl_secs: u64,
    pub login_max_failures: u32,
    pub login_failure_window_secs: u64,
    pub reset_max_requests: u32,
    pub reset_window_secs: u64,
    pub cookie_secure: bool,
    pub classic_routes: bool,
    /// Whether `POST /api/v1/reset_password` (and the classic equivalent) is mounted. It hands
    /// the token to whoever asks; turn it off where tokens must go out by another channel.
    pub reset_endpoint: bool,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: usize,
    /// `None`: 8 for a SQLite file, 10 for PostgreSQL.
    pub database_max_connections: Option<u32>,
    pub database_connect_timeout_secs: u64,
    pub database_log_statements: bool,
    /// bcrypt computations at once; `None`: the number of CPUs.
    pub hash_concurrency: Option<usize>,
    /// Requests that may wait for a bcrypt slot; beyond it they get 503 `busy` at once.
    pub hash_queue_max: usize,
    /// bcrypt-costing requests per client address per minute, per instance; 0 disables.
    pub client_rate_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed (CIDRs).
    pub trusted_proxies: Vec<IpNet>,
    /// Origins besides our own that may send state-changing requests.
    pub allowed_origins: Vec<String>,
    /// The service's public base URL (its origin, and the base of links).
    pub public_url: Option<String>,
    pub reset_delivery: ResetDelivery,
    /// lettre's URL form: `smtp://host:port` (plain), `?tls=required` (STARTTLS), `smtps://` (TLS).
    /// A secret (it may hold the mail server's password): never printed, never serialised.
    #[serde(skip_serializing)]
    pub smtp_url: Option<SecretString>,
    /// The sender, e.g. `Accounts <no-reply@example.com>`.
    pub mail_from: Option<String>,
    /// Whether the account pages (/login, /register, /account, …) are served.
    pub pages: bool,
    /// Whether `GET /metrics` is served (and events counted).
    pub metrics: bool,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`. A secret: never printed,
    /// never serialised.
    #[serde(skip_serializing)]
    pub metrics_token: Option<SecretString>,
    /// Whether account events are written to the audit log (on by default; off only to measure
    /// what it costs).
    pub audit: bool,
    pub audit_retention_days: u64,
    pub log_format: LogFormat,
    /// The `Domain` of every cookie userauth sets (api.md §12); unset: host-only cookies.
    pub cookie_domain: Option<String>,
    /// Other origins the login page's `next` may lead to (api.md §12).
    pub allowed_redirect_origins: Vec<String>,
    /// How long a login waits for its second factor (api.md §10).
    pub second_factor_timeout_secs: u64,
    /// The server key's file (api.md §14), relative to the working directory.
    pub key_file: std::path::PathBuf,
    /// The server key itself, base64 of 32 bytes; wins over `key_file`. Never printed, never
    /// serialised back.
    #[serde(skip_serializing)]
    pub key: Option<secrecy::SecretString>,
    /// `"off"` or `"required"`: new addresses confirmed by email before their first login (§13).
    pub email_verification: crate::service::verification::EmailVerification,
    pub verification_ttl_secs: u64,
    /// The operator's common passwords, one per line (api.md §13), read at start.
    pub password_blocklist_file: Option<std::path::PathBuf>,
    /// `password_blocklist_file` as read by [`load`](super::load); not a key.
    #[serde(skip)]
    pub blocklist: crate::service::password_policy::Blocklist,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            address: IpAddr::from([0, 0, 0, 0]),
            port: 5000,
            database_url: "sqlite://userauth.db?mode=rwc".into(),
            bcrypt_cost: 12,
            allow_weak_bcrypt_cost: false,
            password_min_length: 12,
            session_idle_timeout_secs: 1800,
            session_absolute_timeout_secs: 86400,
            reset_token_ttl_secs: 900,
            login_max_failures: 10,
            login_failure_window_secs: 900,
            reset_max_requests: 5,
            reset_window_secs: 3600,
            cookie_secure: false,
            classic_routes: true,
            reset_endpoint: true,
            max_body_bytes: 4096,
            database_max_connections: None,
            database_connect_timeout_secs: 5,
            database_log_statements: false,
            hash_concurrency: None,
            hash_queue_max: 64,
            client_rate_per_minute: 30,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            public_url: None,
            reset_delivery: ResetDelivery::Response,
            smtp_url: None,
            mail_from: None,
            pages: true,
            metrics: true,
            metrics_token: None,
            audit: true,
            audit_retention_days: 365,
            log_format: LogFormat::Text,
            cookie_domain: None,
            allowed_redirect_origins: Vec::new(),
            second_factor_timeout_secs: 300,
            key_file: "userauth.key".into(),
            key: None,
            email_verification: crate::service::verification::EmailVerification::Off,
            verification_ttl_secs: 86_400,
            password_blocklist_file: None,
            blocklist: crate::service::password_policy::Blocklist::default(),
        }
    }
}
impl Settings {
    /// The mail settings when `smtp_url` and `mail_from` are both set, each parsed (an invalid
    /// one names its key; the URL is shown without its password).
    pub fn mail_settings(&self) -> Result<Option<MailSettings>, ConfigError> {
        let (Some(url), Some(from)) = (&self.smtp_url, &self.mail_from) else { return Ok(None) };
        Ok(Some(MailSettings::parse(url.expose_secret(), from, &self.public_base_url())?))
    }

    /// The base of links in emails: `public_url`, or `http://localhost:<port>`.
    pub fn public_base_url(&self) -> String {
        let base = self.public_url.clone().unwrap_or_else(|| format!("http://localhost:{}", self.port));
        base.trim_end_matches('/').to_owned()
    }

    pub fn policy(&self) -> Policy {
        let secs = Duration::from_secs;
        Policy {
            bcrypt_cost: self.bcrypt_cost,
            password_min_length: self.password_min_length,
            session_idle_timeout: secs(self.session_idle_timeout_secs),
            session_absolute_timeout: secs(self.session_absolute_timeout_secs),
            reset_token_ttl: secs(self.reset_token_ttl_secs),
            login_max_failures: self.login_max_failures,
            login_failure_window: secs(self.login_failure_window_secs),
            reset_max_requests: self.reset_max_requests,
            reset_window: secs(self.reset_window_secs),
            hash_queue_max: self.hash_queue_max,
            reset_delivery: self.reset_delivery,
            client_limits: self.client_rate_per_minute > 0,
            audit: self.audit,
            audit_retention: secs(self.audit_retention_days.saturating_mul(86_400)),
            blocklist: self.blocklist.clone(),
            email_verification: self.email_verification,
            verification_ttl: secs(self.verification_ttl_secs),
            second_factor_timeout: secs(self.second_factor_timeout_secs),
            hash_concurrency: self
                .hash_concurrency
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
        }
    }
}
