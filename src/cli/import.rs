//! `userauth user import`: users from a CSV file (or stdin) or from the original Flask service's
//! database, all rows checked before any is written.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::prompt;
use crate::service::AuthService;
use crate::service::import::{ImportRow, NumberedRow, RowError, SecretColumn};

/// Clap's argument group makes one of the two required.
pub async fn run(svc: &AuthService, file: Option<PathBuf>, from_flask: Option<PathBuf>) -> anyhow::Result<()> {
    match (file, from_flask) {
        (_, Some(flask)) => import_flask(svc, &flask).await,
        (Some(file), None) => import_csv(svc, file).await,
        (None, None) => bail!("give a CSV file or --from-flask PATH"),
    }
}

/// A CSV row as read: its line and its two cells, or why it could not be read.
type CsvRow = (u64, Result<(String, String), RowError>);

async fn import_csv(svc: &AuthService, path: PathBuf) -> anyhow::Result<()> {
    // Reading a file or stdin blocks: a blocking thread, as for prompts.
    let (column, records) = prompt::blocking(move || read_csv(&path)).await?;
    let rows: Vec<NumberedRow> = records
        .into_iter()
        .map(|(line, cells)| (line, cells.and_then(|(email, secret)| svc.parse_import_row(&email, column, &secret))))
        .collect();
    import(svc, rows).await
}

fn read_csv(path: &Path) -> anyhow::Result<(SecretColumn, Vec<CsvRow>)> {
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
    let rows = csv
        .records()
        .map(|record| match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                let cell = |i| r.get(i).unwrap_or_default().to_owned();
                (line, Ok((cell(0), cell(1))))
            }
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(RowError::Unreadable(e.to_string()))),
        })
        .collect();
    Ok((column, rows))
}

async fn import_flask(svc: &AuthService, path: &Path) -> anyhow::Result<()> {
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
