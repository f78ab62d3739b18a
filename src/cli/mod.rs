//! The operator's command line: clap definitions and one file per command group. Commands call
//! the service; they never touch entities or SQL.

mod audit;
mod completions;
mod db;
pub mod docs;
mod doctor;
mod factors;
pub mod key;
mod serve;
mod user;

use std::net::IpAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{self, Loaded, LogFormat, Overrides};
use crate::service::db::{connect, pending};
use crate::service::mail::Mailer;
use crate::service::{AuthService, ListFilter};

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
    /// Create the database if needed and apply pending migrations (safe to repeat)
    DbSetup,
    /// Apply pending migrations, then serve the HTTP API
    Serve {
        /// Address to listen on (default from the configuration: 0.0.0.0)
        #[arg(long, value_name = "A")]
        address: Option<IpAddr>,
        /// Port to listen on (default from the configuration: 5000)
        #[arg(long, value_name = "P")]
        port: Option<u16>,
    },
    /// Manage users
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Read and verify the audit log
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check the configuration, the database and (with --url) a running server against the security advice
    Doctor {
        /// Also check a running server at this base URL (health, security headers, metrics exposure)
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// One JSON object per check
        #[arg(long)]
        json: bool,
    },
    /// Send a test message through the configured mail server (smtp_url, mail_from) and show its answer
    MailTest {
        /// Where to send it
        address: String,
    },
    /// Print a shell completion script
    Completions {
        /// The shell to print the script for
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List events, oldest first
    List {
        /// Only events of this email
        #[arg(long, value_name = "E")]
        email: Option<String>,
        /// Only events of this kind (registered, login_succeeded, login_failed, …)
        #[arg(long, value_name = "K")]
        kind: Option<String>,
        /// Only events at or after this time: RFC 3339 (2026-11-29T08:00:00Z) or a date (2026-11-29, midnight UTC)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only events before this time: RFC 3339 or a date (2026-11-30 means before that day begins, UTC)
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only the last N events (still oldest first)
        #[arg(long, value_name = "N")]
        newest: Option<u64>,
        /// At most N events (the first N)
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; asks for the password twice on a terminal, else reads one line from stdin
    Add {
        /// The new user's email address (trimmed and lower-cased)
        email: String,
        /// Read the password as one line from standard input, even on a terminal
        #[arg(long)]
        password_stdin: bool,
    },
    /// Issue a password-reset token and print it with its expiry time (or email it with --send)
    Reset {
        /// The user's email address
        email: String,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
        /// Email the token to the user (smtp_url, mail_from) instead of printing it
        #[arg(long, conflicts_with = "json")]
        send: bool,
    },
    /// List users with their last login and active sessions (streamed)
    List {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
        /// At most N users
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Skip the first N users
        #[arg(long, value_name = "N")]
        offset: Option<u64>,
        /// Only users whose email contains TEXT (case-insensitive)
        #[arg(long, value_name = "TEXT")]
        email_contains: Option<String>,
    },
    /// Delete a user with its sessions and reset tokens; asks to confirm on a terminal
    Delete {
        /// The user's email address
        email: String,
        /// Do not ask (required when not on a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// End every session of a user
    Logout {
        /// The user's email address
        email: String,
    },
    /// Clear a user's failed-login count so they can log in again at once (a completed reset does too)
    Unlock {
        /// The user's email address
        email: String,
    },
    /// Import users from CSV (email,password_hash or email,password) or the Flask service's database
    #[command(group(clap::ArgGroup::new("source").required(true).args(["file", "from_flask"])))]
    Import {
        /// CSV file with a header: `email,password_hash` or `email,password` (`-` for stdin)
        file: Option<std::path::PathBuf>,
        /// The original Flask service's SQLite database (table `users`: email, hashed_password)
        #[arg(long, value_name = "PATH")]
        from_flask: Option<std::path::PathBuf>,
    },
    /// Mark a user's email address as confirmed (email_verification, api.md §13)
    Confirm { email: String },
    /// List a user's factors and passkeys, or remove them all (--reset) for a lost device
    Factors {
        email: String,
        /// One JSON object
        #[arg(long)]
        json: bool,
        /// Remove every second factor, recovery code and passkey and end the user's sessions
        #[arg(long)]
        reset: bool,
        /// With --reset: do not ask (required when not on a terminal)
        #[arg(long, requires = "reset")]
        yes: bool,
    },
}

impl Cli {
    /// Only `serve` logs at info level; one-shot commands keep their output clean.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Serve { .. } => "info",
            _ => "warn",
        }
    }

    /// The shell, when this invocation only prints a completion script (which needs no
    /// configuration: it works even where the configuration is broken).
    pub fn completions_shell(&self) -> Option<clap_complete::Shell> {
        match self.command {
            Command::Completions { shell } => Some(shell),
            _ => None,
        }
    }

    /// The configuration this invocation uses.
    pub fn load_config(&self) -> anyhow::Result<Loaded> {
        Ok(config::load(&self.overrides())?)
    }

    fn overrides(&self) -> Overrides {
        let (address, port) = match self.command {
            Command::Serve { address, port } => (address, port),
            _ => (None, None),
        };
        Overrides { database_url: self.database_url.clone(), address, port }
    }
}

