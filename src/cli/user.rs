use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use futures_util::StreamExt;

use std::path::Path;

use crate::service::import::{ImportRow, NumberedRow, RowError, SecretColumn};
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
    let user = svc.register(&crate::service::RequestContext::operator(), email, &password).await?;
    println!("created user {} ({})", user.email, user.id);
    Ok(())
}

/// `base` is where the pages are: `public_url`, or the local URL.
pub async fn reset(svc: &AuthService, email: &str, json: bool, send: bool, base: &str) -> anyhow::Result<()> {
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
    if json {
        let v = serde_json::json!({
            "email": issued.email,
            "reset_token": issued.token.expose(),
            "expires_at": rfc3339(issued.expires_at),
            "reset_url": link,
        });
        println!("{v}");
    } else {
        println!("email:       {}", issued.email);
        println!("reset_token: {}", issued.token.expose());
        println!("expires_at:  {}", rfc3339(issued.expires_at));
        println!("reset_url:   {link}");
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
    let header = format!("{:<36}  {:<32}  {:<20}  {:<20}  {:>8}", "ID", "EMAIL", "CREATED", "LAST LOGIN", "SESSIONS");
    let header = (!json).then_some(header.as_str());
    super::print_lines(rows, header, |out, row| if json { write_json(out, &row) } else { write_row(out, &row) }).await
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

pub async fn unlock(svc: &AuthService, email: &str) -> anyhow::Result<()> {
    let (email, was_locked) = svc.unlock(email).await?;
    if was_locked {
        println!("cleared the failed-login count of {email}; it can log in again now");
    } else {
        println!("{email} had no failed logins counted; nothing to clear");
    }
    Ok(())
}

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
    let column = match headers.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["email", "password_hash"] => SecretColumn::Hash,
        ["email", "password"] => SecretColumn::Password,
        other => bail!("the CSV header must be `email,password_hash` or `email,password`, not `{}`", other.join(",")),
    };
    let rows: Vec<NumberedRow> = csv
        .records()
        .map(|record| match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                (line, svc.parse_import_row(r.get(0).unwrap_or_default(), column, r.get(1).unwrap_or_default()))
            }
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(RowError::Unreadable(e.to_string()))),
        })
        .collect();
    import(svc, rows).await
}

pub async fn import_flask(svc: &AuthService, path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!("no Flask database at {}", path.display());
    }
    let rows = svc.read_flask_users(path).await.with_context(|| {
        format!("reading the Flask users table (email, hashed_password) in {} failed", path.display())
    })?;
    import(svc, rows).await
}

/// With any invalid row nothing is imported (each is reported with its line number). Otherwise
/// imports in batches, one transaction each, skipping emails that already exist.
async fn import(svc: &AuthService, rows: Vec<NumberedRow>) -> anyhow::Result<()> {
    const BATCH: usize = 1000;
    let (checked, rejected): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, r)| r.is_ok());
    if !rejected.is_empty() {
        for (line, reason) in &rejected {
            if let Err(reason) = reason {
                eprintln!("row {line}: {reason}");
            }
        }
        bail!(
            "{} invalid row(s); nothing was imported (imported 0 / skipped 0 / rejected {})",
            rejected.len(),
            rejected.len()
        );
    }
    let checked: Vec<ImportRow> = checked.into_iter().filter_map(|(_, r)| r.ok()).collect();
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

/// `userauth user confirm EMAIL` (api.md §13).
pub async fn confirm(svc: &AuthService, email: &str) -> anyhow::Result<()> {
    if svc.confirm_email(email).await? {
        println!("confirmed {}", email.trim().to_lowercase());
    } else {
        println!("{} was already confirmed", email.trim().to_lowercase());
    }
    Ok(())
}

fn write_json(out: &mut dyn Write, row: &UserSummary) -> std::io::Result<()> {
    let v = serde_json::json!({
        "id": row.id,
        "email": row.email,
        "created_at": rfc3339(row.created_at),
        "last_login_at": row.last_login_at.map(rfc3339),
        "active_sessions": row.active_sessions,
        "email_confirmed": row.email_confirmed_at.is_some(),
        "factors": factor_names(row),
    });
    writeln!(out, "{v}")
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
