//! Keeping the service healthy and observable: removing what expired, the readiness check, and
//! the Prometheus exposition.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter};

use super::throttle::{self, Kind};
use super::{AuthError, AuthService, chrono_dur};
use crate::entity::{email_verification_token, reset_token, session};

impl AuthService {
    /// Readiness: the database answers a trivial query.
    pub async fn health(&self) -> Result<(), AuthError> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    /// The Prometheus exposition, with the hashing queue's depth and the mail counts read now.
    pub fn render_metrics(&self) -> Option<String> {
        let emails = self.mailer.as_ref().map(|m| {
            use std::sync::atomic::Ordering::Relaxed;
            let s = m.stats();
            (s.sent.load(Relaxed), s.failed.load(Relaxed) + s.dropped.load(Relaxed))
        });
        self.metrics.as_ref().map(|m| m.render(self.hasher.queue_depth(), emails))
    }

    /// Deletes expired sessions, reset tokens and throttle windows. Returns rows removed.
    pub async fn purge_expired(&self) -> Result<u64, AuthError> {
        let at = self.now();
        let idle_cutoff = at - chrono_dur(self.policy.session_idle_timeout);
        let mut removed = session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(at).or(session::Column::LastSeenAt.lte(idle_cutoff)))
            .exec(&self.db)
            .await?
            .rows_affected;
        removed += reset_token::Entity::delete_many()
            .filter(reset_token::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await?
            .rows_affected;
        removed += email_verification_token::Entity::delete_many()
            .filter(email_verification_token::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await?
            .rows_affected;
        for kind in [Kind::Login, Kind::Reset] {
            removed += throttle::purge(&self.db, at, kind, kind.limits(&self.policy).1).await?;
        }
        removed += self.purge_passkey_challenges().await?;
        removed += self.purge_pending_logins().await?;
        Ok(removed)
    }
}