/// Writes one line per item of `items` to stdout, buffered, after an optional header; a closed pipe
/// (`| head`) ends the listing quietly. Constant memory however long the stream.
pub(crate) async fn print_lines<T, E>(
    items: impl futures_util::Stream<Item = Result<T, E>>,
    header: Option<&str>,
    mut line: impl FnMut(&mut dyn std::io::Write, T) -> std::io::Result<()>,
) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    use futures_util::StreamExt;
    use std::io::Write;
    let quiet_on_closed_pipe = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
        Ok(()) => Ok(true),
    };
    let mut items = std::pin::pin!(items);
    // Not `stdout().lock()`: the guard cannot be held across awaits on a multi-threaded runtime.
    let mut out = std::io::BufWriter::new(std::io::stdout());
    if let Some(h) = header
        && !quiet_on_closed_pipe(writeln!(out, "{h}"))?
    {
        return Ok(());
    }
    while let Some(item) = items.next().await {
        if !quiet_on_closed_pipe(line(&mut out, item?))? {
            return Ok(());
        }
    }
    quiet_on_closed_pipe(out.flush())?;
    Ok(())
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

/// Prints a completion script.
pub fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    completions::print(shell)
}

/// Runs the command with its configuration (from [`Cli::load_config`]). Errors become one
/// `error: …` line and exit code 1 in `main`.
pub async fn dispatch(cli: Cli, loaded: Loaded) -> anyhow::Result<()> {
    // A key file others can read stops every command (api.md §14), whether or not it needs the key.
    key::configured(&loaded.settings)?;
    match cli.command {
        Command::DbSetup => db::setup(&loaded).await,
        Command::Serve { .. } => serve::run(loaded).await,
        Command::User { command } => {
            let svc = open_service(&loaded).await?;
            match command {
                UserCommand::Add { email, password_stdin } => user::add(&svc, &email, password_stdin).await,
                UserCommand::Reset { email, json, send } => {
                    user::reset(&svc, &email, json, send, &loaded.settings.public_base_url()).await
                }
                UserCommand::List { json, limit, offset, email_contains } => {
                    user::list(&svc, json, &ListFilter { limit, offset, email_contains }).await
                }
                UserCommand::Delete { email, yes } => user::delete(&svc, &email, yes).await,
                UserCommand::Logout { email } => user::logout(&svc, &email).await,
                UserCommand::Factors { email, json, reset, yes } => factors::run(&svc, &email, json, reset, yes).await,
                UserCommand::Unlock { email } => user::unlock(&svc, &email).await,
                UserCommand::Import { file, from_flask } => match (file, from_flask) {
                    (_, Some(flask)) => user::import_flask(&svc, &flask).await,
                    (Some(file), None) => user::import_csv(&svc, &file).await,
                    (None, None) => anyhow::bail!("give a CSV file or --from-flask PATH"),
                },
                UserCommand::Confirm { email } => user::confirm(&svc, &email).await,
            }
        }
        Command::Audit { command } => {
            let svc = open_service(&loaded).await?;
            match command {
                AuditCommand::List { email, kind, since, until, newest, limit, json } => {
                    let filter = audit::ListArgs { email, kind, since, until, newest, limit };
                    audit::list(&svc, filter, json).await
                }
                AuditCommand::Verify => audit::verify(&svc).await,
            }
        }
        Command::Doctor { url, json } => doctor::run(&loaded, url.as_deref(), json).await,
        Command::MailTest { address } => {
            let mailer = mailer(&loaded)?.context(MAIL_NOT_CONFIGURED)?;
            let server = mailer.settings().server();
            let message = mailer.test_message(&address)?;
            match mailer.send_now(message).await {
                Ok(reply) => {
                    println!("sent a test message to {address} through {server}; the server answered: {reply}");
                    Ok(())
                }
                Err(e) => anyhow::bail!("sending to {address} through {server} failed: {e}"),
            }
        }
        Command::Completions { shell } => completions::print(shell),
    }
}
