//! What the reset page needs before anyone types a new password: whether its token would be
//! accepted now (issue 21). Read-only: looking does not use or void the token.

use sea_orm::EntityTrait;

use super::domain::presented_token_digest;
use super::{AuthError, AuthService};
use crate::entity::reset_token;

impl AuthService {
    /// `Ok` when `presented` is a reset token that is known, unused and unexpired;
    /// `InvalidResetToken` otherwise (the same answer `update_password` would give).
    pub async fn check_reset_token(&self, presented: &str) -> Result<(), AuthError> {
        let digest = presented_token_digest(presented).ok_or(AuthError::InvalidResetToken)?;
        match reset_token::Entity::find_by_id(digest).one(&self.db).await? {
            Some(t) if t.used_at.is_none() && self.now() < t.expires_at => Ok(()),
            _ => Err(AuthError::InvalidResetToken),
        }
    }
}
