//! `userauth audit list|verify`.

use std::io::IsTerminal;

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::args;
use crate::config::Loaded;
use crate::service::AuthService;
use crate::service::audit::{AuditFilter, EventKind, Verified};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List events, oldest first
    List {
        /// Only events of this email
        #[arg(long, value_name = "E")]
        email: Option<String>,
        /// Only events of this kind
        #[arg(long, value_name = "K", value_parser = args::EventKindParser)]
        kind: Option<EventKind>,
        /// Only events at or after this time: RFC 3339 (2026-11-29T08:00:00Z) or a date (2026-11-29, midnight UTC)
        #[arg(long, value_name = "TIME", value_parser = args::since)]
        since: Option<DateTime<Utc>>,
        /// Only events before this time: RFC 3339 or a date (2026-11-30 means before that day begins, UTC)
        #[arg(long, value_name = "TIME", value_parser = args::until)]
        until: Option<DateTime<Utc>>,
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

impl AuditCommand {
    pub async fn run(self, loaded: &Loaded) -> anyhow::Result<()> {
        let svc = super::open_service(loaded).await?;
        match self {
            AuditCommand::List { email, kind, since, until, newest, limit, json } => {
                let kind = kind.map(|k| k.as_str().to_owned());
                list(&svc, AuditFilter { email, kind, since, limit, until, newest }, json).await
            }
            AuditCommand::Verify => verify(&svc).await,
        }
    }
}

async fn list(svc: &AuthService, filter: AuditFilter, json: bool) -> anyhow::Result<()> {
    let events = svc.list_audit(&filter).await?;
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

async fn verify(svc: &AuthService) -> anyhow::Result<()> {
    match svc.verify_audit().await? {
        Verified::Intact(n) => {
            println!("{n} events, chain intact");
            Ok(())
        }
        Verified::Broken { seq, reason } => bail!("audit chain broken at event {seq}: {reason}"),
    }
}
