//! What is wrong with a configuration, one variant per kind of problem. Every message starts with
//! `configuration: ` and names the key it is about: the CLI prints it as its one `error: …` line.

use std::path::PathBuf;

use crate::service::key::KeyError;

use super::{MIN_BCRYPT_COST, MIN_POSTGRES_CONNECTIONS};

// The variants that wrap another error keep it out of `source()` (only `Figment` has one): `main`
// prints the chain on one line, and these messages already say everything.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A figment error that is not about one key (e.g. a file that does not parse).
    #[error("configuration: {0}")]
    Figment(#[from] Box<rocket::figment::Error>),
    /// A value figment could not read as its key's type, led by the key.
    #[error("configuration: {key}: {error}")]
    Malformed { key: String, error: Box<rocket::figment::Error> },
    /// A number outside its key's range (`NUMERIC_RANGES`, `ROCKET_RANGES`).
    #[error("configuration: {key} must be between {min} and {max}, not {value}")]
    OutOfRange { key: String, min: u64, max: u64, value: String },
    /// A key in `NUMERIC_RANGES` that `Settings` does not have (a programming error, caught by tests).
    #[error("configuration: {0} is not a known setting")]
    UnknownNumericKey(&'static str),
    /// The settings could not be read back as JSON to check their ranges.
    #[error("configuration: {0}")]
    Unreadable(serde_json::Error),
    #[error("configuration: ip_header {0:?} is not an HTTP header name")]
    IpHeader(String),
    #[error("configuration: temp_dir {} is not a directory", .0.display())]
    TempDir(PathBuf),
    #[error(
        "configuration: bcrypt_cost {0} is below the minimum of {min}; weak costs are for tests only \
         (set allow_weak_bcrypt_cost = true to allow them)",
        min = MIN_BCRYPT_COST
    )]
    WeakBcryptCost(u32),
    /// A setting that sends mail (`setting` as written, e.g. `reset_delivery = "email"`) without
    /// the mail `key` it needs.
    #[error("configuration: {setting} needs {key}")]
    NeedsMail { setting: &'static str, key: &'static str },
    /// An empty token would make every scrape 401 (or, compared loosely, let anyone in).
    #[error("configuration: metrics_token is empty: set a long random token, or leave it unset")]
    EmptyMetricsToken,
    /// `smtp_url` or `mail_from` does not parse (the message names which).
    #[error("configuration: {0}")]
    Mail(#[from] crate::service::mail::MailSettingsError),
    /// `key` is not a server key.
    #[error("configuration: {0}")]
    ServerKey(KeyError),
    /// `password_blocklist_file` cannot be read.
    #[error("configuration: {0}")]
    Blocklist(#[from] crate::service::password_policy::BlocklistError),
    #[error("configuration: public_url must be an absolute http(s) URL, not {0:?}")]
    PublicUrl(String),
    /// An entry of a list of origins (`allowed_origins`, `allowed_redirect_origins`).
    #[error("configuration: {key}: {value:?} is not an origin like https://app.example.com")]
    NotAnOrigin { key: &'static str, value: String },
    #[error("configuration: cookie_domain must be a host name like example.com, not {0:?}")]
    CookieDomain(String),
    /// `database_url` does not parse (the text says why).
    #[error("configuration: database_url: {0}")]
    DatabaseUrl(String),
    #[error(
        "configuration: database_max_connections must be at least {min} on PostgreSQL, not {0} \
         (migrations hold an advisory lock on one connection while applying them on another)",
        min = MIN_POSTGRES_CONNECTIONS
    )]
    TooFewPostgresConnections(u32),
}
