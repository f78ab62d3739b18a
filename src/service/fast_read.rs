//! The per-request session lookup: one query, run outside the ORM, with one implementation per
//! backend behind one type ([`SessionReader`]). Every write still goes through SeaORM, and nothing
//! is cached: each lookup reads committed data, so a session ended by any instance or by the CLI
//! is gone for the next lookup everywhere.
//!
//! SQLite files: sqlx runs each SQLite connection on its own thread and hands every query and row
//! through channels; on a small machine those hand-offs cost more than the query (bench: a no-op
//! `SELECT 1` through sqlx halves the request rate). This reader runs the query on the calling
//! thread with a cached prepared statement, on read-only connections to the same file (WAL).
//!
//! PostgreSQL: through sqlx's pool one query is three round trips to the server, since the pool
//! pings a connection when it hands it out (SeaORM's default `test_before_acquire`) and again,
//! always and in a spawned task, when it takes it back; SeaORM adds building the joined select for
//! every request. This reader keeps a few connections of its own (at most the ORM pool's size) and
//! runs one statement, prepared once per connection by sqlx's statement cache: one round trip. A
//! connection that fails is dropped with the idle ones (they likely share its fate), and one idle
//! for longer than [`PG_IDLE_CHECK`] is pinged before use.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sea_orm::sqlx::{self, Connection as _};
use uuid::Uuid;

/// What the hot path needs of a session and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user_id: Uuid,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// Why a lookup could not be answered; the caller then takes the ORM path.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] sqlx::Error),
}

/// The session lookup for one database, SQLite file or PostgreSQL.
pub struct SessionReader {
    backend: Backend,
    fallbacks: AtomicU64,
}

enum Backend {
    Sqlite(SqliteReader),
    Postgres(PgReader),
}

impl SessionReader {
    /// A reader of the SQLite file at `path` (the file SeaORM writes).
    pub fn sqlite(path: std::path::PathBuf) -> Self {
        Self::with(Backend::Sqlite(SqliteReader { path, idle: Mutex::new(Vec::new()) }))
    }

    /// A reader of the PostgreSQL database behind `pool` (SeaORM's): the same connect options, and
    /// at most as many connections of its own as that pool may open.
    pub fn postgres(pool: &PgPool) -> Self {
        let max = pool.options().get_max_connections().max(1) as usize;
        Self::with(Backend::Postgres(PgReader {
            options: pool.connect_options(),
            connect_timeout: pool.options().get_acquire_timeout(),
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(max),
        }))
    }

    fn with(backend: Backend) -> Self {
        Self { backend, fallbacks: AtomicU64::new(0) }
    }

    /// The session whose token digest is `token_hash`, with its user. `Ok(None)`: no such session.
    /// Errors mean the caller should fall back to the ORM path.
    pub async fn lookup(&self, token_hash: &str) -> Result<Option<SessionRow>, ReadError> {
        match &self.backend {
            Backend::Sqlite(r) => Ok(r.lookup(token_hash)?),
            Backend::Postgres(r) => Ok(r.lookup(token_hash).await?),
        }
    }

    /// Records a fallback to the ORM path: logged at warn the first time (with its reason), as it
    /// means the fast path is not doing its job.
    pub fn note_fallback(&self, reason: &ReadError) {
        if self.fallbacks.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(error = %reason, "fast session read failed; using the ORM (logged once per process)");
        }
    }

    /// How many lookups fell back to the ORM path.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }
}

// ------------------------------------------------------------------------------------ SQLite

struct SqliteReader {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
}

const SQLITE_LOOKUP: &str = "SELECT s.user_id, s.last_seen_at, s.expires_at, u.email, u.created_at, u.last_login_at \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1";

fn parse_time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

impl SqliteReader {
    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        // A reader in WAL mode is only kept waiting by a checkpoint or recovery; wait milliseconds
        // at most on the request's thread, then let the caller take the ORM path (which waits
        // without blocking a worker).
        conn.busy_timeout(std::time::Duration::from_millis(20))?;
        Ok(conn)
    }

    fn lookup(&self, token_hash: &str) -> rusqlite::Result<Option<SessionRow>> {
        let conn = match self.idle.lock().ok().and_then(|mut v| v.pop()) {
            Some(c) => c,
            None => self.open()?,
        };
        let row = conn
            .prepare_cached(SQLITE_LOOKUP)?
            .query_row([token_hash], |r| {
                let id: Vec<u8> = r.get(0)?;
                let user_id = Uuid::from_slice(&id).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
                })?;
                let last_login: Option<String> = r.get(5)?;
                Ok(SessionRow {
                    user_id,
                    last_seen_at: parse_time(&r.get::<_, String>(1)?)?,
                    expires_at: parse_time(&r.get::<_, String>(2)?)?,
                    email: r.get(3)?,
                    created_at: parse_time(&r.get::<_, String>(4)?)?,
                    last_login_at: last_login.as_deref().map(parse_time).transpose()?,
                })
            })
            .optional()?;
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 16
        {
            idle.push(conn);
        }
        Ok(row)
    }
}

// -------------------------------------------------------------------------------- PostgreSQL

/// A connection idle this long is pinged before its next lookup (a server restart, an idle
/// timeout or a firewall may have ended it); busy connections are used as they are.
pub const PG_IDLE_CHECK: Duration = Duration::from_secs(30);

const PG_LOOKUP: &str = "SELECT s.user_id, s.last_seen_at, s.expires_at, u.email, u.created_at, u.last_login_at \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1";

type PgLookupRow = (Uuid, DateTime<Utc>, DateTime<Utc>, String, DateTime<Utc>, Option<DateTime<Utc>>);

struct PgReader {
    options: std::sync::Arc<PgConnectOptions>,
    connect_timeout: Duration,
    /// Connections not in use, with the time each was put back; the last one back is used first.
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    /// One per connection this reader may hold: lookups beyond that wait their turn.
    permits: tokio::sync::Semaphore,
}

impl PgReader {
    async fn lookup(&self, token_hash: &str) -> Result<Option<SessionRow>, sqlx::Error> {
        let _permit = self.permits.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?;
        let mut conn = self.checkout().await?;
        // A lookup cancelled here drops its connection (closed, never reused half-read).
        let found = sqlx::query_as::<_, PgLookupRow>(PG_LOOKUP).bind(token_hash).fetch_optional(&mut conn).await;
        match found {
            Ok(row) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push((conn, Instant::now()));
                }
                Ok(row.map(|(user_id, last_seen_at, expires_at, email, created_at, last_login_at)| SessionRow {
                    user_id,
                    last_seen_at,
                    expires_at,
                    email,
                    created_at,
                    last_login_at,
                }))
            }
            Err(e) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.clear();
                }
                Err(e)
            }
        }
    }

    async fn checkout(&self) -> Result<PgConnection, sqlx::Error> {
        let taken = self.idle.lock().ok().and_then(|mut v| v.pop());
        if let Some((mut conn, since)) = taken
            && (since.elapsed() < PG_IDLE_CHECK || conn.ping().await.is_ok())
        {
            return Ok(conn);
        }
        tokio::time::timeout(self.connect_timeout, PgConnection::connect_with(&self.options))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }
}
