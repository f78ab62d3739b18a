//! All of userauth's behaviour, one file per capability; this file holds the [`AuthService`]
//! struct and its builders. It knows nothing of HTTP or the terminal; the edges map
//! [`AuthError`] and build a [`RequestContext`] per request.

pub mod account;
pub mod audit;
mod clock;
mod context;
pub mod db;
pub mod domain;
mod error;
pub mod fast_read;
pub mod hashing;
mod housekeeping;
pub mod import;
pub mod key;
pub mod key_store;
mod login;
pub mod mail;
pub mod metrics;
mod names;
pub mod outbox;
pub mod passkeys;
mod password;
pub mod password_policy;
mod policy;
mod reauth;
mod registration;
pub mod reset_link;
mod resets;
pub mod second_factor;
mod sessions;
mod throttle;
mod users;
pub mod verification;
mod views;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

pub use clock::Clock;
pub(crate) use clock::chrono_dur;
pub use context::{Actor, RequestContext};
pub use error::{AuthError, InternalError};
pub use login::LoginMethod;
pub use policy::Policy;
pub use sessions::Authenticated;
pub use views::{IssuedResetToken, ListFilter, NewSession, ResetRequest, UserSummary, UserView, rfc3339};

use hashing::Hasher;

#[derive(Clone)]
pub struct AuthService {
    db: DatabaseConnection,
    policy: Arc<Policy>,
    hasher: Hasher,
    /// The session lookup outside the ORM, for SQLite files and PostgreSQL (see `fast_read`).
    fast: Option<Arc<fast_read::SessionReader>>,
    clock: Clock,
    mailer: Option<mail::Mailer>,
    metrics: Option<Arc<metrics::Metrics>>,
    /// The server key (api.md §14). `new` starts with a random one so the service is always keyed;
    /// every command sets the configured key with [`AuthService::with_key`].
    key: Arc<key::ServerKey>,
    /// The WebAuthn relying party (api.md §11); `None`: passkeys are unavailable.
    passkeys: Option<Arc<passkeys::RelyingParty>>,
}

impl AuthService {
    pub fn new(db: DatabaseConnection, policy: Policy) -> Self {
        let hasher = Hasher::new(policy.bcrypt_cost, policy.hash_concurrency, policy.hash_queue_max);
        Self {
            db,
            policy: Arc::new(policy),
            hasher,
            fast: None,
            clock: Clock::system(),
            mailer: None,
            metrics: None,
            // A failing OS random source leaves nothing safe to do: fail loudly rather than run unkeyed.
            key: Arc::new(key::ServerKey::generate().expect("the operating system's random source failed")),
            passkeys: None,
        }
    }

    /// The same service using the configured server key.
    pub fn with_key(mut self, key: Arc<key::ServerKey>) -> Self {
        self.key = key;
        self
    }

    pub fn key(&self) -> &key::ServerKey {
        &self.key
    }

    /// The same service sending mail through `mailer` (reset links, `user reset --send`).
    pub fn with_mailer(mut self, mailer: Option<mail::Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    pub fn mailer(&self) -> Option<&mail::Mailer> {
        self.mailer.as_ref()
    }

    /// The same service counting what it does into `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<metrics::Metrics>>) -> Self {
        self.hasher.set_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> Option<&Arc<metrics::Metrics>> {
        self.metrics.as_ref()
    }

    fn count(&self, f: impl FnOnce(&metrics::Metrics)) {
        if let Some(m) = &self.metrics {
            f(m);
        }
    }

    /// The same service reading the time from `clock` (tests move it instead of sleeping).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Resolves sessions with the session reader (`fast_read`, the server's hot path) when `url`
    /// names a SQLite file or a PostgreSQL database; an in-memory SQLite database keeps the ORM path.
    pub fn with_fast_session_reads(mut self, url: &db::DatabaseUrl) -> Self {
        match url.kind() {
            db::DatabaseKind::SqliteFile { path, .. } => {
                self.fast = Some(Arc::new(fast_read::SessionReader::sqlite(path.clone())));
            }
            // The backend is checked too: `get_postgres_connection_pool` panics on any other.
            db::DatabaseKind::Postgres { .. } if self.db.get_database_backend() == sea_orm::DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                self.fast = Some(Arc::new(fast_read::SessionReader::postgres(pool)));
            }
            _ => {}
        }
        self
    }

    /// How many session lookups fell back from the fast path to the ORM (`None`: no fast path).
    pub fn fast_read_fallbacks(&self) -> Option<u64> {
        self.fast.as_ref().map(|f| f.fallbacks())
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }
}
