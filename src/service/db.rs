//! Connecting to the database and applying migrations, for both backends.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement,
    TransactionTrait,
};

/// What a database URL names, parsed once by sqlx's own option parsers (so we read it exactly as
/// the driver will).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite::memory:` and `mode=memory`: every connection would get its own empty database.
    SqliteMemory,
    /// A SQLite file, its name decoded as sqlx decodes it. Without an explicit `mode` it is created
    /// on first use ("one file, created on first use").
    SqliteFile { path: PathBuf, read_only: bool, create: bool },
    /// A PostgreSQL database on a server.
    Postgres { database: String },
}

/// A database URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    kind: DatabaseKind,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, DbErr> {
        let bad = |e: &dyn std::fmt::Display| DbErr::Custom(format!("invalid database URL {}: {e}", redact_url(raw)));
        let scheme = url::Url::parse(raw).map(|u| u.scheme().to_owned()).or_else(|_| {
            // `sqlite::memory:` has no authority, which `url` accepts; anything else unparseable is refused.
            // Without a `:` there is no scheme and no password: the text can be shown as it is.
            raw.split_once(':').map(|(s, _)| s.to_owned()).ok_or_else(|| {
                DbErr::Custom(format!(
                    "{raw:?} is not a database URL; use sqlite://FILE?mode=rwc or postgres://USER:PASSWORD@HOST/DATABASE"
                ))
            })
        })?;
        let kind = match scheme.as_str() {
            "sqlite" => {
                // sqlx validates the whole URL and decodes the file name; the mode is read from
                // the query exactly as sqlx splits it (its options do not expose the mode).
                let opts = SqliteConnectOptions::from_str(raw).map_err(|e| bad(&e))?;
                let rest = raw.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
                let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
                let mode = url::form_urlencoded::parse(params.as_bytes())
                    .filter(|(k, _)| k == "mode")
                    .map(|(_, v)| v.into_owned())
                    .last();
                if database == ":memory:" || mode.as_deref() == Some("memory") {
                    DatabaseKind::SqliteMemory
                } else {
                    DatabaseKind::SqliteFile {
                        path: opts.get_filename().to_path_buf(),
                        read_only: mode.as_deref() == Some("ro"),
                        // Only an explicit `mode=rwc` (the default URL has it) creates a missing file:
                        // a mistyped path must not quietly become a second, empty database.
                        create: mode.as_deref() == Some("rwc"),
                    }
                }
            }
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(raw).map_err(|e| bad(&e))?;
                let database = opts.get_database().map(str::to_owned).unwrap_or_else(|| opts.get_username().to_owned());
                DatabaseKind::Postgres { database }
            }
            other => return Err(bad(&format!("unsupported scheme {other:?} (use sqlite:// or postgres://)"))),
        };
        Ok(Self { raw: raw.to_owned(), kind })
    }

    /// A SQLite file named by its path (not a URL the operator wrote): for reading other
    /// databases, such as the Flask service's.
    pub fn sqlite_file(path: &Path, read_only: bool) -> Result<Self, DbErr> {
        const PATH: &percent_encoding::AsciiSet =
            &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'.').remove(b'-').remove(b'_');
        let encoded = percent_encoding::utf8_percent_encode(&path.to_string_lossy(), PATH).to_string();
        let mode = if read_only { "ro" } else { "rwc" };
        Self::parse(&format!("sqlite://{encoded}?mode={mode}"))
    }

    pub fn kind(&self) -> &DatabaseKind {
        &self.kind
    }

    /// The same URL, allowed to create a missing SQLite file (`db-setup` creates what it is told to).
    pub fn creating(&self) -> Self {
        let mut url = self.clone();
        if let DatabaseKind::SqliteFile { create, read_only: false, .. } = &mut url.kind {
            *create = true;
        }
        url
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// For messages and logs: the password masked.
    pub fn redacted(&self) -> String {
        redact_url(&self.raw)
    }

    /// The same server's `postgres` maintenance database, to create this one from.
    fn maintenance_url(&self) -> Option<String> {
        let mut url = url::Url::parse(&self.raw).ok()?;
        url.set_path("/postgres");
        Some(url.to_string())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_as_the_driver_parses_them() {
        let kind = |u: &str| DatabaseUrl::parse(u).unwrap().kind().clone();
        let file = |p: &str, read_only, create| DatabaseKind::SqliteFile { path: p.into(), read_only, create };
        assert_eq!(kind("sqlite://a.db"), file("a.db", false, false), "only mode=rwc creates");
        assert_eq!(DatabaseUrl::parse("sqlite://a.db").unwrap().creating().kind(), &file("a.db", false, true));
        assert_eq!(kind("sqlite://a.db?mode=rwc"), file("a.db", false, true));
        assert_eq!(kind("sqlite://a.db?mode=rw"), file("a.db", false, false));
        assert_eq!(kind("sqlite://a.db?mode=ro"), file("a.db", true, false));
        assert_eq!(
            kind("sqlite:///tmp/my%20data.db?mode=rwc"),
            file("/tmp/my data.db", false, true),
            "decoded as sqlx does"
        );
        assert_eq!(kind("sqlite://dir/a%3Fb.db?mode=rwc"), file("dir/a?b.db", false, true));
        assert_eq!(kind("sqlite::memory:"), DatabaseKind::SqliteMemory);
        assert_eq!(kind("sqlite://x?mode=memory"), DatabaseKind::SqliteMemory);
        assert_eq!(
            kind("postgres://u:p@h:5432/app?sslmode=disable"),
            DatabaseKind::Postgres { database: "app".into() }
        );
        let pg = DatabaseUrl::parse("postgres://u:p@h:5432/app?sslmode=disable").unwrap();
        assert_eq!(pg.maintenance_url().as_deref(), Some("postgres://u:p@h:5432/postgres?sslmode=disable"));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://a.db?mode=bogus").is_err());
        let flask = DatabaseUrl::sqlite_file(Path::new("/tmp/a b?.db"), true).unwrap();
        assert_eq!(flask.kind(), &file("/tmp/a b?.db", true, false));
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
