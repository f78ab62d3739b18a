//! Email confirmation without enumeration (api.md §13).
//!
//! With `email_verification = "required"` a registration through the API is answered the same
//! way for every well-formed address: the password is checked and hashed (the same bcrypt for a
//! new address and an existing one), and the request — address and hash, encrypted with the
//! server key — is stored in the durable outbox (`outbox.rs`, api.md §14). Only the worker looks
//! the address up, after the answer:
//!
//! - a new address: the account is created unconfirmed, a confirmation token is issued (stored as
//!   its digest) and the row becomes the email with the link `{public_url}/verify?token=T`, all
//!   in one transaction, then the email is sent;
//! - an existing address: its owner gets a notice that someone tried to register with it.
//!
//! The link leads to a page with a button (a mail scanner that follows links confirms nothing);
//! the button posts the token. A resend request is stored the same way for every address and
//! leads to a new link only for an account still waiting for confirmation.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, SqlErr, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::{EventKind, NewEvent};
use super::domain::{Email, Password, SecretToken, presented_token_digest};
use super::hashing::HashTicket;
use super::mail::{LinkMessage, Mailer, SendFailure};
use super::outbox::{MailKind, Payload};
use super::{Actor, AuthError, AuthService, UserView, chrono_dur};
use crate::entity::email_verification_token as evt;
use crate::entity::outbox as outbox_entity;
use crate::entity::user;

/// Whether new addresses must be confirmed before their first login (api.md §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EmailVerification {
    /// The original behaviour: an account can log in at once.
    #[default]
    Off,
    Required,
}

/// The answer's message for every registration when confirmation is required.
pub const CHECK_YOUR_EMAIL: &str = "check your email to confirm your address";
/// The answer to every well-formed resend request.
pub const RESEND_MESSAGE: &str = "if that address is waiting for confirmation, a new link is on its way";

/// What a registration did.
#[derive(Debug)]
pub enum SignUp {
    /// The account exists now (`email_verification = "off"`).
    Created(UserView),
    /// Stored for the worker; the answer is the same whether or not the address has an account.
    Pending { email: String },
}

impl AuthService {
    /// A registration from the API or the pages: created at once, or (confirmation required)
    /// answered uniformly and completed after the answer.
    pub async fn sign_up(&self, email: &str, password: &str) -> Result<SignUp, AuthError> {
        if self.policy.email_verification != EmailVerification::Required || self.actor == Actor::Cli {
            return self.register(email, password).await.map(SignUp::Created);
        }
        if self.mailer.is_none() {
            return Err(AuthError::Internal("email_verification = \"required\" needs smtp_url and mail_from".into()));
        }
        let ticket = self.hasher.admit(self.hash_client())?;
        let email = Email::parse(email)?;
        let password = self.policy.parse_new_password(password, email.as_str())?;
        self.register_pending(ticket, &email, &password).await?;
        Ok(SignUp::Pending { email: email.as_str().to_owned() })
    }

    /// The same work for every address: one bcrypt, one encrypted insert.
    async fn register_pending(&self, ticket: HashTicket, email: &Email, password: &Password) -> Result<(), AuthError> {
        let password_hash = ticket.hash(password).await?;
        drop(ticket);
        let payload = Payload::Register { email: email.as_str().to_owned(), password_hash };
        self.enqueue_payload(&payload, self.policy.verification_ttl, None).await
    }

    /// `POST /api/v1/verify_email/resend`: stored for the worker, the same for every well-formed
    /// address; counted against the address's reset throttle so a mailbox cannot be flooded.
    pub async fn resend_verification(&self, email: &str) -> Result<(), AuthError> {
        let email = Email::parse(email)?;
        // Without mail, verification cannot be required (the configuration refuses it), so no
        // address waits for a link: the same 202, with nothing to store.
        if self.mailer.is_none() {
            return Ok(());
        }
        let payload = Payload::Resend { email: email.as_str().to_owned() };
        self.enqueue_payload(&payload, self.policy.verification_ttl, Some(email.as_str())).await
    }

