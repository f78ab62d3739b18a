//! Passkey ceremonies in progress, kept in `passkey_challenges` between start and finish: keyed by
//! the SHA-256 of a random challenge id that only the client holds, so any instance can finish
//! what another started; each is claimed by one atomic delete (single use) and expires after
//! [`CHALLENGE_TTL`].

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::entity::passkey_challenge;
use crate::service::domain::{SecretToken, presented_token_digest};
use crate::service::{AuthError, AuthService};

/// How long a started registration or login may be finished (api.md §11).
pub const CHALLENGE_TTL: chrono::Duration = chrono::Duration::minutes(5);

/// The kinds of ceremony.
pub(super) const REGISTER: &str = "register";
pub(super) const LOGIN: &str = "login";

impl AuthService {
    /// Stores a ceremony's state under the digest of a fresh challenge id; clears expired ones on
    /// the way, so abandoned ceremonies do not pile up.
    pub(super) async fn store_challenge(
        &self,
        kind: &str,
        user_id: Option<Uuid>,
        state: &impl serde::Serialize,
    ) -> Result<String, AuthError> {
        let at = self.now();
        passkey_challenge::Entity::delete_many()
            .filter(passkey_challenge::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await?;
        let token = SecretToken::generate().map_err(|e| AuthError::Internal(e.to_string()))?;
        let state = serde_json::to_string(state).map_err(|e| AuthError::Internal(e.to_string()))?;
        passkey_challenge::ActiveModel {
            id_hash: Set(token.digest()),
            kind: Set(kind.to_owned()),
            user_id: Set(user_id),
            state: Set(state),
            created_at: Set(at),
            expires_at: Set(at + CHALLENGE_TTL),
        }
        .insert(&self.db)
        .await?;
        Ok(token.expose().to_owned())
    }

    /// Claims a challenge: one atomic delete decides, so it works once on any instance, and only
    /// before it expires. Returns its state; `None` for unknown, used, expired or another kind.
    pub(super) async fn claim_challenge(
        &self,
        presented: &str,
        kind: &str,
        user_id: Option<Uuid>,
    ) -> Result<Option<String>, AuthError> {
        let Some(digest) = presented_token_digest(presented) else { return Ok(None) };
        let mut claim = passkey_challenge::Entity::delete_many()
            .filter(passkey_challenge::Column::IdHash.eq(digest))
            .filter(passkey_challenge::Column::Kind.eq(kind))
            .filter(passkey_challenge::Column::ExpiresAt.gt(self.now()));
        if let Some(u) = user_id {
            claim = claim.filter(passkey_challenge::Column::UserId.eq(u));
        }
        let claimed = claim.exec_with_returning(&self.db).await?;
        Ok(claimed.into_iter().next().map(|c| c.state))
    }

    /// Deletes expired passkey challenges. Returns rows removed.
    pub async fn purge_passkey_challenges(&self) -> Result<u64, AuthError> {
        Ok(passkey_challenge::Entity::delete_many()
            .filter(passkey_challenge::Column::ExpiresAt.lte(self.now()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
