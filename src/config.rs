//! The one configuration loader: defaults, then `Rocket.toml`, then `ROCKET_*` environment
//! variables, then `DATABASE_URL` / command-line flags. Every command uses it, so the CLI and the
//! server always agree on the database.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};
use serde::{Deserialize, Serialize};

use crate::service::Policy;
use crate::service::db::{DatabaseUrl, DbOptions};
use crate::service::mail::MailSettings;
pub use crate::service::mail::ResetDelivery;

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

/// Rocket's own numeric keys with their inclusive ranges (checked before Rocket sees them: out of
/// range they panic it, as `workers = 0` does, or exhaust memory, as `workers = 100000000` does).
/// `limits.*` bounds every entry of the `limits` table, in bytes.
pub const ROCKET_RANGES: &[(&str, u64, u64)] = &[
    ("workers", 1, 1_024),
    ("max_blocking", 1, 4_096),
    ("keep_alive", 0, 3_600),
    ("shutdown.grace", 0, 3_600),
    ("shutdown.mercy", 0, 3_600),
    ("limits.*", 0, 67_108_864),
];

/// The fewest pool connections that work on PostgreSQL: migrations hold an advisory lock on one
/// connection while applying them on another.
pub const MIN_POSTGRES_CONNECTIONS: u32 = 2;

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
    /// Lets `bcrypt_cost` go below [`MIN_BCRYPT_COST`]. For test suites; never in production.
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
    /// `password_blocklist_file` as read by [`load`]; not a key.
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

/// Values given on the command line (or `DATABASE_URL`); they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(#[from] Box<rocket::figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Configuration ready to use: the figment (handed to Rocket as is), our typed settings, and the
/// database they name.
#[derive(Clone)]
pub struct Loaded {
    pub figment: Figment,
    pub settings: Settings,
    pub db: DbOptions,
}

/// Without the figment: it holds every value as given, secrets included.
impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("settings", &self.settings).field("db", &self.db).finish_non_exhaustive()
    }
}

pub fn load(overrides: &Overrides) -> Result<Loaded, ConfigError> {
    let profile = Profile::from_env_or("ROCKET_PROFILE", rocket::Config::DEFAULT_PROFILE);
    let mut figment = Figment::from(rocket::Config::default())
        .merge(Serialized::defaults(Settings::default()))
        .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global())
        .select(profile);
    if let Some(url) = &overrides.database_url {
        figment = figment.merge(("database_url", url));
    }
    if let Some(address) = overrides.address {
        figment = figment.merge(("address", address));
    }
    if let Some(port) = overrides.port {
        figment = figment.merge(("port", port));
    }
    from_figment(figment)
}

/// Typed settings from a figment, validated.
pub fn from_figment(figment: Figment) -> Result<Loaded, ConfigError> {
    let mut settings: Settings = figment.extract().map_err(named)?;
    validate_rocket(&figment)?;
    settings.validate()?;
    if let Some(path) = &settings.password_blocklist_file {
        settings.blocklist = crate::service::password_policy::Blocklist::read(path).map_err(ConfigError::Invalid)?;
    }
    let db = settings.db_options()?;
    Ok(Loaded { figment, settings, db })
}

/// A figment error led by the key it is about, as the configuration spells it (an environment
/// variable's path is upper case: `ROCKET_KEEP_ALIVE` → `keep_alive`).
fn named(e: rocket::figment::Error) -> ConfigError {
    if e.path.is_empty() {
        return ConfigError::Figment(Box::new(e));
    }
    let key = e.path.join(".").to_lowercase();
    ConfigError::Invalid(format!("{key}: {e}"))
}

/// Rocket's own keys, as Rocket will read them: each must parse (a malformed one is named by
/// figment's error, e.g. `for key "default.log_level"`) and each number must be in [`ROCKET_RANGES`].
fn validate_rocket(figment: &Figment) -> Result<(), ConfigError> {
    // Rocket's defaults under the given values, as `rocket::custom` will see them.
    let config: rocket::Config =
        Figment::from(rocket::Config::default()).merge(figment.clone()).extract().map_err(named)?;
    let limits: std::collections::BTreeMap<String, rocket::data::ByteUnit> =
        if figment.contains("limits") { figment.extract_inner("limits").map_err(named)? } else { Default::default() };
    let mut values: Vec<(String, u64)> = vec![
        ("workers".into(), config.workers as u64),
        ("max_blocking".into(), config.max_blocking as u64),
        ("keep_alive".into(), u64::from(config.keep_alive)),
        ("shutdown.grace".into(), u64::from(config.shutdown.grace)),
        ("shutdown.mercy".into(), u64::from(config.shutdown.mercy)),
    ];
    values.extend(limits.iter().map(|(name, v)| (format!("limits.{name}"), v.as_u64())));
    for (key, value) in values {
        let pattern = if key.starts_with("limits.") { "limits.*" } else { key.as_str() };
        if let Some(&(_, min, max)) = ROCKET_RANGES.iter().find(|(k, ..)| *k == pattern)
            && !(min..=max).contains(&value)
        {
            return Err(ConfigError::Invalid(format!("{key} must be between {min} and {max}, not {value}")));
        }
    }
    if let Some(h) = &config.ip_header
        && (h.as_str().is_empty() || !h.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(ConfigError::Invalid(format!("ip_header {:?} is not an HTTP header name", h.as_str())));
    }
    if figment.contains("temp_dir") {
        let dir = config.temp_dir.relative();
        if !dir.is_dir() {
            return Err(ConfigError::Invalid(format!("temp_dir {} is not a directory", dir.display())));
        }
    }
    Ok(())
}

