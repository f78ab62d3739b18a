use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use futures_util::StreamExt;

use crate::service::{AuthService, UserSummary};

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The password from a hidden prompt (twice) on a terminal, otherwise one line of stdin.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !from_stdin && stdin.is_terminal() {
        return dialoguer::Password::new()
            .with_prompt("Password")
            .with_confirmation("Repeat password", "the passwords do not match")
            .interact()
            .context("reading the password failed");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading the password from stdin failed")?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password.to_owned())
}

pub async fn add(svc: &AuthService, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let password = read_password(password_stdin)?;
    let user = svc.add_user(email, &password).await?;
    println!("created user {} ({})", user.email, user.id);
    Ok(())
}

pub async fn reset(svc: &AuthService, email: &str, json: bool) -> anyhow::Result<()> {
    let issued = svc.operator_reset(email).await?;
    if json {
        let v = serde_json::json!({
            "email": issued.email,
            "reset_token": issued.token.expose(),
            "expires_at": rfc3339(issued.expires_at),
        });
        println!("{v}");
    } else {
        println!("email:       {}", issued.email);
        println!("reset_token: {}", issued.token.expose());
        println!("expires_at:  {}", rfc3339(issued.expires_at));
    }
    Ok(())
}

pub async fn list(svc: &AuthService, json: bool, limit: Option<u64>) -> anyhow::Result<()> {
    let mut rows = svc.list_users(limit).await?;
    // Not `stdout().lock()`: the guard cannot be held across awaits on a multi-threaded runtime.
    let mut out = std::io::BufWriter::new(std::io::stdout());
    if !json {
        writeln!(out, "{:<36}  {:<32}  {:<20}  {:<20}  {:>8}", "ID", "EMAIL", "CREATED", "LAST LOGIN", "SESSIONS")?;
    }
    while let Some(row) = rows.next().await {
        let row = row?;
        let written = if json { write_json(&mut out, &row) } else { write_row(&mut out, &row) };
        match written {
            // A closed pipe (`| head`) ends the listing quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn write_json(out: &mut impl Write, row: &UserSummary) -> std::io::Result<()> {
    let v = serde_json::json!({
        "id": row.id,
        "email": row.email,
        "created_at": rfc3339(row.created_at),
        "last_login_at": row.last_login_at.map(rfc3339),
        "active_sessions": row.active_sessions,
    });
    writeln!(out, "{v}")
}

fn write_row(out: &mut impl Write, row: &UserSummary) -> std::io::Result<()> {
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
