//! Self-service for a logged-in user (api.md §8): their sessions. Changing the password is in
//! `password.rs`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};
use uuid::Uuid;

use super::audit::{EventKind, NewEvent};
use super::{AuthError, AuthService, Authenticated, RequestContext, chrono_dur};
use crate::entity::session;

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
    /// The caller's live sessions, oldest first.
    pub async fn list_sessions(&self, me: &Authenticated) -> Result<Vec<SessionInfo>, AuthError> {
        let at = self.now();
        let idle_cutoff = at - chrono_dur(self.policy.session_idle_timeout);
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(me.user.id))
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
                current: row.token_hash == me.session_digest(),
            });
        }
        Ok(out)
    }

    /// Ends one of the caller's sessions by its public id (`SessionNotFound` for anyone else's).
    pub async fn end_session(&self, ctx: &RequestContext, me: &Authenticated, id: Uuid) -> Result<(), AuthError> {
        let txn = self.db.begin().await?;
        let ended = session::Entity::delete_many()
            .filter(session::Column::UserId.eq(me.user.id))
            .filter(session::Column::PublicId.eq(id))
            .exec(&txn)
            .await?;
        if ended.rows_affected == 0 {
            return Err(AuthError::SessionNotFound);
        }
        self.audit_in(&txn, ctx, vec![NewEvent::new(EventKind::SessionEnded, Some(me.user.id), &me.user.email)])
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Ends every session of the caller but this one. Returns how many ended.
    pub async fn end_other_sessions(&self, ctx: &RequestContext, me: &Authenticated) -> Result<u64, AuthError> {
        let txn = self.db.begin().await?;
        let ended = session::Entity::delete_many()
            .filter(session::Column::UserId.eq(me.user.id))
            .filter(session::Column::TokenHash.ne(me.session_digest()))
            .exec(&txn)
            .await?;
        if ended.rows_affected > 0 {
            let event = NewEvent::new(EventKind::SessionsRevoked, Some(me.user.id), &me.user.email);
            self.audit_in(&txn, ctx, vec![event]).await?;
        }
        txn.commit().await?;
        Ok(ended.rows_affected)
    }
}
