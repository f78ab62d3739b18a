//! Database URLs: what one names (a SQLite file, an in-memory SQLite, a PostgreSQL database),
//! read with sqlx's own option parsers, and how one may be shown (its password masked).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sea_orm::DbErr;
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::SqliteConnectOptions;

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
    pub(super) fn maintenance_url(&self) -> Option<String> {
        let mut url = url::Url::parse(&self.raw).ok()?;
        url.set_path("/postgres");
        Some(url.to_string())
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
