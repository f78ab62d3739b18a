//! The durable, encrypted mail outbox (api.md §7, §14).
//!
//! In email mode a reset request is answered only after it is stored: the throttle is counted
//! for the normalised address and the *request* (the address, encrypted with the server key) is
//! inserted, in one transaction — the same statements whether or not the address has an account,
//! so the answer's timing tells nothing. Everything that depends on the account happens later,
//! in a worker that every `serve` instance runs:
//!
//! 1. it claims one due row with a lease (`claimed_until`): on PostgreSQL with `FOR UPDATE SKIP
//!    LOCKED`, on SQLite in one conditional `UPDATE` (SQLite's single writer serialises claims);
//!    another instance takes a row over only once its lease has run out (its claimant died);
//! 2. a request for an unknown address is dropped; for an account, a reset token is issued (with
//!    its `reset_issued` event) and the row becomes the email (address, token, expiry; encrypted);
//! 3. the email is sent; sent or permanently refused → the row is deleted; a temporary failure →
//!    the row waits (back-off doubling from 1 s to 60 s) and is retried until the token expires.
//!
//! A row outlives any process: a `serve` killed at any point leaves it for the next claim. The
//! only duplicate possible is a message the mail server accepted just before the sender died,
//! before the row was deleted (at-least-once at that instant, as with any SMTP client).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait,
    FromQueryResult, QueryFilter, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::domain::{Email, SecretToken};
use super::mail::{MailStats, SendFailure};
use super::throttle::{self, Kind};
use super::{AuthError, AuthService, chrono_dur};
use crate::entity::outbox::{self, Column, Entity};

/// The server key's purpose label for outbox payloads.
const PURPOSE: &str = "outbox";
/// How long a claim holds a row: well beyond one SMTP exchange (its timeout is 15 s).
const LEASE: Duration = Duration::from_secs(60);
/// How often an idle worker looks for rows stored by other instances (or due for a retry).
const POLL: Duration = Duration::from_secs(1);
/// Rows processed at once per instance.
const SENDERS: usize = 4;
pub(super) const KIND_REQUEST: &str = "request";
pub(super) const KIND_EMAIL: &str = "email";

/// What a row holds, before encryption.
#[derive(Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "lowercase")]
pub(super) enum Payload {
    /// A reset requested for this (normalised) address; not yet looked up.
    Request { email: String },
    /// The reset email for an account: the token exists (hashed) in `reset_tokens`.
    Email { to: String, token: String, expires_at: DateTime<Utc> },
    /// Email confirmation (api.md §13, `verification.rs`): a registration not yet looked up, with
    /// the password's bcrypt hash (computed before the answer, for every address alike).
    Register { email: String, password_hash: String },
    /// A resend of the confirmation link, not yet looked up.
    Resend { email: String },
    /// The confirmation email for a new account: the token exists (hashed).
    Verify { to: String, token: String, expires_at: DateTime<Utc> },
    /// The notice to the owner of an address someone tried to register again.
    Notice { to: String },
}

impl Payload {
    pub(super) fn seal(&self, svc: &AuthService) -> Result<Vec<u8>, AuthError> {
        let plain = Zeroizing::new(serde_json::to_vec(self).map_err(|e| AuthError::Internal(e.to_string()))?);
        svc.key().encrypt(PURPOSE, &plain).map_err(|e| AuthError::Internal(e.to_string()))
    }

    fn open(svc: &AuthService, sealed: &[u8]) -> Option<Self> {
        let plain = svc.key().decrypt(PURPOSE, sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// Which message a row sends, as the log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MailKind {
    Reset,
    Confirmation,
}

impl MailKind {
    fn name(self) -> &'static str {
        match self {
            MailKind::Reset => "reset",
            MailKind::Confirmation => "confirmation",
        }
    }

    /// What the deadline of a delivery is.
    fn deadline(self) -> &'static str {
        match self {
            MailKind::Reset => "before the token expired",
            MailKind::Confirmation => "in time",
        }
    }
}

/// Back-off before attempt `attempts + 1`: 1 s, 2 s, 4 s, … up to a minute.
pub(super) fn backoff(attempts: i32) -> Duration {
    let exp = Ord::min(u32::try_from(attempts.saturating_sub(1)).unwrap_or(0), 6);
    Duration::from_secs(1u64 << exp).min(Duration::from_secs(60))
}

