//! What the operator types: a password or a confirmation on a terminal, or a line of stdin. Each
//! blocks until the person answers, so it runs on a blocking thread, never on an async worker.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

/// Runs `read` on tokio's blocking pool.
pub async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(read).await.context("the thread reading the input failed")?
}

/// The password from a hidden prompt (twice) on a terminal, otherwise one line of stdin.
pub async fn password(from_stdin: bool) -> anyhow::Result<String> {
    blocking(move || read_password(from_stdin)).await
}

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

/// Whether to go ahead with `doing` (e.g. "deleting alice@example.com"): yes with `--yes`, else
/// the answer to `question` on a terminal; off a terminal without `--yes`, an error.
pub async fn confirm(yes: bool, doing: &str, question: String) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("not {doing} without confirmation: pass --yes");
    }
    blocking(move || {
        dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()
            .context("reading the confirmation failed")
    })
    .await
}
