//! Passwords once an account exists: checking the current one (as a login does), changing it
//! (self-service, api.md §8), setting a new one with a reset token, and the one conditional
//! write every credential change goes through.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, TransactionTrait, UpdateMany};

use super::audit::{EventKind, NewEvent};
use super::domain::{Email, presented_token_digest};
use super::metrics::ResetStage;
use super::reauth::OnRightPassword;
use super::throttle::{self, Kind};
use super::{AuthError, AuthService, Authenticated, RequestContext, UserView};
use crate::entity::{reset_token, session, user};

/// Applies `update` to `user` only while its credential is still the one just verified (the same
/// `credential_version`): a login or change racing a password change or a reset loses. The
/// guard is the version, not the hash text: a concurrent upgrade re-hashes the same password
/// (and keeps the version), which must not turn a correct login or change into a failure.
/// Returns whether it applied.
pub(super) async fn update_if_credential_unchanged<C: ConnectionTrait>(
    db: &C,
    user: &user::Model,
    update: UpdateMany<user::Entity>,
) -> Result<bool, DbErr> {
    let applied = update
        .filter(user::Column::Id.eq(user.id))
        .filter(user::Column::CredentialVersion.eq(user.credential_version))
        .exec(db)
        .await?;
    Ok(applied.rows_affected == 1)
}

/// The write that sets a new password: the hash, the time, and a new credential version, so
/// logins that verified the old password can no longer open a session.
fn new_password_update(hash: String, at: DateTime<Utc>) -> UpdateMany<user::Entity> {
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .col_expr(user::Column::UpdatedAt, Expr::value(at))
        .col_expr(user::Column::CredentialVersion, Expr::col(user::Column::CredentialVersion).add(1i64))
}

impl AuthService {
    /// Changes the caller's password. The current password is checked like a login (`reauth.rs`).
    /// Every other session ends; this one stays.
    pub async fn change_password(
        &self,
        ctx: &RequestContext,
        me: &Authenticated,
        current_password: &str,
        new_password: &str,
    ) -> Result<UserView, AuthError> {
        let ticket = self.hasher.admit(self.hash_client(ctx))?;
        // The policy first: a new password that could never be accepted costs no attempt.
        let new_password = self.policy.parse_new_password(new_password, &me.user.email)?;
        let (user, ticket) =
            self.confirm_current_password(ctx, ticket, me, current_password, OnRightPassword::Clear).await?;
        let hash = ticket.hash(&new_password).await?;
        drop(ticket);
        let at = self.now();
        let txn = self.db.begin().await?;
        // Only over the credential just verified: a change racing another change or a reset loses.
        if !update_if_credential_unchanged(&txn, &user, new_password_update(hash, at)).await? {
            return Err(AuthError::InvalidCredentials);
        }
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(user.id))
            .filter(session::Column::TokenHash.ne(me.session_digest()))
            .exec(&txn)
            .await?;
        self.audit_in(&txn, ctx, vec![NewEvent::new(EventKind::PasswordChanged, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        self.count(|m| m.password_change());
        Ok(me.user.clone())
    }

    /// Sets a new password with a reset token: single use, and every session of the user ends.
    /// With `expected_email`, the token must belong to that account (the classic route).
    pub async fn update_password(
        &self,
        ctx: &RequestContext,
        presented: &str,
        new_password: &str,
        expected_email: Option<&str>,
    ) -> Result<UserView, AuthError> {
        let ticket = self.hasher.admit(self.hash_client(ctx))?;
        let digest = presented_token_digest(presented).ok_or(AuthError::InvalidResetToken)?;
        let at = self.now();
        let found =
            reset_token::Entity::find_by_id(digest.clone()).find_also_related(user::Entity).one(&self.db).await?;
        let Some((token, Some(user))) = found else {
            return Err(AuthError::InvalidResetToken);
        };
        if token.used_at.is_some() || at >= token.expires_at {
            return Err(AuthError::InvalidResetToken);
        }
        if let Some(expected) = expected_email
            && Email::parse(expected).ok().as_ref().map(Email::as_str) != Some(user.email.as_str())
        {
            return Err(AuthError::InvalidResetToken);
        }
        let password = self.policy.parse_new_password(new_password, &user.email)?;
        // Hash before the transaction: no lock is held during the slow part.
        let hash = ticket.hash(&password).await?;
        drop(ticket);
        let txn = self.db.begin().await?;
        // Claim the token; the condition makes two concurrent uses race to one winner.
        let claimed = reset_token::Entity::update_many()
            .col_expr(reset_token::Column::UsedAt, Expr::value(at))
            .filter(reset_token::Column::TokenHash.eq(digest))
            .filter(reset_token::Column::UsedAt.is_null())
            .filter(reset_token::Column::ExpiresAt.gt(at))
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Err(AuthError::InvalidResetToken);
        }
        // Whatever the credential was: holding the token is the proof here.
        new_password_update(hash, at).filter(user::Column::Id.eq(user.id)).exec(&txn).await?;
        session::Entity::delete_many().filter(session::Column::UserId.eq(user.id)).exec(&txn).await?;
        // A completed reset proves control of the mailbox or of the operator's token: the lockout ends.
        throttle::clear(&txn, Kind::Login, &user.email).await?;
        self.audit_in(&txn, ctx, vec![NewEvent::new(EventKind::PasswordReset, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        self.count(|m| m.password_reset(ResetStage::Completed));
        Ok(user.into())
    }
}
