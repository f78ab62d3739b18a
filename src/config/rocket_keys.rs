//! Rocket's own keys (`workers`, `limits.*`, `log_level`, …), checked before Rocket sees them:
//! out of range they panic it or exhaust memory, and a malformed one should name its key.

use rocket::figment::Figment;

use super::{ConfigError, Loaded, named};

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

/// Rocket's own keys, as Rocket will read them: each must parse (a malformed one is named by
/// figment's error, e.g. `for key "default.log_level"`) and each number must be in [`ROCKET_RANGES`].
pub(super) fn validate_rocket(figment: &Figment) -> Result<(), ConfigError> {
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
            return Err(ConfigError::OutOfRange { key, min, max, value: value.to_string() });
        }
    }
    if let Some(h) = &config.ip_header
        && (h.as_str().is_empty() || !h.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(ConfigError::IpHeader(h.as_str().to_owned()));
    }
    if figment.contains("temp_dir") {
        let dir = config.temp_dir.relative();
        if !dir.is_dir() {
            return Err(ConfigError::TempDir(dir));
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
