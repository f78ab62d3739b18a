//! `userauth user …`: add, reset, list, delete, log out, unlock, confirm (and, in their own files,
//! import and factors).

use std::io::{IsTerminal, Write};

use anyhow::bail;
use clap::Subcommand;
use futures_util::StreamExt;
use serde::Serialize;

use super::prompt;
use crate::config::Loaded;
use crate::service::{AuthService, ListFilter, UserSummary, rfc3339};

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

impl UserCommand {
    pub async fn run(self, loaded: &Loaded) -> anyhow::Result<()> {
        let svc = super::open_service(loaded).await?;
        match self {
            UserCommand::Add { email, password_stdin } => add(&svc, &email, password_stdin).await,
            UserCommand::Reset { email, json, send } => {
                reset(&svc, &email, json, send, &loaded.settings.public_base_url()).await
            }
            UserCommand::List { json, limit, offset, email_contains } => {
                list(&svc, json, &ListFilter { limit, offset, email_contains }).await
            }
            UserCommand::Delete { email, yes } => delete(&svc, &email, yes).await,
            UserCommand::Logout { email } => logout(&svc, &email).await,
            UserCommand::Unlock { email } => unlock(&svc, &email).await,
            UserCommand::Import { file, from_flask } => super::import::run(&svc, file, from_flask).await,
            UserCommand::Confirm { email } => confirm(&svc, &email).await,
            UserCommand::Factors { email, json, reset, yes } => {
                super::factors::run(&svc, &email, json, reset, yes).await
            }
        }
    }
}

async fn add(svc: &AuthService, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let password = prompt::password(password_stdin).await?;
    let user = svc.register(email, &password).await?;
    println!("created user {} ({})", user.email, user.id);
    Ok(())
}

/// `user reset --json`, fields in this order.
#[derive(Serialize)]
struct IssuedJson<'a> {
    email: &'a str,
    reset_token: &'a str,
    expires_at: String,
    reset_url: &'a str,
}

/// `base` is where the pages are: `public_url`, or the local URL.
async fn reset(svc: &AuthService, email: &str, json: bool, send: bool, base: &str) -> anyhow::Result<()> {
    if send {
        if svc.mailer().is_none() {
            bail!("{}", super::MAIL_NOT_CONFIGURED);
        }
        let (to, reply) = svc.operator_reset_by_email(email).await?;
        println!("emailed a reset link to {to}; the mail server answered: {reply}");
        return Ok(());
    }
    let issued = svc.operator_reset(email).await?;
    // The link the user can open as it is, the same one the reset email carries.
    let link = format!("{base}/reset?token={}", issued.token.expose());
    let expires_at = rfc3339(issued.expires_at);
    if json {
        let v = IssuedJson { email: &issued.email, reset_token: issued.token.expose(), expires_at, reset_url: &link };
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("email:       {}", issued.email);
        println!("reset_token: {}", issued.token.expose());
        println!("expires_at:  {expires_at}");
        println!("reset_url:   {link}");
    }
    Ok(())
}

async fn list(svc: &AuthService, json: bool, filter: &ListFilter) -> anyhow::Result<()> {
    let mut rows = svc.list_users(filter).await?;
    // A person at a terminal gets an aligned table; scripts and pipes get a stream (constant memory).
    if !json && std::io::stdout().is_terminal() {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING).set_header([
            "ID",
            "EMAIL",
            "CREATED",
            "LAST LOGIN",
            "SESSIONS",
        ]);
        let mut n = 0u64;
        while let Some(row) = rows.next().await {
            let row = row?;
            n += 1;
            table.add_row([
                row.id.to_string(),
                row.email,
                rfc3339(row.created_at),
                row.last_login_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                row.active_sessions.to_string(),
            ]);
        }
        println!("{table}");
        println!("{n} user(s)");
        return Ok(());
    }
    let header = format!("{:<36}  {:<32}  {:<20}  {:<20}  {:>8}", "ID", "EMAIL", "CREATED", "LAST LOGIN", "SESSIONS");
    let header = (!json).then_some(header.as_str());
    super::print_lines(rows, header, |out, row| if json { write_json(out, &row) } else { write_row(out, &row) }).await
}

async fn delete(svc: &AuthService, email: &str, yes: bool) -> anyhow::Result<()> {
    let user = svc.get_user(email).await?;
    let question = format!("Delete user {} with all its sessions and reset tokens?", user.email);
    if !prompt::confirm(yes, &format!("deleting {}", user.email), question).await? {
        println!("nothing deleted");
        return Ok(());
    }
    let deleted = svc.delete_user(&user.email).await?;
    println!("deleted user {} ({}) with its sessions and reset tokens", deleted.email, deleted.id);
    Ok(())
}

async fn logout(svc: &AuthService, email: &str) -> anyhow::Result<()> {
    let user = svc.get_user(email).await?;
    let ended = svc.logout_everywhere(&user.email).await?;
    println!("ended {ended} session(s) of {}", user.email);
    Ok(())
}

async fn unlock(svc: &AuthService, email: &str) -> anyhow::Result<()> {
    let (email, was_locked) = svc.unlock(email).await?;
    if was_locked {
        println!("cleared the failed-login count of {email}; it can log in again now");
    } else {
        println!("{email} had no failed logins counted; nothing to clear");
    }
    Ok(())
}

/// `userauth user confirm EMAIL` (api.md §13).
async fn confirm(svc: &AuthService, email: &str) -> anyhow::Result<()> {
    if svc.confirm_email(email).await? {
        println!("confirmed {}", email.trim().to_lowercase());
    } else {
        println!("{} was already confirmed", email.trim().to_lowercase());
    }
    Ok(())
}

/// A line of `user list --json`, fields in this order.
#[derive(Serialize)]
struct SummaryJson<'a> {
    id: uuid::Uuid,
    email: &'a str,
    created_at: String,
    last_login_at: Option<String>,
    active_sessions: i64,
    email_confirmed: bool,
    factors: Vec<&'static str>,
}

fn write_json(out: &mut dyn Write, row: &UserSummary) -> std::io::Result<()> {
    let v = SummaryJson {
        id: row.id,
        email: &row.email,
        created_at: rfc3339(row.created_at),
        last_login_at: row.last_login_at.map(rfc3339),
        active_sessions: row.active_sessions,
        email_confirmed: row.email_confirmed_at.is_some(),
        factors: factor_names(row),
    };
    writeln!(out, "{}", serde_json::to_string(&v).map_err(std::io::Error::other)?)
}

/// `factors` of api.md §10: the password, then each other factor that is on (TOTP, passkeys).
fn factor_names(row: &UserSummary) -> Vec<&'static str> {
    let mut out = vec!["password"];
    if row.totp_factors > 0 {
        out.push("totp");
    }
    if row.passkeys > 0 {
        out.push("passkey");
    }
    out
}

fn write_row(out: &mut dyn Write, row: &UserSummary) -> std::io::Result<()> {
    let last = row.last_login_at.map(rfc3339).unwrap_or_else(|| "never".into());
    writeln!(
        out,
        "{:<36}  {:<32}  {:<20}  {:<20}  {:>8}",
        row.id,
        row.email,
        rfc3339(row.created_at),
        last,
        row.active_sessions
    )
}
