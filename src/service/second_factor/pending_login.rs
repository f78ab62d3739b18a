//! The pending login between a right password and the second step, and finishing it with a
//! TOTP code, a recovery code or a passkey.
//!
//! Pending logins live in their own table: the session reads (`authenticate`, the fast path)
//! never see them, so a pending login authorises nothing but finishing the login. Every code
//! attempt is counted against the account's login lockout before it is checked
//! (`throttle::reserve`), so wrong codes and wrong passwords share `login_max_failures`.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::entity::{pending_login, user};
use crate::service::audit::{EventKind, NewEvent};
use crate::service::domain::{SecretToken, presented_token_digest};
use crate::service::metrics::{SecondFactorMethod, SecondFactorResult};
use crate::service::throttle::{self, Kind};
use crate::service::{AuthError, AuthService, NewSession, UserView, chrono_dur};

/// How the second step of a login is proven.
#[derive(Clone, Copy)]
pub enum SecondFactorProof<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

impl SecondFactorProof<'_> {
    fn method(&self) -> SecondFactorMethod {
        match self {
            SecondFactorProof::Totp(_) => SecondFactorMethod::Totp,
            SecondFactorProof::RecoveryCode(_) => SecondFactorMethod::RecoveryCode,
        }
    }
}

impl AuthService {
    /// Called by `login` once the password is right. For a user with a second factor: gives back
    /// the one attempt the password used (so wrong passwords and wrong codes share one budget, and
    /// a right password does not reset the count of wrong codes) and opens a pending login instead
    /// of a session. `None`: the password alone logs in. `new_hash` is the password re-hashed at
    /// the configured cost (api.md §6), stored now: the password was right, whatever the second step.
    pub(in crate::service) async fn begin_second_factor(
        &self,
        user: &user::Model,
        new_hash: Option<&str>,
    ) -> Result<Option<NewSession>, AuthError> {
        let factors = self.available_second_factors(user.id).await?;
        // Only TOTP makes the password a first factor. A passkey is a whole login of its own
        // (§11: both factors), not a second step the password needs: a user with passkeys and no
        // TOTP still logs in with the password alone.
        if !factors.contains(&"totp") {
            return Ok(None);
        }
        throttle::release(&self.db, Kind::Login, &user.email).await?;
        if let Some(h) = new_hash {
            // Only over the credential just verified, as `open_session` does: a racing change wins.
            user::Entity::update_many()
                .col_expr(user::Column::PasswordHash, Expr::value(h))
                .filter(user::Column::Id.eq(user.id))
                .filter(user::Column::CredentialVersion.eq(user.credential_version))
                .exec(&self.db)
                .await?;
        }
        let token = SecretToken::generate().map_err(|e| AuthError::Internal(e.to_string()))?;
        let at = self.now();
        let expires_at = at + chrono_dur(self.policy.second_factor_timeout);
        pending_login::ActiveModel {
            token_hash: Set(token.digest()),
            user_id: Set(user.id),
            created_at: Set(at),
            expires_at: Set(expires_at),
        }
        .insert(&self.db)
        .await?;
        // Housekeeping on this user's own rows.
        pending_login::Entity::delete_many()
            .filter(pending_login::Column::UserId.eq(user.id))
            .filter(pending_login::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await?;
        Ok(Some(NewSession { token, user: UserView::from(user.clone()), expires_at, second_factor: factors }))
    }

    /// Whether `presented` is a live pending login: guards use it, on their failure path only, to
    /// answer `second_factor_required` instead of a plain 401.
    pub async fn is_pending_login(&self, presented: &str) -> Result<bool, AuthError> {
        Ok(self.pending_login_user(presented).await?.is_some())
    }

    /// The user of a live pending login, if `presented` is one.
    pub async fn pending_login_user(&self, presented: &str) -> Result<Option<Uuid>, AuthError> {
        let Some(digest) = presented_token_digest(presented) else { return Ok(None) };
        Ok(pending_login::Entity::find_by_id(digest)
            .filter(pending_login::Column::ExpiresAt.gt(self.now()))
            .one(&self.db)
            .await?
            .map(|p| p.user_id))
    }

    /// `POST /api/v1/passkeys/login/finish` with the caller's cookie, if any (api.md §10, §11).
    /// When `presented` is a live pending login, the passkey must be its user's (another user's is
    /// `PasskeyLoginFailed`, and the pending login stays); success spends the pending login and
    /// opens a full session with a new token. Otherwise it is a plain passkey login.
    pub async fn finish_passkey_login_from(
        &self,
        presented: Option<&str>,
        challenge_id: &str,
        credential: &serde_json::Value,
    ) -> Result<NewSession, AuthError> {
        let pending = match presented {
            Some(token) => self.pending_login_user(token).await?.map(|user| (token, user)),
            None => None,
        };
        let result = self.finish_passkey_login(challenge_id, credential, pending.map(|(_, user)| user)).await;
        let Some((token, _)) = pending else { return result };
        match &result {
            Ok(session) => {
                self.count_second_factor(SecondFactorMethod::Passkey, SecondFactorResult::Success);
                // Spent: the new full session replaces it. (A racing request that also proved a
                // passkey of this user gets a session of its own, as a plain passkey login would.)
                if let Some(digest) = presented_token_digest(token) {
                    pending_login::Entity::delete_by_id(digest).exec(&self.db).await?;
                }
                // The wrong passwords and codes before a passkey proved the user stop counting,
                // as after a second step with a code.
                throttle::clear(&self.db, Kind::Login, &session.user.email).await?;
            }
            Err(AuthError::PasskeyLoginFailed) => {
                self.count_second_factor(SecondFactorMethod::Passkey, SecondFactorResult::Invalid)
            }
            Err(_) => {}
        }
        result
    }

    /// Finishes a pending login with a TOTP code or a recovery code: a new full session (a new
    /// token: the pending one is gone). `NotAuthenticated` without a live pending login,
    /// `InvalidCode` for a wrong, replayed or used code (counted toward the lockout),
    /// `AccountLocked` once the window is used up (nothing checked).
    pub async fn complete_second_factor(
        &self,
        presented: &str,
        proof: SecondFactorProof<'_>,
    ) -> Result<NewSession, AuthError> {
        let method = proof.method();
        let result = self.complete_second_factor_checked(presented, proof).await;
        match &result {
            Ok(_) => self.count_second_factor(method, SecondFactorResult::Success),
            Err(AuthError::InvalidCode) => self.count_second_factor(method, SecondFactorResult::Invalid),
            Err(AuthError::AccountLocked { .. }) => self.count_second_factor(method, SecondFactorResult::Locked),
            Err(_) => {}
        }
        result
    }

    async fn complete_second_factor_checked(
        &self,
        presented: &str,
        proof: SecondFactorProof<'_>,
    ) -> Result<NewSession, AuthError> {
        let digest = presented_token_digest(presented).ok_or(AuthError::NotAuthenticated)?;
        let at = self.now();
        let pending = pending_login::Entity::find_by_id(digest.clone()).one(&self.db).await?;
        let Some(pending) = pending else { return Err(AuthError::NotAuthenticated) };
        if at >= pending.expires_at {
            pending_login::Entity::delete_by_id(digest).exec(&self.db).await?;
            return Err(AuthError::NotAuthenticated);
        }
        let user = user::Entity::find_by_id(pending.user_id).one(&self.db).await?.ok_or(AuthError::NotAuthenticated)?;
        let (max, window) = (self.policy.login_max_failures, self.policy.login_failure_window);
        if let Some(retry_after_secs) = throttle::reserve(&self.db, at, Kind::Login, &user.email, max, window).await? {
            return Err(AuthError::AccountLocked { retry_after_secs });
        }
        let accepted = match proof {
            SecondFactorProof::Totp(code) => self.use_totp_code(user.id, &user.email, code, at).await?,
            SecondFactorProof::RecoveryCode(code) => self.use_recovery_code(user.id, code).await?,
        };
        if !accepted {
            self.audit_alone(vec![NewEvent::new(EventKind::SecondFactorFailed, Some(user.id), &user.email)]).await?;
            return Err(AuthError::InvalidCode);
        }
        // The pending login is spent by exactly one request, whatever else raced with it.
        let spent = pending_login::Entity::delete_many()
            .filter(pending_login::Column::TokenHash.eq(digest))
            .exec(&self.db)
            .await?;
        if spent.rows_affected != 1 {
            return Err(AuthError::NotAuthenticated);
        }
        throttle::clear(&self.db, Kind::Login, &user.email).await?;
        if matches!(proof, SecondFactorProof::RecoveryCode(_)) {
            self.audit_alone(vec![NewEvent::new(EventKind::RecoveryCodeUsed, Some(user.id), &user.email)]).await?;
        }
        self.open_session(user, None).await
    }

    /// Deletes expired pending logins. Returns rows removed.
    pub async fn purge_pending_logins(&self) -> Result<u64, AuthError> {
        Ok(pending_login::Entity::delete_many()
            .filter(pending_login::Column::ExpiresAt.lte(self.now()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
