//! The one configuration loader: defaults, then `Rocket.toml`, then `ROCKET_*` environment
//! variables, then `DATABASE_URL` / command-line flags. Every command uses it, so the CLI and the
//! server always agree on the database.
//!
//! Here the loading itself; the keys and their defaults in `settings`, the rules in `validate`
//! (ours), `rocket_keys` (Rocket's) and `origins`, the errors in `error`.

mod error;
mod origins;
mod rocket_keys;
mod settings;
mod validate;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};

use crate::service::db::DbOptions;

pub use self::error::ConfigError;
pub use self::origins::{cookie_domain_of, origin_of};
pub use self::rocket_keys::ROCKET_RANGES;
pub use self::settings::{LogFormat, Settings};
pub use self::validate::{MIN_BCRYPT_COST, MIN_POSTGRES_CONNECTIONS, NUMERIC_RANGES};
pub use crate::service::mail::ResetDelivery;

/// Values given on the command line (or `DATABASE_URL`); they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
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
    rocket_keys::validate_rocket(&figment)?;
    settings.validate()?;
    if let Some(path) = &settings.password_blocklist_file {
        // `to_string`: the message as the policy module words it, whatever its error type.
        settings.blocklist = crate::service::password_policy::Blocklist::read(path)?;
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
    ConfigError::Malformed { key: e.path.join(".").to_lowercase(), error: Box::new(e) }
}
