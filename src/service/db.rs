//! Connecting to the database and applying migrations, for both backends.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait,
};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub url: String,
    /// `None`: a per-backend default.
    pub max_connections: Option<u32>,
    pub connect_timeout: Duration,
    pub log_statements: bool,
}

impl DbOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), max_connections: None, connect_timeout: Duration::from_secs(5), log_statements: false }
    }
}

/// `sqlite::memory:` and friends: every connection would get its own empty database.
fn is_sqlite_memory(url: &str) -> bool {
    url.starts_with("sqlite::memory:") || url.contains("mode=memory")
}

/// A SQLite file URL is given `mode=rwc` unless it names a mode: the embedded default is
/// "one file, created on first use".
pub fn normalise_url(url: &str) -> String {
    if url.starts_with("sqlite:") && !is_sqlite_memory(url) && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

/// The URL with any password replaced, for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

pub async fn connect(opts: &DbOptions) -> Result<DatabaseConnection, DbErr> {
    let url = normalise_url(&opts.url);
    let memory = is_sqlite_memory(&url);
    let mut co = ConnectOptions::new(url.clone());
    let default_max = if memory {
        1
    } else if url.starts_with("sqlite:") {
        // WAL lets readers run beside the one writer; more than a few connections only queue.
        8
    } else {
        10
    };
    co.max_connections(if memory { 1 } else { opts.max_connections.unwrap_or(default_max) })
        .connect_timeout(opts.connect_timeout)
        .acquire_timeout(opts.connect_timeout)
        .sqlx_logging(opts.log_statements)
        // Warn, so that the statements pass the log filter, which holds database crates at warn.
        .sqlx_logging_level(log::LevelFilter::Warn);
    if memory {
        // The only connection holds the database: never let the pool close it.
        co.min_connections(1).idle_timeout(None).max_lifetime(None);
    }
    // Switching the journal mode writes to the file: not for read-only opens (imports).
    let read_only = url.contains("mode=ro");
    co.map_sqlx_sqlite_opts(move |o| {
        let o = o.foreign_keys(true).busy_timeout(Duration::from_secs(10));
        if memory || read_only {
            o
        } else {
            // WAL: readers never block the writer; FULL: a commit is on disk before we answer 2xx.
            o.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Full)
        }
    });
    Database::connect(co).await
}

/// Connects, first creating the PostgreSQL database when the server says it does not exist
/// (SQLite files are created by `mode=rwc`). Returns the connection and whether it created one.
pub async fn connect_or_create(opts: &DbOptions) -> Result<(DatabaseConnection, bool), DbErr> {
    match connect(opts).await {
        Ok(db) => Ok((db, false)),
        Err(e) if opts.url.starts_with("postgres") && is_missing_database(&e) => {
            let (server, name) = split_pg_url(&opts.url).ok_or(e)?;
            let admin = connect(&DbOptions { url: format!("{server}/postgres"), ..opts.clone() }).await?;
            // The name comes from the operator's own URL; quoting keeps it one identifier.
            let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            match admin.execute_unprepared(&sql).await {
                Ok(_) => {}
                // Another instance created it first.
                Err(e) if e.to_string().contains("already exists") => {}
                Err(e) => return Err(e),
            }
            admin.close().await?;
            Ok((connect(opts).await?, true))
        }
        Err(e) => Err(e),
    }
}

/// SQLSTATE 3D000: "database … does not exist".
fn is_missing_database(e: &DbErr) -> bool {
    let text = e.to_string();
    text.contains("3D000") || (text.contains("database") && text.contains("does not exist"))
}

/// `postgres://user@host:port/name?params` into (`postgres://user@host:port`, `name`).
fn split_pg_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_once('/')?;
    let name = path.split('?').next()?.to_owned();
    (!name.is_empty()).then(|| (format!("{scheme}://{authority}"), name))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        assert_eq!(normalise_url("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(normalise_url("sqlite://a.db?mode=ro"), "sqlite://a.db?mode=ro");
        assert_eq!(normalise_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(normalise_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn postgres_urls_split_into_server_and_database() {
        assert_eq!(
            split_pg_url("postgres://u:p@h:5432/app?sslmode=disable"),
            Some(("postgres://u:p@h:5432".into(), "app".into()))
        );
        assert_eq!(split_pg_url("postgres://u@h/"), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://bob:s3cret@db:5432/x"), "postgres://bob:***@db:5432/x");
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(redact_url("sqlite://userauth.db?mode=rwc"), "sqlite://userauth.db?mode=rwc");
    }
}
