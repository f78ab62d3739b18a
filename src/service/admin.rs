//! Operator-only operations on accounts (imports are in `import.rs`).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::audit::{EventKind, NewEvent};
use super::domain::Email;
use super::{AuthError, AuthService, UserView};
use crate::entity::user;

impl AuthService {
    /// Deletes the account; its sessions and reset tokens go with it (cascading foreign keys).
    pub async fn delete_user(&self, email: &str) -> Result<UserView, AuthError> {
        let email = Email::parse(email)?;
        let user = self.find_user(&email).await?.ok_or(AuthError::UserNotFound)?;
        let txn = self.db.begin().await?;
        user::Entity::delete_many().filter(user::Column::Id.eq(user.id)).exec(&txn).await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::UserDeleted, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        Ok(user.into())
    }

    /// Looks a user up by email, for commands that ask before they act.
    pub async fn get_user(&self, email: &str) -> Result<UserView, AuthError> {
        let email = Email::parse(email)?;
        Ok(self.find_user(&email).await?.ok_or(AuthError::UserNotFound)?.into())
    }
}