impl Loaded {
    /// The log level set with Rocket's own `log_level` key, when it was set explicitly
    /// (Rocket's default differs per profile and would otherwise hide request lines in release).
    pub fn explicit_log_level(&self) -> Option<&'static str> {
        let from_default = self.figment.find_metadata("log_level").is_none_or(|m| m.name.contains("Config::default"));
        if from_default {
            return None;
        }
        match self.figment.find_value("log_level").ok()?.as_str()? {
            "off" => Some("off"),
            "critical" => Some("warn"),
            "normal" => Some("info"),
            "debug" => Some("debug"),
            _ => None,
        }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        // Every numeric key against its range, read back from the serialised settings so that a
        // key added to NUMERIC_RANGES cannot be forgotten here.
        let values = serde_json::to_value(self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for &(key, min, max) in NUMERIC_RANGES {
            match values.get(key) {
                Some(serde_json::Value::Null) => {}
                Some(v) => match v.as_u64() {
                    Some(n) if (min..=max).contains(&n) => {}
                    _ => return bad(format!("{key} must be between {min} and {max}, not {v}")),
                },
                None => return bad(format!("{key} is not a known setting")),
            }
        }
        if self.bcrypt_cost < MIN_BCRYPT_COST && !self.allow_weak_bcrypt_cost {
            return bad(format!(
                "bcrypt_cost {} is below the minimum of {MIN_BCRYPT_COST}; weak costs are for tests only \
                 (set allow_weak_bcrypt_cost = true to allow them)",
                self.bcrypt_cost
            ));
        }
        self.origins()?;
        self.forward_auth()?;
        if self.reset_delivery == ResetDelivery::Email {
            for (key, missing) in [("smtp_url", self.smtp_url.is_none()), ("mail_from", self.mail_from.is_none())] {
                if missing {
                    return bad(format!("reset_delivery = \"email\" needs {key}"));
                }
            }
        }
        if self.email_verification == crate::service::verification::EmailVerification::Required {
            for (key, missing) in [("smtp_url", self.smtp_url.is_none()), ("mail_from", self.mail_from.is_none())] {
                if missing {
                    return bad(format!("email_verification = \"required\" needs {key}"));
                }
            }
        }
        // An empty token would make every scrape 401 (or, compared loosely, let anyone in).
        if self.metrics_token.as_ref().is_some_and(|t| t.expose_secret().trim().is_empty()) {
            return bad("metrics_token is empty: set a long random token, or leave it unset".into());
        }
        self.mail_settings()?;
        if let Some(key) = &self.key {
            use secrecy::ExposeSecret;
            crate::service::key::ServerKey::from_base64(key.expose_secret())
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// The mail settings when `smtp_url` and `mail_from` are both set, each parsed (an invalid
    /// one names its key; the URL is shown without its password).
    pub fn mail_settings(&self) -> Result<Option<MailSettings>, ConfigError> {
        let (Some(url), Some(from)) = (&self.smtp_url, &self.mail_from) else { return Ok(None) };
        MailSettings::parse(url.expose_secret(), from, &self.public_base_url())
            .map(Some)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The base of links in emails: `public_url`, or `http://localhost:<port>`.
    pub fn public_base_url(&self) -> String {
        let base = self.public_url.clone().unwrap_or_else(|| format!("http://localhost:{}", self.port));
        base.trim_end_matches('/').to_owned()
    }

    /// `public_url`'s origin and the `allowed_origins`, each parsed; an unparseable one names its key.
    pub fn origins(&self) -> Result<(Option<String>, Vec<String>), ConfigError> {
        let own = match &self.public_url {
            Some(u) => Some(origin_of(u).ok_or_else(|| {
                ConfigError::Invalid(format!("public_url must be an absolute http(s) URL, not {u:?}"))
            })?),
            None => None,
        };
        let allowed = self
            .allowed_origins
            .iter()
            .map(|o| {
                origin_of(o).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "allowed_origins: {o:?} is not an origin like https://app.example.com"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((own, allowed))
    }

    /// `cookie_domain` (lower-cased, without a leading dot) and `allowed_redirect_origins`, each
    /// checked; an invalid one names its key.
    pub fn forward_auth(&self) -> Result<(Option<String>, Vec<String>), ConfigError> {
        let domain = match &self.cookie_domain {
            Some(d) => Some(cookie_domain_of(d).ok_or_else(|| {
                ConfigError::Invalid(format!("cookie_domain must be a host name like example.com, not {d:?}"))
            })?),
            None => None,
        };
        let origins = self
            .allowed_redirect_origins
            .iter()
            .map(|o| {
                origin_of(o).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "allowed_redirect_origins: {o:?} is not an origin like https://app.example.com"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((domain, origins))
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

    /// How to reach the database; `database_url` parsed (and so checked) once.
    pub fn db_options(&self) -> Result<DbOptions, ConfigError> {
        let url = DatabaseUrl::parse(&self.database_url)
            .map_err(|e| ConfigError::Invalid(format!("database_url: {}", crate::service::db::error_text(&e))))?;
        if matches!(url.kind(), crate::service::db::DatabaseKind::Postgres { .. })
            && let Some(n) = self.database_max_connections.filter(|n| *n < MIN_POSTGRES_CONNECTIONS)
        {
            return Err(ConfigError::Invalid(format!(
                "database_max_connections must be at least {MIN_POSTGRES_CONNECTIONS} on PostgreSQL, not {n} \
                 (migrations hold an advisory lock on one connection while applying them on another)"
            )));
        }
        Ok(DbOptions {
            url,
            max_connections: self.database_max_connections,
            connect_timeout: Duration::from_secs(self.database_connect_timeout_secs),
            log_statements: self.database_log_statements,
        })
    }
}

/// The ASCII serialisation of a URL's origin (`https://host[:port]`), for http(s) URLs only.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return None;
    }
    Some(parsed.origin().ascii_serialization())
}

/// A cookie `Domain`: a DNS name (letters, digits, `-`, dots between labels), lower-cased, a
/// leading dot dropped (browsers ignore it). No IP address, port, scheme or path.
pub fn cookie_domain_of(value: &str) -> Option<String> {
    let d = value.trim().trim_start_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let ok = !d.is_empty() && d.len() <= 253 && d.split('.').all(label_ok) && d.parse::<IpAddr>().is_err()
        // The last label of a DNS name is never all digits (that would be an IPv4 address).
        && !d.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contract_ones() {
        let s = from_figment(Figment::from(Serialized::defaults(Settings::default()))).unwrap().settings;
        assert_eq!(s.port, 5000);
        assert_eq!(s.address.to_string(), "0.0.0.0");
        assert_eq!(s.bcrypt_cost, 12);
        assert_eq!(s.password_min_length, 12);
        assert_eq!(s.database_url, "sqlite://userauth.db?mode=rwc");
        assert!(s.classic_routes && !s.cookie_secure);
    }

    #[test]
    fn weak_cost_is_refused_unless_allowed() {
        let weak = Figment::from(Serialized::defaults(Settings::default())).merge(("bcrypt_cost", 4));
        let err = from_figment(weak.clone()).unwrap_err().to_string();
        assert!(err.contains("below the minimum of 10"), "{err}");
        assert!(from_figment(weak.merge(("allow_weak_bcrypt_cost", true))).is_ok());
    }

    fn with(key: &str, value: serde_json::Value) -> Result<Loaded, ConfigError> {
        from_figment(Figment::from(Serialized::defaults(Settings::default())).merge((key, value)))
    }

    #[test]
    fn every_numeric_key_is_bounded_and_named() {
        for &(key, min, max) in NUMERIC_RANGES {
            let weak = ("allow_weak_bcrypt_cost", true);
            let base = || Figment::from(Serialized::defaults(Settings::default())).merge(weak);
            assert!(from_figment(base().merge((key, min))).is_ok(), "{key} = {min}");
            assert!(from_figment(base().merge((key, max))).is_ok(), "{key} = {max}");
            let err = from_figment(base().merge((key, max + 1))).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
            if min > 0 {
                let err = from_figment(base().merge((key, min - 1))).unwrap_err().to_string();
                assert!(err.contains(key), "{key}: {err}");
            }
        }
        let err = with("session_idle_timeout_secs", serde_json::json!(u64::MAX)).unwrap_err().to_string();
        assert!(err.contains("session_idle_timeout_secs"), "{err}");
    }

    #[test]
    fn secrets_are_not_printed_and_an_empty_token_is_refused() {
        let f = Figment::from(Serialized::defaults(Settings::default()))
            .merge(("metrics_token", "s3cret-scrape-token"))
            .merge(("smtp_url", "smtp://mailer:hunter2@mail.example.com:587"))
            .merge(("mail_from", "Accounts <no-reply@example.com>"));
        let loaded = from_figment(f).unwrap();
        for shown in [format!("{:?}", loaded.settings), format!("{loaded:?}"), format!("{:#?}", loaded.settings)] {
            assert!(!shown.contains("s3cret-scrape-token") && !shown.contains("hunter2"), "{shown}");
        }
        let json = serde_json::to_string(&loaded.settings).unwrap();
        assert!(!json.contains("s3cret") && !json.contains("hunter2"), "{json}");
        assert!(loaded.settings.mail_settings().unwrap().is_some(), "the secret is still usable");
        for empty in ["", "   "] {
            let err = with("metrics_token", serde_json::json!(empty)).unwrap_err().to_string();
            assert!(err.contains("metrics_token"), "{err}");
        }
    }

    #[test]
    fn rocket_keys_are_bounded_and_named() {
        let base = || Figment::from(rocket::Config::default()).merge(Serialized::defaults(Settings::default()));
        for &(key, min, max) in ROCKET_RANGES {
            let key = key.replace('*', "json");
            let nested = |v: u64| match key.split_once('.') {
                Some((table, inner)) => (table.to_owned(), serde_json::json!({ inner: v })),
                None => (key.clone(), serde_json::json!(v)),
            };
            let (k, v) = nested(max);
            assert!(from_figment(base().merge((k.as_str(), v))).is_ok(), "{key} = {max}");
            let (k, v) = nested(max + 1);
            let err = from_figment(base().merge((k.as_str(), v))).unwrap_err().to_string();
            assert!(err.contains(&key), "{key}: {err}");
            if min > 0 {
                let (k, v) = nested(min - 1);
                let err = from_figment(base().merge((k.as_str(), v))).unwrap_err().to_string();
                assert!(err.contains(&key), "{key}: {err}");
            }
        }
        for (key, bad) in [
            ("keep_alive", serde_json::json!("soon")),
            ("log_level", serde_json::json!("loud")),
            ("limits", serde_json::json!({"json": "lots"})),
            ("shutdown", serde_json::json!({"grace": "x"})),
            ("workers", serde_json::json!(-1)),
            ("ident", serde_json::json!(7)),
            ("cli_colors", serde_json::json!("sometimes")),
            ("ip_header", serde_json::json!("X Real IP")),
            ("temp_dir", serde_json::json!("/nonexistent/userauth-tmp")),
        ] {
            let err = from_figment(base().merge((key, bad.clone()))).unwrap_err().to_string();
            assert!(err.contains(key), "{key} = {bad}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn postgres_needs_two_connections() {
        let pg = |n: u32| {
            from_figment(
                Figment::from(Serialized::defaults(Settings::default()))
                    .merge(("database_url", "postgres://u@localhost/db"))
                    .merge(("database_max_connections", n)),
            )
        };
        let err = pg(1).unwrap_err().to_string();
        assert!(err.contains("database_max_connections") && err.contains("at least 2"), "{err}");
        assert!(pg(2).is_ok());
        assert!(with("database_max_connections", serde_json::json!(1)).is_ok(), "SQLite works with one");
    }

    #[test]
    fn origins_are_parsed() {
        let l = with("public_url", serde_json::json!("https://Auth.Example.com:443/base/")).unwrap();
        assert_eq!(l.settings.origins().unwrap().0.as_deref(), Some("https://auth.example.com"));
        assert!(
            with("public_url", serde_json::json!("auth.example.com")).unwrap_err().to_string().contains("public_url")
        );
        let err = with("allowed_origins", serde_json::json!(["ftp://x"])).unwrap_err().to_string();
        assert!(err.contains("allowed_origins"), "{err}");
        let err = with("allowed_redirect_origins", serde_json::json!(["app.example.com"])).unwrap_err().to_string();
        assert!(err.contains("allowed_redirect_origins"), "{err}");
        for bad in ["https://example.com", "example.com:443", "", "10.0.0.1", "a..b", "exa mple.com", "-x.com"] {
            let err = with("cookie_domain", serde_json::json!(bad)).unwrap_err().to_string();
            assert!(err.contains("cookie_domain"), "{bad:?}: {err}");
        }
        let l = with("cookie_domain", serde_json::json!(".Example.COM")).unwrap();
        assert_eq!(l.settings.forward_auth().unwrap().0.as_deref(), Some("example.com"));
        let err = with("trusted_proxies", serde_json::json!(["10.0.0.0/33"])).unwrap_err().to_string();
        assert!(err.contains("trusted_proxies"), "{err}");
    }
}
