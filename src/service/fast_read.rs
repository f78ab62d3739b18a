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
//! every request. Even at one round trip a lookup cost ~150 µs of our CPU, half of it in the kernel
//! (perf: `finish_task_switch` 13 %, `sock_def_readable` 11 %, under `send`/`writev`/`recv`):
//! each query is a send, a receive and a wake-up of both processes. So this reader batches:
//! lookups that arrive while a query is in flight are answered together by the next one
//! (`token_hash = ANY($1)`, one statement prepared once per connection by sqlx's statement
//! cache), on a few connections of its own. A connection that fails is dropped with the idle ones
//! (they likely share its fate), and one idle for longer than [`PG_IDLE_CHECK`] is pinged first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    Postgres(Arc<sqlx::Error>),
    #[error("the session reader is stopping")]
    Stopped,
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
        Self::with(Backend::Postgres(PgReader::new(pool.connect_options(), pool.options().get_acquire_timeout(), max)))
    }

    fn with(backend: Backend) -> Self {
        Self { backend, fallbacks: AtomicU64::new(0) }
    }

    /// The session whose token digest is `token_hash`, with its user. `Ok(None)`: no such session.
    /// Errors mean the caller should fall back to the ORM path.
    pub async fn lookup(&self, token_hash: &str) -> Result<Option<SessionRow>, ReadError> {
        match &self.backend {
            Backend::Sqlite(r) => Ok(r.lookup(token_hash)?),
            Backend::Postgres(r) => r.lookup(token_hash).await,
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

/// At most this many lookups share one query.
pub const PG_MAX_BATCH: usize = 64;

/// At most this many queries run at once (each on its own connection). Few on purpose: every
/// query costs both processes a send, a receive and a wake-up whatever it carries, so under load
/// fewer, fuller batches answer more requests per CPU-second (2 cores, 50 clients: 1 runner
/// 18.0k req/s, 2: 15.6k, 4: 12.0k, 10: 8.7k). Two, so that one slow query or reconnect does not
/// hold up every lookup.
const PG_MAX_RUNNERS: usize = 2;

const PG_LOOKUP: &str = "SELECT s.token_hash, s.user_id, s.last_seen_at, s.expires_at, u.email, u.created_at, \
     u.last_login_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ANY($1)";

type PgLookupRow = (String, Uuid, DateTime<Utc>, DateTime<Utc>, String, DateTime<Utc>, Option<DateTime<Utc>>);

type Reply = tokio::sync::oneshot::Sender<Result<Option<SessionRow>, ReadError>>;

/// The PostgreSQL reader batches: a lookup joins a queue, and a runner (at most
/// [`PG_MAX_RUNNERS`] at once, each a spawned task so a cancelled request cannot strand the
/// others) answers everything queued so far with one `= ANY($1)` query. A lookup is only ever
/// answered by a query that started after it was queued, so nothing older than the request is
/// served: it is a shared read, not a cache.
struct PgReader {
    shared: Arc<PgShared>,
}

struct PgShared {
    options: Arc<PgConnectOptions>,
    connect_timeout: Duration,
    /// Connections not in use, with the time each was put back; the last one back is used first.
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    queue: Mutex<VecDeque<(String, Reply)>>,
    runners: Arc<tokio::sync::Semaphore>,
}

impl PgReader {
    fn new(options: Arc<PgConnectOptions>, connect_timeout: Duration, max_connections: usize) -> Self {
        let runners = Arc::new(tokio::sync::Semaphore::new(max_connections.clamp(1, PG_MAX_RUNNERS)));
        let shared = PgShared { options, connect_timeout, idle: Mutex::default(), queue: Mutex::default(), runners };
        Self { shared: Arc::new(shared) }
    }

    async fn lookup(&self, token_hash: &str) -> Result<Option<SessionRow>, ReadError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.shared.queue.lock().map_err(|_| ReadError::Stopped)?.push_back((token_hash.to_owned(), reply));
        PgShared::kick(&self.shared);
        // A runner drops the reply only when the runtime is shutting down.
        answer.await.map_err(|_| ReadError::Stopped)?
    }
}

impl PgShared {
    /// Starts a runner if one may start. Called after queueing, and by a runner after it stops:
    /// so a lookup queued while every runner was busy is taken either by a busy runner's next
    /// drain or by the runner started when one stops.
    fn kick(shared: &Arc<Self>) {
        if let Ok(permit) = shared.runners.clone().try_acquire_owned() {
            tokio::spawn(Self::run(shared.clone(), permit));
        }
    }

    async fn run(shared: Arc<Self>, permit: tokio::sync::OwnedSemaphorePermit) {
        loop {
            let batch: Vec<(String, Reply)> = match shared.queue.lock() {
                Ok(mut q) => {
                    let n = q.len().min(PG_MAX_BATCH);
                    q.drain(..n).collect()
                }
                Err(_) => Vec::new(),
            };
            if batch.is_empty() {
                drop(permit);
                if shared.queue.lock().is_ok_and(|q| !q.is_empty()) {
                    Self::kick(&shared);
                }
                return;
            }
            shared.answer(batch).await;
        }
    }

    async fn answer(&self, batch: Vec<(String, Reply)>) {
        let hashes: Vec<&str> = batch.iter().map(|(h, _)| h.as_str()).collect();
        // Bounded: a server that stops answering (a dropped network, no reset) would otherwise hold
        // every lookup until the kernel gives up; past the pool's acquire timeout the waiters take
        // the ORM path. A timed-out query's connection is dropped with the future, never reused.
        let work = async {
            let mut conn = self.checkout().await?;
            let rows = sqlx::query_as::<_, PgLookupRow>(PG_LOOKUP).bind(&hashes).fetch_all(&mut conn).await?;
            Ok::<_, sqlx::Error>((conn, rows))
        };
        let rows = match tokio::time::timeout(self.connect_timeout, work).await {
            Ok(Ok((conn, rows))) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push((conn, Instant::now()));
                }
                Ok(rows)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        };
        match rows {
            Ok(rows) => {
                for (hash, reply) in batch {
                    let row = rows.iter().find(|r| r.0 == hash).map(|r| SessionRow {
                        user_id: r.1,
                        last_seen_at: r.2,
                        expires_at: r.3,
                        email: r.4.clone(),
                        created_at: r.5,
                        last_login_at: r.6,
                    });
                    let _ = reply.send(Ok(row));
                }
            }
            Err(e) => {
                // The idle connections likely share the failed one's fate.
                if let Ok(mut idle) = self.idle.lock() {
                    idle.clear();
                }
                let e = Arc::new(e);
                for (_, reply) in batch {
                    let _ = reply.send(Err(ReadError::Postgres(e.clone())));
                }
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