impl AuthService {
    /// The email-mode reset request (api.md §7, §14): counted against the address's throttle and
    /// stored, encrypted, in one transaction, doing the same work for every well-formed address.
    pub(super) async fn enqueue_reset_request(&self, email: &Email) -> Result<(), AuthError> {
        let payload = Payload::Request { email: email.as_str().to_owned() };
        self.enqueue_payload(&payload, self.policy.reset_token_ttl, Some(email.as_str())).await
    }

    /// Stores `payload` (encrypted) for the worker, due now, dropped after `ttl`: the same one
    /// insert whatever the payload says (a reset request, or email confirmation: `verification.rs`).
    /// With `throttle_subject`, counted first against that address's reset throttle, in the same
    /// transaction.
    pub(super) async fn enqueue_payload(
        &self,
        payload: &Payload,
        ttl: Duration,
        throttle_subject: Option<&str>,
    ) -> Result<(), AuthError> {
        let at = self.now();
        let sealed = payload.seal(self)?;
        let txn = self.db.begin().await?;
        if let Some(subject) = throttle_subject {
            let (max, window) = (self.policy.reset_max_requests, self.policy.reset_window);
            if let Some(retry_after_secs) = throttle::reserve(&txn, at, Kind::Reset, subject, max, window).await? {
                txn.rollback().await?;
                return Err(AuthError::TooManyResetRequests { retry_after_secs });
            }
        }
        outbox::ActiveModel {
            id: Set(Uuid::new_v4()),
            kind: Set(KIND_REQUEST.to_owned()),
            payload: Set(sealed),
            created_at: Set(at),
            not_before: Set(at),
            expires_at: Set(at + chrono_dur(ttl)),
            attempts: Set(0),
            claimed_until: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        if let Some(m) = &self.mailer {
            m.wake();
        }
        Ok(())
    }

    /// How many rows wait in the outbox (claimed or not).
    pub async fn outbox_len(&self) -> Result<u64, AuthError> {
        use sea_orm::PaginatorTrait;
        Ok(Entity::find().count(&self.db).await?)
    }

    /// Claims one due row for `LEASE`, or `None` when nothing is due. Exactly one instance gets
    /// each row: PostgreSQL skips rows another transaction has locked; SQLite runs one writer.
    async fn claim(&self) -> Result<Option<outbox::Model>, AuthError> {
        let at = self.now();
        let free = Expr::col(Column::ClaimedUntil).is_null().or(Expr::col(Column::ClaimedUntil).lte(at));
        let mut due = Query::select();
        due.column(Column::Id)
            .from(Entity)
            .and_where(Expr::col(Column::NotBefore).lte(at))
            .and_where(free.clone())
            .order_by(Column::NotBefore, sea_orm::Order::Asc)
            .limit(1);
        if self.db.get_database_backend() == DbBackend::Postgres {
            due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let claim = Query::update()
            .table(Entity)
            .value(Column::ClaimedUntil, at + chrono_dur(LEASE))
            .value(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .and_where(Expr::col(Column::Id).in_subquery(due))
            .and_where(free)
            .returning_all()
            .to_owned();
        let Some(row) = self.db.query_one(&claim).await? else { return Ok(None) };
        Ok(Some(outbox::Model::from_query_result(&row, "")?))
    }

    /// Deletes a row this instance holds.
    pub(super) async fn outbox_done(&self, id: Uuid) -> Result<(), AuthError> {
        Entity::delete_by_id(id).exec(&self.db).await?;
        Ok(())
    }

    /// Claims and handles one row; `false` when nothing was due.
    pub async fn outbox_step(&self) -> Result<bool, AuthError> {
        let Some(row) = self.claim().await? else { return Ok(false) };
        self.handle(row).await?;
        Ok(true)
    }

    async fn handle(&self, row: outbox::Model) -> Result<(), AuthError> {
        let Some(mailer) = self.mailer.clone() else {
            return Err(AuthError::Internal("the outbox holds mail but smtp_url and mail_from are not set".into()));
        };
        let stats = mailer.stats();
        let at = self.now();
        if at >= row.expires_at {
            self.outbox_done(row.id).await?;
            if row.kind == KIND_EMAIL {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %row.id, "reset email not delivered before the token expired; giving up");
            }
            return Ok(());
        }
        let Some(payload) = Payload::open(self, &row.payload) else {
            // Not sealed by this key (instances refuse to start with another one): altered.
            self.outbox_done(row.id).await?;
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(id = %row.id, "outbox row does not open with the server key; dropped");
            return Ok(());
        };
        let (to, token, expires_at) = match payload {
            Payload::Request { email } => {
                let Ok(email) = Email::parse(&email) else {
                    self.outbox_done(row.id).await?;
                    return Ok(());
                };
                let Some(user) = self.find_user(&email).await? else {
                    // No account: nothing is sent (api.md §7).
                    self.outbox_done(row.id).await?;
                    return Ok(());
                };
                let issued = self.store_reset_token(&user).await?;
                let next = Payload::Email {
                    to: issued.email.clone(),
                    token: issued.token.expose().to_owned(),
                    expires_at: issued.expires_at,
                };
                // Still under our lease. Should we die before this update, the request is
                // claimed again later and a new token (voiding this one) is issued.
                self.stage(&self.db, row.id, &next, issued.expires_at).await?;
                (issued.email, issued.token, issued.expires_at)
            }
            Payload::Email { to, token, expires_at } => (to, SecretToken::from_outbox(token), expires_at),
            other => return self.handle_verification(row, other, &mailer).await,
        };
        let sent = mailer.send_reset(&to, &token, expires_at).await;
        self.settle(&row, sent, stats, MailKind::Reset, &to, expires_at).await
    }

    /// Turns the row into `next` (still under this instance's lease), in `db`'s transaction.
    pub(super) async fn stage<C: ConnectionTrait>(
        &self,
        db: &C,
        row: Uuid,
        next: &Payload,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        Entity::update_many()
            .col_expr(Column::Kind, Expr::value(KIND_EMAIL))
            .col_expr(Column::Payload, Expr::value(next.seal(self)?))
            .col_expr(Column::ExpiresAt, Expr::value(expires_at))
            .filter(Column::Id.eq(row))
            .exec(db)
            .await?;
        Ok(())
    }

    /// Settles a row after one attempt to send its message: sent or refused for good, the row is
    /// deleted; after a temporary failure it waits (back-off) for another attempt, unless that
    /// would come at or after `deadline`, when it is given up.
    pub(super) async fn settle(
        &self,
        row: &outbox::Model,
        sent: Result<(), SendFailure>,
        stats: &MailStats,
        kind: MailKind,
        to: &str,
        deadline: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let what = kind.name();
        match sent {
            Ok(()) => {
                self.outbox_done(row.id).await?;
                stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(to = %to, "{what} email sent");
            }
            Err(f) if f.permanent => {
                self.outbox_done(row.id).await?;
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(to = %to, reply = %f.error, "{what} email refused by the mail server");
            }
            Err(f) => {
                let wait = backoff(row.attempts);
                let retry_at = self.now() + chrono_dur(wait);
                if retry_at >= deadline {
                    self.outbox_done(row.id).await?;
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(to = %to, error = %f.error, "{what} email not delivered {}; giving up", kind.deadline());
                    return Ok(());
                }
                stats.retried.fetch_add(1, Ordering::Relaxed);
                tracing::info!(to = %to, error = %f.error, retry_in_secs = wait.as_secs(), "{what} email: temporary failure, will retry");
                Entity::update_many()
                    .col_expr(Column::NotBefore, Expr::value(retry_at))
                    .col_expr(Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
                    .filter(Column::Id.eq(row.id))
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The worker every `serve` instance runs while mail is configured: claims due rows (up to
/// `SENDERS` at once), woken at once by requests stored here and polling for the rest.
pub async fn run(svc: AuthService) {
    let Some(mailer) = svc.mailer().cloned() else { return };
    let senders = Arc::new(tokio::sync::Semaphore::new(SENDERS));
    loop {
        let Ok(permit) = senders.clone().acquire_owned().await else { return };
        match svc.claim().await {
            Ok(Some(row)) => {
                let svc = svc.clone();
                tokio::spawn(async move {
                    if let Err(e) = svc.handle(row).await {
                        tracing::warn!(error = %e, "outbox: handling a row failed; it is retried when its lease ends");
                    }
                    drop(permit);
                });
            }
            Ok(None) => {
                drop(permit);
                let _ = tokio::time::timeout(POLL, mailer.woken()).await;
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "outbox: claiming failed");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}
