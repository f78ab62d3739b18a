//! `userauth audit list|verify`.

use anyhow::{Context, bail};

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
    let events = svc.list_audit(&AuditFilter { email, kind, since, limit }).await?;
    super::print_lines(events, None, |out, ev| {
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