    /// Confirms the address a token was issued for: single use, within `verification_ttl_secs`.
    pub async fn verify_email(&self, presented: &str) -> Result<UserView, AuthError> {
        let digest = presented_token_digest(presented).ok_or(AuthError::InvalidVerificationToken)?;
        let at = self.now();
        let found = evt::Entity::find_by_id(digest.clone()).find_also_related(user::Entity).one(&self.db).await?;
        let Some((token, Some(found_user))) = found else {
            return Err(AuthError::InvalidVerificationToken);
        };
        if token.used_at.is_some() || at >= token.expires_at {
            return Err(AuthError::InvalidVerificationToken);
        }
        let txn = self.db.begin().await?;
        // Claim the token; two concurrent uses race to one winner.
        let claimed = evt::Entity::update_many()
            .col_expr(evt::Column::UsedAt, Expr::value(at))
            .filter(evt::Column::TokenHash.eq(digest))
            .filter(evt::Column::UsedAt.is_null())
            .filter(evt::Column::ExpiresAt.gt(at))
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Err(AuthError::InvalidVerificationToken);
        }
        let confirmed_at = self.mark_confirmed(&txn, &found_user, at).await?;
        txn.commit().await?;
        Ok(UserView::from(user::Model { email_confirmed_at: Some(confirmed_at), ..found_user }))
    }

    /// `userauth user confirm EMAIL`. Returns `false` when the address was already confirmed.
    pub async fn confirm_email(&self, email: &str) -> Result<bool, AuthError> {
        let email = Email::parse(email)?;
        let found = self.find_user(&email).await?.ok_or(AuthError::UserNotFound)?;
        if found.email_confirmed_at.is_some() {
            return Ok(false);
        }
        let txn = self.db.begin().await?;
        self.mark_confirmed(&txn, &found, self.now()).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Whether the account's address is confirmed (`None`: no such account).
    pub async fn email_confirmed(&self, email: &str) -> Result<Option<bool>, AuthError> {
        let email = Email::parse(email)?;
        Ok(self.find_user(&email).await?.map(|u| u.email_confirmed_at.is_some()))
    }

    /// Sets `email_confirmed_at` (kept when already set), voids the account's other tokens and
    /// writes `email_confirmed`. Returns the confirmation time.
    async fn mark_confirmed(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        target: &user::Model,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, AuthError> {
        user::Entity::update_many()
            .col_expr(user::Column::EmailConfirmedAt, Expr::value(at))
            .filter(user::Column::Id.eq(target.id))
            .filter(user::Column::EmailConfirmedAt.is_null())
            .exec(txn)
            .await?;
        evt::Entity::delete_many()
            .filter(evt::Column::UserId.eq(target.id))
            .filter(evt::Column::UsedAt.is_null())
            .exec(txn)
            .await?;
        self.audit_in(txn, vec![NewEvent::new(EventKind::EmailConfirmed, Some(target.id), &target.email)]).await?;
        Ok(target.email_confirmed_at.unwrap_or(at))
    }

    /// A new confirmation token for `user_id`, stored (as its digest) in place of older ones.
    async fn insert_verification_token(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        user_id: Uuid,
    ) -> Result<(SecretToken, DateTime<Utc>), AuthError> {
        let token = SecretToken::generate().map_err(|e| AuthError::Internal(e.to_string()))?;
        let at = self.now();
        let expires_at = at + chrono_dur(self.policy.verification_ttl);
        evt::Entity::delete_many().filter(evt::Column::UserId.eq(user_id)).exec(txn).await?;
        evt::ActiveModel {
            token_hash: Set(token.digest()),
            user_id: Set(user_id),
            created_at: Set(at),
            expires_at: Set(expires_at),
            used_at: Set(None),
        }
        .insert(txn)
        .await?;
        Ok((token, expires_at))
    }

    /// The worker's part for confirmation rows: everything that depends on the account.
    pub(super) async fn handle_verification(
        &self,
        row: outbox_entity::Model,
        payload: Payload,
        mailer: &Mailer,
    ) -> Result<(), AuthError> {
        let (to, message) = match payload {
            Payload::Register { email, password_hash } => {
                let Ok(email) = Email::parse(&email) else { return self.outbox_done(row.id).await };
                if let Some(owner) = self.find_user(&email).await? {
                    self.stage_notice(&row, &owner.email).await?;
                    (owner.email.clone(), mailer.notice_message(&owner.email))
                } else {
                    match self.create_unconfirmed(&row, &email, password_hash).await? {
                        Some((token, expires_at)) => (
                            email.as_str().to_owned(),
                            mailer.link_message(LinkMessage::Verification, email.as_str(), &token, expires_at),
                        ),
                        // Registered by someone else in the meantime: the owner is told instead.
                        None => {
                            self.stage_notice(&row, email.as_str()).await?;
                            (email.as_str().to_owned(), mailer.notice_message(email.as_str()))
                        }
                    }
                }
            }
            Payload::Resend { email } => {
                let Ok(email) = Email::parse(&email) else { return self.outbox_done(row.id).await };
                let Some(waiting) = self.find_user(&email).await?.filter(|u| u.email_confirmed_at.is_none()) else {
                    // No account, or confirmed already: nothing is sent.
                    return self.outbox_done(row.id).await;
                };
                let txn = self.db.begin().await?;
                let (token, expires_at) = self.insert_verification_token(&txn, waiting.id).await?;
                let next = Payload::Verify { to: waiting.email.clone(), token: token.expose().to_owned(), expires_at };
                self.stage(&txn, row.id, &next, expires_at).await?;
                txn.commit().await?;
                (
                    waiting.email.clone(),
                    mailer.link_message(LinkMessage::Verification, &waiting.email, &token, expires_at),
                )
            }
            Payload::Verify { to, token, expires_at } => {
                let message =
                    mailer.link_message(LinkMessage::Verification, &to, &SecretToken::from_outbox(token), expires_at);
                (to, message)
            }
            Payload::Notice { to } => {
                let message = mailer.notice_message(&to);
                (to, message)
            }
            // Reset rows are handled in `outbox.rs`; nothing else reaches here.
            Payload::Request { .. } | Payload::Email { .. } => return Ok(()),
        };
        let sent = match message {
            Ok(m) => mailer.send_message(m).await,
            Err(error) => Err(SendFailure { permanent: true, error }),
        };
        self.settle(&row, sent, mailer.stats(), MailKind::Confirmation, &to, row.expires_at).await
    }

    /// Turns the row into the notice to `to` (one statement, under this instance's lease).
    async fn stage_notice(&self, row: &outbox_entity::Model, to: &str) -> Result<(), AuthError> {
        self.stage(&self.db, row.id, &Payload::Notice { to: to.to_owned() }, row.expires_at).await
    }

    /// Creates the unconfirmed account with its first token, its `registered` event, and turns the
    /// row into the confirmation email, in one transaction. `None`: the address was taken meanwhile.
    async fn create_unconfirmed(
        &self,
        row: &outbox_entity::Model,
        email: &Email,
        password_hash: String,
    ) -> Result<Option<(SecretToken, DateTime<Utc>)>, AuthError> {
        let at = self.now();
        let txn = self.db.begin().await?;
        let created = user::ActiveModel {
            id: Set(Uuid::new_v4()),
            email: Set(email.as_str().to_owned()),
            password_hash: Set(password_hash),
            created_at: Set(at),
            updated_at: Set(at),
            last_login_at: Set(None),
            email_confirmed_at: Set(None),
            credential_version: Set(0),
        }
        .insert(&txn)
        .await;
        let created = match created {
            Ok(m) => m,
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (token, expires_at) = self.insert_verification_token(&txn, created.id).await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::Registered, Some(created.id), &created.email)]).await?;
        let next = Payload::Verify { to: created.email.clone(), token: token.expose().to_owned(), expires_at };
        self.stage(&txn, row.id, &next, expires_at).await?;
        txn.commit().await?;
        self.count(|m| m.registration());
        Ok(Some((token, expires_at)))
    }
}
