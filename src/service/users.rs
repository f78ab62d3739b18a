//! Accounts as the operator sees them: looking one up, listing them, deleting one, ending all its
//! sessions, lifting its lockout. (Adding one is in `registration.rs`, imports in `import.rs`.)

use futures_util::{Stream, StreamExt};
use sea_orm::sea_query::{Expr, LikeExpr, Query};
use sea_orm::{ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};

use super::audit::{EventKind, NewEvent};
use super::domain::Email;
use super::throttle::{self, Kind};
use super::{
    AuthError, AuthService, ListFilter, RequestContext, UserSummary, UserView, chrono_dur, passkeys, second_factor,
};
use crate::entity::{session, user};

impl AuthService {
    pub(super) async fn find_user(&self, email: &Email) -> Result<Option<user::Model>, AuthError> {
        Ok(user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(&self.db).await?)
    }

    /// The account with the address `email`, or `UserNotFound`.
    pub(super) async fn user_by_email(&self, email: &str) -> Result<user::Model, AuthError> {
        self.find_user(&Email::parse(email)?).await?.ok_or(AuthError::UserNotFound)
    }

    /// Looks a user up by email, for commands that ask before they act.
    pub async fn get_user(&self, email: &str) -> Result<UserView, AuthError> {
        Ok(self.user_by_email(email).await?.into())
    }

    /// Deletes the account; its sessions and reset tokens go with it (cascading foreign keys).
    pub async fn delete_user(&self, email: &str) -> Result<UserView, AuthError> {
        let user = self.user_by_email(email).await?;
        let txn = self.db.begin().await?;
        user::Entity::delete_many().filter(user::Column::Id.eq(user.id)).exec(&txn).await?;
        let event = NewEvent::new(EventKind::UserDeleted, Some(user.id), &user.email);
        self.audit_in(&txn, &RequestContext::operator(), vec![event]).await?;
        txn.commit().await?;
        Ok(user.into())
    }

    /// Ends every session of the user. Returns how many were ended.
    pub async fn logout_everywhere(&self, email: &str) -> Result<u64, AuthError> {
        let user = self.user_by_email(email).await?;
        let txn = self.db.begin().await?;
        let res = session::Entity::delete_many().filter(session::Column::UserId.eq(user.id)).exec(&txn).await?;
        let event = NewEvent::new(EventKind::SessionsRevoked, Some(user.id), &user.email);
        self.audit_in(&txn, &RequestContext::operator(), vec![event]).await?;
        txn.commit().await?;
        Ok(res.rows_affected)
    }

    /// Clears the account's failed-login count (`userauth user unlock`). Returns whether the
    /// account had failures counted in a window that is still current, i.e. whether it changed anything
    /// the operator would notice.
    pub async fn unlock(&self, email: &str) -> Result<(String, bool), AuthError> {
        let user = self.user_by_email(email).await?;
        let current = throttle::window_start(&self.db, Kind::Login, &user.email)
            .await?
            .is_some_and(|start| start > self.now() - chrono_dur(Kind::Login.limits(&self.policy).1));
        throttle::clear(&self.db, Kind::Login, &user.email).await?;
        Ok((user.email, current))
    }

    /// Streams users in creation order with their active-session counts: constant memory
    /// whatever the number of users.
    pub async fn list_users(
        &self,
        filter: &ListFilter,
    ) -> Result<impl Stream<Item = Result<UserSummary, AuthError>> + '_, AuthError> {
        let at = self.now();
        let idle_cutoff = at - chrono_dur(self.policy.session_idle_timeout);
        let active_sessions = Query::select()
            .expr(Expr::col((session::Entity, session::Column::TokenHash)).count())
            .from(session::Entity)
            .and_where(Expr::col((session::Entity, session::Column::UserId)).equals((user::Entity, user::Column::Id)))
            .and_where(Expr::col((session::Entity, session::Column::ExpiresAt)).gt(at))
            .and_where(Expr::col((session::Entity, session::Column::LastSeenAt)).gt(idle_cutoff))
            .to_owned();
        let mut query = user::Entity::find()
            .select_only()
            .columns([user::Column::Id, user::Column::Email, user::Column::CreatedAt, user::Column::LastLoginAt])
            .expr_as(Expr::from(active_sessions), "active_sessions")
            .column(user::Column::EmailConfirmedAt)
            .expr_as(Expr::from(second_factor::totp_count_query()), "totp_factors")
            .expr_as(Expr::from(passkeys::passkey_count_query()), "passkeys")
            .order_by_asc(user::Column::CreatedAt)
            .order_by_asc(user::Column::Id);
        if let Some(needle) = filter.email_contains.as_deref().filter(|n| !n.is_empty()) {
            // Emails are stored lower-cased; LIKE wildcards in the needle are matched literally.
            let escaped = needle.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            query = query.filter(
                Expr::col((user::Entity, user::Column::Email)).like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
            );
        }
        if let Some(offset) = filter.offset {
            query = query.offset(offset);
        }
        // SQLite accepts OFFSET only after a LIMIT: "no limit" is the largest one it takes.
        if let Some(limit) = filter.limit.or(filter.offset.map(|_| i64::MAX as u64)) {
            query = query.limit(limit);
        }
        let stream = query.into_model::<UserSummary>().stream(&self.db).await?;
        Ok(stream.map(|row| row.map_err(AuthError::from)))
    }
}
