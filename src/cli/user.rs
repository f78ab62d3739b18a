use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use futures_util::StreamExt;

use std::path::Path;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::service::admin::ImportSecret;
use crate::service::db::{DatabaseUrl, DbOptions, connect};
use crate::service::{AuthService, ListFilter, UserSummary, rfc3339};

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
    let user = svc.register(email, &password).await?;
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

pub async fn list(svc: &AuthService, json: bool, filter: &ListFilter) -> anyhow::Result<()> {
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

pub async fn delete(svc: &AuthService, email: &str, yes: bool) -> anyhow::Result<()> {
    let user = svc.get_user(email).await?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("not deleting {} without confirmation: pass --yes", user.email);
        }
        let confirmed = dialoguer::Confirm::new()
            .with_prompt(format!("Delete user {} with all its sessions and reset tokens?", user.email))
            .default(false)
            .interact()
            .context("reading the confirmation failed")?;
        if !confirmed {
            println!("nothing deleted");
            return Ok(());
        }
    }
    let deleted = svc.delete_user(&user.email).await?;
    println!("deleted user {} ({}) with its sessions and reset tokens", deleted.email, deleted.id);
    Ok(())
}

pub async fn logout(svc: &AuthService, email: &str) -> anyhow::Result<()> {
    let user = svc.get_user(email).await?;
    let ended = svc.logout_everywhere(&user.email).await?;
    println!("ended {ended} session(s) of {}", user.email);
    Ok(())
}

/// Rows to import: (line number, email, secret).
type RawRows = Vec<(u64, String, ImportSecret)>;

pub async fn import_csv(svc: &AuthService, path: &Path) -> anyhow::Result<()> {
    let reader: Box<dyn std::io::Read + Send> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
    };
    // Only the header is trimmed: a plain password is kept byte for byte (spaces are allowed in
    // passwords), and emails and hashes are trimmed when they are parsed.
    let mut csv = csv::ReaderBuilder::new().trim(csv::Trim::Headers).from_reader(reader);
    let headers: Vec<String> =
        csv.headers().context("reading the CSV header failed")?.iter().map(str::to_lowercase).collect();
    let hashed = match headers.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["email", "password_hash"] => true,
        ["email", "password"] => false,
        other => bail!("the CSV header must be `email,password_hash` or `email,password`, not `{}`", other.join(",")),
    };
    let mut rows: RawRows = Vec::new();
    let mut rejected = Vec::new();
    for record in csv.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                let (email, secret) = (r.get(0).unwrap_or_default(), r.get(1).unwrap_or_default().to_owned());
                let secret = if hashed { ImportSecret::Hash(secret) } else { ImportSecret::Password(secret) };
                rows.push((line, email.to_owned(), secret));
            }
            Err(e) => rejected.push((e.position().map_or(0, |p| p.line()), format!("unreadable row: {e}"))),
        }
    }
    import(svc, rows, rejected).await
}

pub async fn import_flask(svc: &AuthService, path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!("no Flask database at {}", path.display());
    }
    let url = DatabaseUrl::sqlite_file(path, true)?;
    let flask = connect(&DbOptions::new(url)).await.with_context(|| format!("cannot open {}", path.display()))?;
    let records = flask
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT email, hashed_password FROM users ORDER BY rowid",
        ))
        .await
        .context("reading the Flask users table (email, hashed_password) failed")?;
    let mut rows: RawRows = Vec::new();
    let mut rejected = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        let line = i as u64 + 1;
        let email: Option<String> = rec.try_get_by_index(0).ok();
        // SQLAlchemy stored bcrypt's bytes: as a BLOB, as text, or as the text of a Python bytes literal.
        let hash = rec
            .try_get_by_index::<String>(1)
            .ok()
            .or_else(|| rec.try_get_by_index::<Vec<u8>>(1).ok().and_then(|b| String::from_utf8(b).ok()))
            .map(|h| h.strip_prefix("b'").and_then(|h| h.strip_suffix('\'')).map(str::to_owned).unwrap_or(h));
        match (email, hash) {
            (Some(e), Some(h)) => rows.push((line, e, ImportSecret::Hash(h))),
            _ => rejected.push((line, "email or hashed_password is empty or unreadable".to_owned())),
        }
    }
    import(svc, rows, rejected).await
}

/// Checks every row first: with any invalid row nothing is imported. Then imports in batches,
/// one transaction each, skipping emails that already exist.
async fn import(svc: &AuthService, rows: RawRows, mut rejected: Vec<(u64, String)>) -> anyhow::Result<()> {
    const BATCH: usize = 1000;
    let mut checked = Vec::with_capacity(rows.len());
    for (line, email, secret) in rows {
        match svc.check_import_row(&email, secret) {
            Ok(row) => checked.push(row),
            Err(reason) => rejected.push((line, reason)),
        }
    }
    if !rejected.is_empty() {
        rejected.sort_by_key(|(line, _)| *line);
        for (line, reason) in &rejected {
            eprintln!("row {line}: {reason}");
        }
        bail!(
            "{} invalid row(s); nothing was imported (imported 0 / skipped 0 / rejected {})",
            rejected.len(),
            rejected.len()
        );
    }
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(checked.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (mut imported, mut skipped) = (0, 0);
    let mut rest = checked.into_iter();
    loop {
        let batch: Vec<_> = rest.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let n = batch.len() as u64;
        let (i, s) = svc.import_batch(batch).await?;
        imported += i;
        skipped += s;
        bar.inc(n);
    }
    bar.finish_and_clear();
    println!("imported {imported} / skipped {skipped} (already registered) / rejected 0");
    Ok(())
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
