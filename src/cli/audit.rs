//! `userauth audit list|verify`.

use std::io::IsTerminal;

use anyhow::bail;

use crate::service::AuthService;
use crate::service::audit::{AuditFilter, EventKind, Verified};

/// `audit list`'s filters as typed.
pub struct ListArgs {
    pub email: Option<String>,
    pub kind: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub newest: Option<u64>,
    pub limit: Option<u64>,
}

/// RFC 3339, or a plain date meaning that day's midnight UTC.
fn parse_time(flag: &str, s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    bail!("{flag} {s:?} is neither an RFC 3339 time (2026-11-29T08:00:00Z) nor a date (2026-11-29)")
}

pub async fn list(svc: &AuthService, args: ListArgs, json: bool) -> anyhow::Result<()> {
    let ListArgs { email, kind, since, until, newest, limit } = args;
    if let Some(k) = &kind
        && EventKind::parse(k).is_none()
    {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        bail!("unknown event kind {k:?}; one of: {}", known.join(", "));
    }
    let since = since.map(|s| parse_time("--since", &s)).transpose()?;
    let until = until.map(|s| parse_time("--until", &s)).transpose()?;
    let events = svc.list_audit(&AuditFilter { email, kind, since, limit, until, newest }).await?;
    // A person at a terminal gets column names; pipes get the bare lines.
    let header = format!("{:>8}  {:<27}  {:<17}  {:<32}  {}", "ID", "AT", "KIND", "EMAIL", "ACTOR");
    let header = (!json && std::io::stdout().is_terminal()).then_some(header.as_str());
    super::print_lines(events, header, |out, ev| {
        if json {
            writeln!(out, "{}", serde_json::to_string(&ev).map_err(std::io::Error::other)?)
        } else {
            writeln!(
                out,
                "{:>8}  {}  {:<17}  {:<32}  {}{}{}",
                ev.id,
                ev.at,
                ev.kind,
                ev.email.as_deref().unwrap_or("-"),
                ev.actor,
                ev.client.map(|c| format!(" {c}")).unwrap_or_default(),
                ev.method.map(|m| format!("  method={m}")).unwrap_or_default()
            )
        }
    })
    .await
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
