//! The server key from the configuration (api.md §14): `key` (base64) when set, else the file at
//! `key_file`. Every command that opens the database gets its key here and binds it to the
//! database's fingerprint before doing anything else.
//!
//! A missing key file is created (mode 0600) only while the database holds no fingerprint yet —
//! by the first `db-setup` or `serve`, or any command on a database set up before the key
//! existed. Once a database is keyed, a missing file is an error naming the file and the
//! fingerprint it must have: creating a new key then would orphan everything encrypted or keyed
//! with the old one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::service::key::{KeyError, ServerKey};
use crate::service::key_store::{self, Binding};

/// The key as far as the configuration alone tells.
pub enum Configured {
    Key {
        key: ServerKey,
        source: String,
    },
    /// `key` is unset and `key_file` does not exist.
    Missing(PathBuf),
}

/// Reads `key`, or `key_file` when it exists (refusing one that group or others can read).
pub fn configured(settings: &Settings) -> Result<Configured, KeyError> {
    if let Some(text) = &settings.key {
        return Ok(Configured::Key { key: ServerKey::from_base64(text.expose_secret())?, source: "key".into() });
    }
    let path = &settings.key_file;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Configured::Missing(path.clone())),
        _ => Ok(Configured::Key {
            key: ServerKey::load_file(path, false)?,
            source: format!("key file {}", path.display()),
        }),
    }
}

/// The configured key, bound to `db`: created and recorded when neither exists yet; refused
/// (with both fingerprints) when the database was set up with another key.
pub async fn bind(db: &DatabaseConnection, settings: &Settings) -> anyhow::Result<Arc<ServerKey>> {
    let (key, source) = match configured(settings)? {
        Configured::Key { key, source } => (key, source),
        Configured::Missing(path) => match key_store::stored_fingerprint(db).await? {
            Some(stored) => bail!(
                "key file {} does not exist, and this database was set up with the server key whose fingerprint \
                 is {stored}: copy that key file here (or set key / key_file); a new key would not open what \
                 the old one encrypted",
                path.display()
            ),
            None => {
                let key = ServerKey::load_file(&path, true)?;
                tracing::info!(file = %path.display(), fingerprint = %key.fingerprint(), "created the server key file");
                (key, format!("key file {}", path.display()))
            }
        },
    };
    match key_store::bind(db, &key, chrono::Utc::now()).await? {
        Binding::Recorded | Binding::Matches => Ok(Arc::new(key)),
        Binding::Mismatch { stored } => bail!(
            "the server key does not match this database: {source} has fingerprint {}, the database was set up \
             with {stored}; every instance on one database needs the same key",
            key.fingerprint()
        ),
    }
}
