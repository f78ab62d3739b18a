//! Connecting to the database and applying migrations, for both backends.

mod database_url;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement,
    TransactionTrait,
};

pub use database_url::{DatabaseKind, DatabaseUrl, redact_url};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub url: DatabaseUrl,
    /// `None`: a per-backend default.
    pub max_connections: Option<u32>,
    pub connect_timeout: Duration,
    pub log_statements: bool,
}

impl DbOptions {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url, max_connections: None, connect_timeout: Duration::from_secs(5), log_statements: false }
    }
}

/// The SQLSTATE of a database error, when the server sent one (matching codes, not message text,
/// which the server writes in its own language).
pub fn sqlstate(e: &DbErr) -> Option<String> {
    let (DbErr::Conn(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))) = e
    else {
        return None;
    };
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

/// The text of a database error a person can act on: `DbErr::Custom` without its "Custom Error"
/// prefix, everything else as it is.
pub fn error_text(e: &DbErr) -> String {
    match e {
        DbErr::Custom(m) => m.clone(),
        e => e.to_string(),
    }
}

/// Connects to the database. Failures a person can act on are one sentence naming the file or the
/// server (not the driver's "code: 14" or "pool timed out").
pub async fn connect(opts: &DbOptions) -> Result<DatabaseConnection, DbErr> {
    if let DatabaseKind::SqliteFile { path, create: false, .. } = opts.url.kind()
        && !path.exists()
    {
        return Err(DbErr::Custom(format!(
            "no database file at {} (check DATABASE_URL or database_url; `userauth db-setup` creates a new one)",
            absolute(path).display()
        )));
    }
    match connect_pool(opts).await {
        Ok(db) => Ok(db),
        Err(e) => Err(explain_connect_error(opts, e).await),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A connection failure, said in terms of the file or server it concerns.
async fn explain_connect_error(opts: &DbOptions, e: DbErr) -> DbErr {
    const SQLITE_CANTOPEN: &str = "14";
    match opts.url.kind() {
        DatabaseKind::SqliteFile { path, .. } if sqlstate(&e).as_deref() == Some(SQLITE_CANTOPEN) => {
            let path = absolute(path);
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let why = if !dir.is_dir() {
                format!("the directory {} does not exist", dir.display())
            } else if path.exists() {
                "the file (or its directory, for the journal) is not writable by this user".to_owned()
            } else {
                format!("the directory {} is not writable by this user", dir.display())
            };
            DbErr::Custom(format!("cannot open the SQLite database {}: {why}", path.display()))
        }
        DatabaseKind::Postgres { .. } if matches!(e, DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) => {
            let Ok(pg) = PgConnectOptions::from_str(opts.url.as_str()) else { return e };
            let (host, port) = (pg.get_host().to_owned(), pg.get_port());
            if host.starts_with('/') || pg.get_socket().is_some() {
                return e;
            }
            // The pool only says it timed out: ask the network what happened.
            let probe =
                tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect((host.as_str(), port)));
            let why = match probe.await {
                Ok(Ok(_)) => return e,
                Ok(Err(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                    "connection refused (is PostgreSQL running, and on this port?)".to_owned()
                }
                Ok(Err(io)) => io.to_string(),
                Err(_) => "no answer within 2 seconds".to_owned(),
            };
            DbErr::Custom(format!("cannot reach the PostgreSQL server at {host}:{port}: {why}"))
        }
        _ => e,
    }
}

async fn connect_pool(opts: &DbOptions) -> Result<DatabaseConnection, DbErr> {
    let kind = opts.url.kind().clone();
    let mut co = ConnectOptions::new(opts.url.as_str());
    let max = match kind {
        DatabaseKind::SqliteMemory => 1,
        // WAL lets readers run beside the one writer; more than a few connections only queue.
        DatabaseKind::SqliteFile { .. } => opts.max_connections.unwrap_or(8),
        DatabaseKind::Postgres { .. } => opts.max_connections.unwrap_or(10),
    };
    co.max_connections(max)
        .connect_timeout(opts.connect_timeout)
        .acquire_timeout(opts.connect_timeout)
        .sqlx_logging(opts.log_statements)
        // Warn, so that the statements pass the log filter, which holds database crates at warn.
        .sqlx_logging_level(log::LevelFilter::Warn);
    if kind == DatabaseKind::SqliteMemory {
        // The only connection holds the database: never let the pool close it.
        co.min_connections(1).idle_timeout(None).max_lifetime(None);
    }
    co.map_sqlx_sqlite_opts(move |o| {
        let o = o.foreign_keys(true).busy_timeout(Duration::from_secs(10));
        match kind {
            // Switching the journal mode writes to the file: not for read-only opens (imports).
            DatabaseKind::SqliteFile { read_only: false, create, .. } => o
                .create_if_missing(create)
                // WAL: readers never block the writer; FULL: a commit is on disk before we answer 2xx.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full),
            _ => o,
        }
    });
    Database::connect(co).await
}

/// Connects, first creating the PostgreSQL database when the server says it does not exist
/// (SQLite files are created on first use). Returns the connection and whether it created one.
pub async fn connect_or_create(opts: &DbOptions) -> Result<(DatabaseConnection, bool), DbErr> {
    const INVALID_CATALOG_NAME: &str = "3D000";
    const DUPLICATE_DATABASE: &str = "42P04";
    match connect(opts).await {
        Ok(db) => Ok((db, false)),
        Err(e) if sqlstate(&e).as_deref() == Some(INVALID_CATALOG_NAME) => {
            let (DatabaseKind::Postgres { database }, Some(server)) = (opts.url.kind(), opts.url.maintenance_url())
            else {
                return Err(e);
            };
            let admin = connect(&DbOptions { url: DatabaseUrl::parse(&server)?, ..opts.clone() }).await?;
            // The name comes from the operator's own URL; quoting keeps it one identifier.
            let sql = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
            match admin.execute_unprepared(&sql).await {
                Ok(_) => {}
                // Another instance created it first.
                Err(e) if sqlstate(&e).as_deref() == Some(DUPLICATE_DATABASE) => {}
                Err(e) => return Err(e),
            }
            admin.close().await?;
            Ok((connect(opts).await?, true))
        }
        Err(e) => Err(e),
    }
}

/// Applies pending migrations and returns the names of those it applied.
///
/// On PostgreSQL an advisory lock serialises concurrent `serve` start-ups; on SQLite the
/// migration transactions themselves serialise on the database's write lock.
pub async fn migrate(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        // The lock lives in this transaction's connection; migrations run on other pooled connections.
        let lock = db.begin().await?;
        lock.execute_raw(Statement::from_string(DbBackend::Postgres, "SELECT pg_advisory_xact_lock(7461021853)"))
            .await?;
        let applied = apply_pending(db).await;
        lock.commit().await?;
        applied
    } else {
        apply_pending(db).await
    }
}

async fn apply_pending(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let pending: Vec<String> =
        Migrator::get_pending_migrations(db).await?.iter().map(|m| m.name().to_owned()).collect();
    if !pending.is_empty() {
        Migrator::up(db, None).await?;
    }
    Ok(pending)
}

/// Names of migrations not yet applied, without creating or changing anything.
pub async fn pending(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    Ok(Migrator::get_pending_migrations_read_only(db).await?.iter().map(|m| m.name().to_owned()).collect())
}

/// Every migration the binary knows, in order.
pub fn known_migrations() -> Vec<String> {
    Migrator::migrations().iter().map(|m| m.name().to_owned()).collect()
}
