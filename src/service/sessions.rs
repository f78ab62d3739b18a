//! Resolving a presented session token ([`AuthService::authenticate`], once per request) and
//! ending a session (logout).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::audit::{EventKind, NewEvent};
use super::domain::presented_token_digest;
use super::{AuthError, AuthService, RequestContext, UserView, chrono_dur};
use crate::entity::{self, session, user};

/// A request's logged-in user, resolved once by [`AuthService::authenticate`]. Self-service
/// operations take it instead of the presented token, so nothing resolves the session twice.
/// Only `authenticate` makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: UserView,
    /// The digest of the session token (the session's key): tells "this session" from the
    /// user's others.
    session: String,
}

impl Authenticated {
    pub(super) fn session_digest(&self) -> &str {
        &self.session
    }
}

/// A live session as `authenticate` sees it.
struct ActiveSession {
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user: UserView,
}

impl AuthService {
    /// Resolves a presented session token to its user, enforcing the idle and absolute timeouts.
    pub async fn authenticate(&self, presented: &str) -> Result<Authenticated, AuthError> {
        let digest = presented_token_digest(presented).ok_or(AuthError::NotAuthenticated)?;
        let read = match &self.fast {
            Some(f) => Some(f.lookup(&digest).await.map_err(|e| f.note_fallback(&e))),
            None => None,
        };
        let found = match read {
            Some(Ok(row)) => row.map(|r| ActiveSession {
                last_seen_at: r.last_seen_at,
                expires_at: r.expires_at,
                user: UserView {
                    id: r.user_id,
                    email: r.email,
                    created_at: r.created_at,
                    last_login_at: r.last_login_at,
                },
            }),
            // The reader failed (noted): the ORM path answers.
            Some(Err(())) | None => self.find_session(&digest).await?,
        };
        let Some(sess) = found else {
            return Err(AuthError::NotAuthenticated);
        };
        let at = self.now();
        if at >= sess.expires_at || at - sess.last_seen_at >= chrono_dur(self.policy.session_idle_timeout) {
            session::Entity::delete_by_id(digest).exec(&self.db).await?;
            return Err(AuthError::NotAuthenticated);
        }
        if at - sess.last_seen_at >= chrono_dur(self.policy.touch_interval()) {
            session::Entity::update_many()
                .col_expr(session::Column::LastSeenAt, Expr::value(at))
                .filter(session::Column::TokenHash.eq(digest.as_str()))
                .exec(&self.db)
                .await?;
        }
        Ok(Authenticated { user: sess.user, session: digest })
    }

    async fn find_session(&self, digest: &str) -> Result<Option<ActiveSession>, AuthError> {
        let found =
            session::Entity::find_by_id(digest.to_owned()).find_also_related(user::Entity).one(&self.db).await?;
        Ok(match found {
            Some((sess, Some(user))) => {
                Some(ActiveSession { last_seen_at: sess.last_seen_at, expires_at: sess.expires_at, user: user.into() })
            }
            _ => None,
        })
    }

    /// Ends the session, if there is one. Idempotent.
    pub async fn logout(&self, ctx: &RequestContext, presented: &str) -> Result<(), AuthError> {
        let Some(digest) = presented_token_digest(presented) else { return Ok(()) };
        // A pending login (api.md §10) ends too.
        entity::pending_login::Entity::delete_by_id(digest.clone()).exec(&self.db).await?;
        let txn = self.db.begin().await?;
        let ended = session::Entity::delete_many()
            .filter(session::Column::TokenHash.eq(digest))
            .exec_with_returning(&txn)
            .await?;
        if let Some(s) = ended.first() {
            let email = user::Entity::find_by_id(s.user_id).one(&txn).await?.map(|u| u.email);
            let event = NewEvent { kind: EventKind::LoggedOut, user_id: Some(s.user_id), email };
            self.audit_in(&txn, ctx, vec![event]).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
