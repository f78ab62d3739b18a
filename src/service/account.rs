//! Self-service for a logged-in user (api.md §8): their sessions, and changing their password.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, TransactionTrait};
use uuid::Uuid;

use super::audit::{EventKind, NewEvent};
use super::domain::{Email, presented_token_digest};
use super::throttle::{self, Kind};
use super::{AuthError, AuthService, UserView, chrono_dur};
use crate::entity::{session, user};

/// One of the caller's sessions, as they may see it: never its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub current: bool,
    /// The client address it was opened from, when known.
    pub client: Option<String>,
}

impl AuthService {
    /// The caller's user and the digest of their session token, or `NotAuthenticated`.
    async fn caller(&self, presented: &str) -> Result<(UserView, String), AuthError> {
        let user = self.authenticate(presented).await?;
        let digest = presented_token_digest(presented).ok_or(AuthError::NotAuthenticated)?;
        Ok((user, digest))
    }

    /// The caller's live sessions, oldest first.
    pub async fn list_sessions(&self, presented: &str) -> Result<Vec<SessionInfo>, AuthError> {
        let (user, digest) = self.caller(presented).await?;
        let at = self.now();
        let idle_cutoff = at - chrono_dur(self.policy.session_idle_timeout);
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(user.id))
            .filter(session::Column::ExpiresAt.gt(at))
            .filter(session::Column::LastSeenAt.gt(idle_cutoff))
            .order_by_asc(session::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            // A session opened by a binary older than the public ids gets one now.
            let id = match row.public_id {
                Some(id) => id,
                None => {
                    let id = Uuid::new_v4();
                    session::Entity::update_many()
                        .col_expr(session::Column::PublicId, Expr::value(id))
                        .filter(session::Column::TokenHash.eq(row.token_hash.as_str()))
                        .exec(&self.db)
                        .await?;
                    id
                }
            };
            out.push(SessionInfo {
                id,
                created_at: row.created_at,
                last_seen_at: row.last_seen_at,
                user_agent: row.user_agent,
                client: row.client,
                current: row.token_hash == digest,
            });
        }
        Ok(out)
    }

    /// Ends one of the caller's sessions by its public id (`SessionNotFound` for anyone else's).
    pub async fn end_session(&self, presented: &str, id: Uuid) -> Result<(), AuthError> {
        let (user, _) = self.caller(presented).await?;
        let txn = self.db.begin().await?;
        let ended = session::Entity::delete_many()
            .filter(session::Column::UserId.eq(user.id))
            .filter(session::Column::PublicId.eq(id))
            .exec(&txn)
            .await?;
        if ended.rows_affected == 0 {
            return Err(AuthError::SessionNotFound);
        }
        self.audit_in(&txn, vec![NewEvent::new(EventKind::SessionEnded, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Ends every session of the caller but this one. Returns how many ended.
    pub async fn end_other_sessions(&self, presented: &str) -> Result<u64, AuthError> {
        let (user, digest) = self.caller(presented).await?;
        let txn = self.db.begin().await?;
        let ended = session::Entity::delete_many()
            .filter(session::Column::UserId.eq(user.id))
            .filter(session::Column::TokenHash.ne(digest))
            .exec(&txn)
            .await?;
        if ended.rows_affected > 0 {
            self.audit_in(&txn, vec![NewEvent::new(EventKind::SessionsRevoked, Some(user.id), &user.email)]).await?;
        }
        txn.commit().await?;
        Ok(ended.rows_affected)
    }

    /// Changes the caller's password. The current password is checked like a login: a place in the
    /// hashing queue, then the attempt is reserved against the account's lockout before bcrypt
    /// runs (a wrong one counts; 429 once locked). Every other session ends; this one stays.
    pub async fn change_password(
        &self,
        presented: &str,
        current_password: &str,
        new_password: &str,
    ) -> Result<UserView, AuthError> {
        let ticket = self.hasher.admit(self.hash_client())?;
        let (caller, digest) = self.caller(presented).await?;
        // The policy first: a new password that could never be accepted costs no attempt.
        let new_password = self.policy.parse_password(new_password)?;
        let email = Email::parse(&caller.email)?;
        let (max, window) = (self.policy.login_max_failures, self.policy.login_failure_window);
        if let Some(retry_after_secs) =
            throttle::reserve(&self.db, self.now(), Kind::Login, email.as_str(), max, window).await?
        {
            return Err(AuthError::AccountLocked { retry_after_secs });
        }
        let user = user::Entity::find_by_id(caller.id).one(&self.db).await?.ok_or(AuthError::NotAuthenticated)?;
        if !ticket.verify(current_password, Some(&user.password_hash)).await? {
            drop(ticket);
            self.audit_alone(vec![NewEvent::new(EventKind::LoginFailed, Some(user.id), &user.email)]).await?;
            return Err(AuthError::InvalidCredentials);
        }
        let hash = ticket.hash(&new_password).await?;
        drop(ticket);
        throttle::clear(&self.db, Kind::Login, email.as_str()).await?;
        let at = self.now();
        let txn = self.db.begin().await?;
        // Only over the credential just verified: a change racing another change or a reset loses;
        // a concurrent hash upgrade (same password, same version) does not make it fail.
        let changed = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .col_expr(user::Column::UpdatedAt, Expr::value(at))
            .col_expr(user::Column::CredentialVersion, Expr::col(user::Column::CredentialVersion).add(1i64))
            .filter(user::Column::Id.eq(user.id))
            .filter(user::Column::CredentialVersion.eq(user.credential_version))
            .exec(&txn)
            .await?;
        if changed.rows_affected != 1 {
            return Err(AuthError::InvalidCredentials);
        }
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(user.id))
            .filter(session::Column::TokenHash.ne(digest))
            .exec(&txn)
            .await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::PasswordChanged, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        self.count(|m| m.password_change());
        Ok(caller)
    }
}
