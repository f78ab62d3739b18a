//! The audit log (api.md §9, §14): every account event appended in the same transaction as the
//! change it records, chained so that editing, deleting or reordering a row is detected.
//!
//! Here: the events, appending them within a change's transaction, and listing them. The chain
//! (its links, appends, verification and pruning) is in `chain.rs`; the kinds in `kind.rs`.

mod chain;
mod kind;

use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use chain::append;
pub(super) use chain::lock_head;
pub use kind::EventKind;

use super::domain::Email;
use super::{AuthError, AuthService};
use crate::entity::audit_event;

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
}

impl NewEvent {
    pub fn new(kind: EventKind, user_id: Option<Uuid>, email: &str) -> Self {
        Self { kind, user_id, email: Some(email.to_owned()) }
    }
}

/// An event as `audit list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub actor: String,
    pub client: Option<String>,
    pub hash: String,
    /// `login_succeeded` only: `password` or `passkey`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl From<audit_event::Model> for AuditEvent {
    fn from(m: audit_event::Model) -> Self {
        Self {
            id: m.seq,
            at: m.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            kind: m.kind,
            user_id: m.user_id,
            email: m.email,
            actor: m.actor,
            client: m.client,
            hash: m.hash,
            method: m.method,
        }
    }
}

/// Which events `audit list` shows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub email: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only the last N events (still shown oldest first).
    pub newest: Option<u64>,
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// This many events, every hash as expected.
    Intact(u64),
    /// The first event (by sequence number) that does not match, and why.
    Broken { seq: i64, reason: String },
}

impl AuthService {
    /// Appends events in their own transaction (for events that change nothing else: failed or
    /// locked logins).
    pub(super) async fn audit_alone(&self, events: Vec<NewEvent>) -> Result<(), AuthError> {
        if !self.policy.audit || events.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin().await?;
        append(&txn, &self.key, self.now(), self.actor, self.login_method, events).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Appends events in the caller's transaction, when the audit log is on.
    pub(super) async fn audit_in<C: ConnectionTrait>(&self, txn: &C, events: Vec<NewEvent>) -> Result<(), DbErr> {
        if !self.policy.audit {
            return Ok(());
        }
        append(txn, &self.key, self.now(), self.actor, self.login_method, events).await
    }

    /// Streams events in order (oldest first) that match `filter`.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
    ) -> Result<impl Stream<Item = Result<AuditEvent, AuthError>> + '_, AuthError> {
        let mut query = audit_event::Entity::find();
        if let Some(email) = &filter.email {
            let email = Email::parse(email)?;
            query = query.filter(audit_event::Column::Email.eq(email.as_str()));
        }
        if let Some(kind) = &filter.kind {
            query = query.filter(audit_event::Column::Kind.eq(kind.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_event::Column::At.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_event::Column::At.lt(until));
        }
        if let Some(n) = filter.newest {
            // The N-th newest matching event's sequence number bounds the stream from below, so
            // the listing stays oldest first and streamed.
            let nth = query
                .clone()
                .order_by_desc(audit_event::Column::Seq)
                .offset(n.saturating_sub(1))
                .limit(1)
                .one(&self.db)
                .await?;
            match (n, nth) {
                (0, _) => query = query.filter(audit_event::Column::Seq.lt(i64::MIN)),
                (_, Some(ev)) => query = query.filter(audit_event::Column::Seq.gte(ev.seq)),
                // Fewer than N events match: all of them.
                (_, None) => {}
            }
        }
        query = query.order_by_asc(audit_event::Column::Seq);
        if let Some(limit) = filter.limit {
            query = query.limit(limit);
        }
        let stream = query.stream(&self.db).await?;
        Ok(stream.map(|r| r.map(AuditEvent::from).map_err(AuthError::from)))
    }
}
