//! The operator's command line: the clap tree and a thin dispatch; each command (or group) is a
//! type in its own file with a `run` method. Commands call the service; they never touch entities
//! or SQL.

mod args;
mod audit;
mod completions;
mod db;
pub mod docs;
mod doctor;
mod factors;
mod import;
pub mod key;
mod mail_test;
mod output;
mod prompt;
mod serve;
mod user;

use clap::{Parser, Subcommand};

use crate::config::{Loaded, LogFormat, Overrides};
use crate::service::AuthService;
use crate::service::db::{connect, pending};
use crate::service::mail::Mailer;

pub use self::args::bad_value;
pub(crate) use self::output::print_lines;

#[derive(Debug, Parser)]
#[command(name = "userauth", version, about = "User authentication service: HTTP API and operator tools")]
pub struct Cli {
    /// Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration.
    #[arg(long, global = true, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Log format: human-readable text or JSON lines (also `log_format` in the configuration).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Configured(Cmd),
    /// Print a shell completion script
    Completions(completions::Completions),
}

// Every command but `completions`: they run with the configuration loaded.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create the database if needed and apply pending migrations (safe to repeat)
    DbSetup(db::DbSetup),
    /// Apply pending migrations, then serve the HTTP API
    Serve(serve::Serve),
    /// Manage users
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Read and verify the audit log
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Check the configuration, the database and (with --url) a running server against the security advice
    Doctor(doctor::Doctor),
    /// Send a test message through the configured mail server (smtp_url, mail_from) and show its answer
    MailTest(mail_test::MailTest),
}

impl Cmd {
    /// Only `serve` logs at info level; one-shot commands keep their output clean.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Cmd::Serve(_) => "info",
            _ => "warn",
        }
    }

    /// What this invocation sets over the configuration: `DATABASE_URL` / `--database-url`, and
    /// `serve`'s address and port.
    pub fn overrides(&self, database_url: Option<String>) -> Overrides {
        let (address, port) = match self {
            Cmd::Serve(s) => (s.address, s.port),
            _ => (None, None),
        };
        Overrides { database_url, address, port }
    }

    /// Runs the command with its configuration. Errors become one `error: …` line and exit code 1
    /// in `main`.
    pub async fn run(self, loaded: Loaded) -> anyhow::Result<()> {
        // A key file others can read stops every command (api.md §14), whether or not it needs the key.
        key::configured(&loaded.settings)?;
        match self {
            Cmd::DbSetup(c) => c.run(&loaded).await,
            Cmd::Serve(c) => c.run(loaded).await,
            Cmd::User { command } => command.run(&loaded).await,
            Cmd::Audit { command } => command.run(&loaded).await,
            Cmd::Doctor(c) => c.run(&loaded).await,
            Cmd::MailTest(c) => c.run(&loaded).await,
        }
    }
}

/// The service on the configured database, which must be set up already.
async fn open_service(loaded: &Loaded) -> anyhow::Result<AuthService> {
    let url = loaded.db.url.redacted();
    let db = connect(&loaded.db).await.map_err(|e| db::db_error(&url, e))?;
    let missing = pending(&db).await?;
    if !missing.is_empty() {
        anyhow::bail!(
            "database {url} is not set up ({} pending migration(s)); run `userauth db-setup` first",
            missing.len()
        );
    }
    let key = key::bind(&db, &loaded.settings).await?;
    Ok(AuthService::new(db, loaded.settings.policy()).with_key(key).with_mailer(mailer(loaded)?))
}

/// What `mail-test` and `user reset --send` say when there is no mail server to use.
pub(crate) const MAIL_NOT_CONFIGURED: &str = "mail is not configured: set smtp_url and mail_from";

/// The mailer, when `smtp_url` and `mail_from` are set.
fn mailer(loaded: &Loaded) -> anyhow::Result<Option<Mailer>> {
    Ok(loaded.settings.mail_settings()?.map(Mailer::new).transpose()?)
}
