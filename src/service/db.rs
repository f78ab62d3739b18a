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

/// A database or SMTP URL as it may be shown: any password, in the user-info part or in a query
/// parameter whose name contains `password`, is replaced by `***`. The URL is parsed (as sqlx
/// and lettre parse it); one that does not parse is shown as its scheme alone, since where its
/// password would be cannot be known.
pub fn redact_url(raw: &str) -> String {
    const MASK: &str = "***";
    let Ok(mut url) = url::Url::parse(raw) else {
        let scheme = raw
            .split_once(':')
            .map(|(s, _)| s)
            .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
        return format!("{}:<unparseable URL hidden>", scheme.unwrap_or("?"));
    };
    let mut changed = false;
    if url.password().is_some() {
        // Fails only for URLs that cannot have credentials, which then have no password either.
        changed |= url.set_password(Some(MASK)).is_ok();
    }
    if url.query_pairs().any(|(k, _)| k.to_ascii_lowercase().contains("password")) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = k.to_ascii_lowercase().contains("password");
                (k.into_owned(), if secret { MASK.to_owned() } else { v.into_owned() })
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    // Unchanged URLs are shown exactly as written.
    if changed { url.to_string().replace("%2A%2A%2A", MASK) } else { raw.to_owned() }
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
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        // In a query parameter (sqlx accepts `?password=`), whatever its case.
        let r = redact_url("postgres://bob@db/x?sslmode=disable&password=s3cret&PassWord=s3cret");
        assert!(!r.contains("s3cret") && r.contains("sslmode=disable") && r.contains("password=***"), "{r}");
        // Percent-encoded characters in the password.
        assert_eq!(redact_url("postgres://bob:a%2Fb%3Fc%40@db/x"), "postgres://bob:***@db/x");
        // smtp URLs are redacted the same way.
        assert_eq!(
            redact_url("smtps://mailer:hunter2@smtp.example.com:465"),
            "smtps://mailer:***@smtp.example.com:465"
        );
        // A raw `/`, `?` or `#` in the password makes the URL unparseable: nothing of it is shown.
        for raw in ["postgres://bob:pa/ss@db/x", "postgres://bob:pa?ss@db/x", "postgres://bob:pa#ss@db/x"] {
            let r = redact_url(raw);
            assert!(!r.contains("ss"), "{raw} -> {r}");
            assert!(r.starts_with("postgres:"), "{raw} -> {r}");
        }
    }
}
