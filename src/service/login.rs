//! Logging in with a password (api.md §6): the hashing queue, the account's throttle window,
//! bcrypt, then a new session, opened only over the credential just verified.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use super::audit::{EventKind, NewEvent};
use super::domain::{Email, SecretToken};
use super::metrics::LoginResult;
use super::throttle::{self, Kind};
use super::{AuthError, AuthService, InternalError, NewSession, RequestContext, UserView, chrono_dur, verification};
use crate::entity::{session, user};

/// How a session was opened, as `login_succeeded` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    Password,
    Passkey,
}

impl LoginMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Password => "password",
            LoginMethod::Passkey => "passkey",
        }
    }
}

impl AuthService {
    /// Checks credentials and opens a new session. Unknown emails and wrong passwords cost the
    /// same bcrypt verification and the same throttle write, and fail identically.
    ///
    /// Order matters (api.md §6): a place in the hashing queue (503 when full), then the attempt
    /// is counted against the account in one atomic statement (429 when the window is used up),
    /// and only then does bcrypt run; so at most `login_max_failures` wrong passwords are ever
    /// verified per window, however many requests race.
    pub async fn login(&self, ctx: &RequestContext, email: &str, password: &str) -> Result<NewSession, AuthError> {
        let result = self.login_checked(ctx, email, password).await;
        let outcome = match &result {
            Ok(_) => Some(LoginResult::Success),
            Err(AuthError::InvalidCredentials) => Some(LoginResult::Invalid),
            Err(AuthError::AccountLocked { .. }) => Some(LoginResult::Locked),
            Err(AuthError::Busy) => Some(LoginResult::Busy),
            Err(_) => None,
        };
        if let Some(outcome) = outcome {
            self.count(|m| m.login(outcome));
        }
        result
    }

    /// A login the edge refused before it reached the service (the client's per-minute budget was
    /// used up): counted with every other login result.
    pub fn count_throttled_login(&self) {
        self.count(|m| m.login(LoginResult::Throttled));
    }

    async fn login_checked(&self, ctx: &RequestContext, email: &str, password: &str) -> Result<NewSession, AuthError> {
        let ticket = self.hasher.admit(self.hash_client(ctx))?;
        let Ok(email) = Email::parse(email) else {
            // No account can have this address; still spend the verification so that
            // malformed input is not a faster path.
            ticket.verify(password, None).await?;
            return Err(AuthError::InvalidCredentials);
        };
        if let Err(refused) = self.reserve(Kind::Login, &email).await {
            if matches!(refused, AuthError::AccountLocked { .. }) {
                self.note_lockout(ctx, &email).await?;
            }
            return Err(refused);
        }
        let user = self.find_user(&email).await?;
        let matched = ticket.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
        let user = match user {
            Some(u) if matched => u,
            // The attempt stays counted.
            other => {
                drop(ticket);
                let event = NewEvent::new(EventKind::LoginFailed, other.map(|u| u.id), email.as_str());
                self.audit_alone(ctx, vec![event]).await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        // A hash of another cost or prefix (imported, or from before a cost change) is replaced
        // now that the password is known, so every account costs the same to verify.
        let upgraded = if self.hasher.needs_upgrade(&user.password_hash) {
            match ticket.hash_secret(password).await {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "re-hashing at the configured cost failed; keeping the old hash");
                    None
                }
            }
        } else {
            None
        };
        drop(ticket);
        // Only after a correct password: a wrong one never learns whether the address is confirmed.
        // Before the second factor: an unconfirmed address gets no pending login either.
        if self.policy.email_verification == verification::EmailVerification::Required
            && user.email_confirmed_at.is_none()
        {
            throttle::clear(&self.db, Kind::Login, email.as_str()).await?;
            return Err(AuthError::EmailNotConfirmed);
        }
        // A user with a second factor gets a pending login instead (api.md §10).
        if let Some(pending) = self.begin_second_factor(&user, upgraded.as_deref()).await? {
            return Ok(pending);
        }
        throttle::clear(&self.db, Kind::Login, email.as_str()).await?;
        self.open_session(ctx, user, upgraded, LoginMethod::Password).await
    }

    /// One event per account per window: the first refusal marks the window and writes it in the
    /// same transaction; the rest are only counted (metrics) and cost no audit write.
    async fn note_lockout(&self, ctx: &RequestContext, email: &Email) -> Result<(), AuthError> {
        let (max, _) = Kind::Login.limits(&self.policy);
        let txn = self.db.begin().await?;
        if throttle::note_refusal(&txn, Kind::Login, email.as_str(), max).await? {
            // Read in the transaction: a one-connection pool (SQLite in memory) has no other.
            let user = user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(&txn).await?;
            let event = NewEvent::new(EventKind::LoginLocked, user.map(|u| u.id), email.as_str());
            self.audit_in(&txn, ctx, vec![event]).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// A new session for `user`, whose credential was just verified (by `method`); `new_hash`
    /// replaces the stored hash (an upgrade of the same password) in the same write.
    pub(super) async fn open_session(
        &self,
        ctx: &RequestContext,
        user: user::Model,
        new_hash: Option<String>,
        method: LoginMethod,
    ) -> Result<NewSession, AuthError> {
        let token = SecretToken::generate().map_err(InternalError::from)?;
        let at = self.now();
        let expires_at = at + chrono_dur(self.policy.session_absolute_timeout);
        let idle_cutoff = at - chrono_dur(self.policy.session_idle_timeout);
        let txn = self.db.begin().await?;
        // Write first (on SQLite the transaction then holds the write lock from its first statement),
        // and only if the password is still the one just verified: a login racing a password
        // change must not leave a session behind that the change should have ended.
        let mut update = user::Entity::update_many().col_expr(user::Column::LastLoginAt, Expr::value(at));
        if let Some(h) = new_hash {
            update = update.col_expr(user::Column::PasswordHash, Expr::value(h));
        }
        if !super::password::update_if_credential_unchanged(&txn, &user, update).await? {
            return Err(AuthError::InvalidCredentials);
        }
        session::ActiveModel {
            token_hash: Set(token.digest()),
            user_id: Set(user.id),
            created_at: Set(at),
            last_seen_at: Set(at),
            expires_at: Set(expires_at),
            public_id: Set(Some(Uuid::new_v4())),
            user_agent: Set(ctx.user_agent().map(str::to_owned)),
            client: Set(ctx.client().map(|c| c.to_string())),
        }
        .insert(&txn)
        .await?;
        // Housekeeping on this user's own rows, so dead sessions do not pile up.
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(user.id))
            .filter(session::Column::ExpiresAt.lte(at).or(session::Column::LastSeenAt.lte(idle_cutoff)))
            .exec(&txn)
            .await?;
        let event = NewEvent::new(EventKind::LoginSucceeded, Some(user.id), &user.email);
        self.audit_login_in(&txn, ctx, method, vec![event]).await?;
        txn.commit().await?;
        let user = UserView { last_login_at: Some(at), ..UserView::from(user) };
        Ok(NewSession { token, user, expires_at, second_factor: Vec::new() })
    }
}
