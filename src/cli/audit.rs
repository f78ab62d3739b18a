//! `userauth audit list|verify`.

use std::io::Write;

use anyhow::{Context, bail};
use futures_util::StreamExt;

use crate::service::AuthService;
use crate::service::audit::{AuditFilter, EventKind, Verified};

pub async fn list(
    svc: &AuthService,
    email: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(k) = &kind
        && EventKind::parse(k).is_none()
    {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        bail!("unknown event kind {k:?}; one of: {}", known.join(", "));
    }
    let since = since
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(&s).with_context(|| format!("--since {s:?} is not an RFC 3339 time"))
        })
        .transpose()?
        .map(|t| t.with_timezone(&chrono::Utc));
    let mut events = svc.list_audit(&AuditFilter { email, kind, since, limit }).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    while let Some(ev) = events.next().await {
        let ev = ev?;
        let written = if json {
            writeln!(out, "{}", serde_json::to_string(&ev)?)
        } else {
            writeln!(
                out,
                "{:>8}  {}  {:<17}  {:<32}  {}{}",
                ev.id,
                ev.at,
                ev.kind,
                ev.email.as_deref().unwrap_or("-"),
                ev.actor,
                ev.client.map(|c| format!(" {c}")).unwrap_or_default()
            )
        };
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

pub async fn verify(svc: &AuthService) -> anyhow::Result<()> {
    match svc.verify_audit().await? {
        Verified::Intact(n) => {
            println!("{n} events, chain intact");
            Ok(())
        }
        Verified::Broken { seq, reason } => bail!("audit chain broken at event {seq}: {reason}"),
    }
}
