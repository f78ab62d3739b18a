//! The per-request session lookup on a SQLite file, done synchronously.
//!
//! sqlx runs each SQLite connection on its own thread and hands every query and row through
//! channels; on a small machine those hand-offs cost more than the query (bench: a no-op
//! `SELECT 1` through sqlx halves the request rate). This reader runs the one hot query on the
//! calling thread with a cached prepared statement, on read-only connections to the same file. It
//! reads committed data like any other connection (WAL), so a revoked session is gone for it at
//! once; all writes still go through SeaORM.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use uuid::Uuid;

/// What the hot path needs of a session and its user.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: Uuid,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

pub struct FastReader {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
    fallbacks: AtomicU64,
}

const LOOKUP: &str = "SELECT s.user_id, s.last_seen_at, s.expires_at, u.email, u.created_at, u.last_login_at \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1";

fn parse_time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

impl FastReader {
    pub fn new(path: std::path::PathBuf) -> Self {
        Self { path, idle: Mutex::new(Vec::new()), fallbacks: AtomicU64::new(0) }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        // A reader in WAL mode is only kept waiting by a checkpoint or recovery; wait milliseconds
        // at most on the request's thread, then let the caller take the ORM path (which waits
        // without blocking a worker).
        conn.busy_timeout(std::time::Duration::from_millis(20))?;
        Ok(conn)
    }

    /// `Ok(None)`: no such session. Errors mean the caller should fall back to the ORM path.
    pub fn lookup(&self, token_hash: &str) -> rusqlite::Result<Option<SessionRow>> {
        let conn = match self.idle.lock().ok().and_then(|mut v| v.pop()) {
            Some(c) => c,
            None => self.open()?,
        };
        let row = conn
            .prepare_cached(LOOKUP)?
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

impl FastReader {
    /// Records a fallback to the ORM path: logged at warn the first time (with its reason), as it
    /// means the fast path is not doing its job.
    pub fn note_fallback(&self, reason: &rusqlite::Error) {
        if self.fallbacks.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(error = %reason, "fast session read failed; using the ORM (logged once per process)");
        }
    }

    /// How many lookups fell back to the ORM path.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }
}
