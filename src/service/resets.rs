//! Issuing password-reset tokens (api.md §7): through the API (throttled per account; in the
//! answer, or by email through the outbox) and for the operator. Using a token is in
//! `password.rs`.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::audit::{EventKind, NewEvent};
use super::domain::{Email, SecretToken};
use super::metrics::ResetStage;
use super::throttle::{self, Kind};
use super::{AuthError, AuthService, InternalError, IssuedResetToken, RequestContext, ResetRequest, chrono_dur, mail};
use crate::entity::{reset_token, user};

impl AuthService {
    /// Issues a reset token through the public API: throttled per account.
    pub async fn request_reset(&self, ctx: &RequestContext, email: &str) -> Result<IssuedResetToken, AuthError> {
        let user = self.user_by_email(email).await?;
        // Counted and decided in one statement before the token exists, as logins are.
        self.reserve(Kind::Reset, &Email::parse(&user.email)?).await?;
        self.store_reset_token(ctx, &user).await
    }

    /// A reset request from the API, delivered as configured: in the answer, or by email with the
    /// same answer for every well-formed address. In email mode the request is only counted and
    /// stored (encrypted) in the outbox, the same work for every address; the lookup, the token
    /// and the email happen after the answer (`outbox.rs`, api.md §14).
    pub async fn self_service_reset(&self, ctx: &RequestContext, email: &str) -> Result<ResetRequest, AuthError> {
        if self.policy.reset_delivery == mail::ResetDelivery::Response {
            return self.request_reset(ctx, email).await.map(ResetRequest::Token);
        }
        if self.mailer.is_none() {
            return Err(InternalError::NoMailer.into());
        }
        let email = Email::parse(email)?;
        self.enqueue_reset_request(&email).await?;
        Ok(ResetRequest::Emailed)
    }

    /// Issues a reset token for the operator and emails it (`userauth user reset --send`);
    /// returns the mail server's reply.
    pub async fn operator_reset_by_email(&self, email: &str) -> Result<(String, String), AuthError> {
        let mailer = self.mailer.as_ref().ok_or(InternalError::MailNotConfigured)?;
        let issued = self.operator_reset(email).await?;
        let message = mailer.reset_message(&issued.email, &issued.token, issued.expires_at)?;
        let reply = mailer.send_now(message).await?;
        Ok((issued.email, reply))
    }

    /// Issues a reset token for the operator (`userauth user reset`): not throttled.
    pub async fn operator_reset(&self, email: &str) -> Result<IssuedResetToken, AuthError> {
        let user = self.user_by_email(email).await?;
        let issued = self.store_reset_token(&RequestContext::operator(), &user).await?;
        // The operator vouches for the account: its failed-login count starts afresh.
        throttle::clear(&self.db, Kind::Login, &issued.email).await?;
        Ok(issued)
    }

    /// A new reset token for `user`, stored (hashed) in place of any older one.
    pub(super) async fn store_reset_token(
        &self,
        ctx: &RequestContext,
        user: &user::Model,
    ) -> Result<IssuedResetToken, AuthError> {
        let token = SecretToken::generate().map_err(InternalError::from)?;
        let at = self.now();
        let expires_at = at + chrono_dur(self.policy.reset_token_ttl);
        let txn = self.db.begin().await?;
        // A new token voids every older one.
        reset_token::Entity::delete_many().filter(reset_token::Column::UserId.eq(user.id)).exec(&txn).await?;
        reset_token::ActiveModel {
            token_hash: Set(token.digest()),
            user_id: Set(user.id),
            created_at: Set(at),
            expires_at: Set(expires_at),
            used_at: Set(None),
        }
        .insert(&txn)
        .await?;
        self.audit_in(&txn, ctx, vec![NewEvent::new(EventKind::ResetIssued, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        self.count(|m| m.password_reset(ResetStage::Issued));
        Ok(IssuedResetToken { email: user.email.clone(), token, expires_at })
    }
}
