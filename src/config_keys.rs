//! Warnings for configuration keys nobody reads (issue 21): a misspelled `ROCKET_BCRYPT_COSTT` or
//! `bcrypt_costt` in `Rocket.toml` would otherwise be ignored in silence while the default applies.
//! The known keys are ours (every field of [`Settings`]) and Rocket's own (every key of its default
//! configuration), so a key added to either is known without a list to keep up to date.

use rocket::figment::providers::{Env, Format, Toml};
use rocket::figment::{Figment, Profile, Provider};

use crate::config::Settings;

/// Keys Rocket reads that its default configuration does not spell out.
const ROCKET_EXTRA: &[&str] = &["tls", "secret_key", "profile", "config", "mtls"];
/// Our keys that hold secrets: never serialised back, so `Settings::default()` does not show them.
const SECRET_KEYS: &[&str] = &["smtp_url", "metrics_token", "key"];

fn known_keys() -> Vec<String> {
    let mut keys: Vec<String> = ROCKET_EXTRA.iter().chain(SECRET_KEYS).map(|k| (*k).to_owned()).collect();
    if let Ok(serde_json::Value::Object(ours)) = serde_json::to_value(Settings::default()) {
        keys.extend(ours.keys().cloned());
    }
    if let Ok(data) = rocket::Config::default().data() {
        keys.extend(data.values().flat_map(|dict| dict.keys().cloned()));
    }
    keys
}

/// One sentence per key set in `Rocket.toml` (any profile) or a `ROCKET_*` variable that no
/// part of the program reads, naming where it was set and the nearest known key.
pub fn unknown_keys() -> Vec<String> {
    let known = known_keys();
    let file = Env::var_or("ROCKET_CONFIG", "Rocket.toml");
    let sources = [
        (Figment::from(Toml::file(&file).nested()), format!("in {file}")),
        (Figment::from(Env::prefixed("ROCKET_").ignore(&["PROFILE", "CONFIG"])), "in the environment".to_owned()),
    ];
    let mut out = Vec::new();
    for (figment, place) in sources {
        // A file that does not parse is reported by the loader itself.
        let Ok(data) = figment.data() else { continue };
        for (profile, dict) in data {
            for key in dict.keys().filter(|k| !known.contains(k)) {
                let name = if place.starts_with("in the env") {
                    format!("ROCKET_{}", key.to_uppercase())
                } else if profile == Profile::Default || profile == Profile::Global {
                    key.clone()
                } else {
                    format!("[{profile}] {key}")
                };
                let hint = nearest(key, &known).map(|k| format!("; did you mean {k:?}?")).unwrap_or_default();
                out.push(format!("unknown configuration key {name} {place} is ignored{hint}"));
            }
        }
    }
    out
}

/// The known key at most two edits away, if any.
fn nearest<'a>(key: &str, known: &'a [String]) -> Option<&'a String> {
    known.iter().map(|k| (edit_distance(key, k), k)).filter(|(d, _)| *d <= 2).min_by_key(|(d, _)| *d).map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(cur).min(row[j]) };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_cover_ours_and_rockets() {
        let known = known_keys();
        for k in ["bcrypt_cost", "database_url", "port", "workers", "log_level", "limits", "keep_alive"] {
            assert!(known.iter().any(|x| x == k), "{k}");
        }
        assert_eq!(nearest("bcrypt_costt", &known).map(String::as_str), Some("bcrypt_cost"));
        assert_eq!(nearest("completely_else", &known), None);
    }
}
