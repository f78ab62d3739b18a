//! Operator-only operations: deleting accounts and importing users from other systems.

use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use super::domain::Email;
use super::hashing::{COST_MAX, COST_MIN, parse_stored_hash};
use super::{AuthError, AuthService, UserView};
use crate::entity::user;

/// The secret of a user being imported: an existing bcrypt hash, or a password to hash.
#[derive(Clone)]
pub enum ImportSecret {
    Hash(String),
    Password(String),
}

impl std::fmt::Debug for ImportSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImportSecret::Hash(_) => "Hash(<redacted>)",
            ImportSecret::Password(_) => "Password(<redacted>)",
        })
    }
}

/// A row checked and ready to insert.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub email: Email,
    pub secret: ImportSecret,
}

impl AuthService {
    /// Checks one input row: a normalised email and either a bcrypt hash or a policy-conforming password.
    pub fn check_import_row(&self, email: &str, secret: ImportSecret) -> Result<ImportRow, String> {
        let email = Email::parse(email).map_err(|e| format!("invalid email: {e}"))?;
        let secret = match secret {
            ImportSecret::Hash(h) => {
                let h = h.trim().to_owned();
                if parse_stored_hash(&h).is_none() {
                    return Err(format!(
                        "password_hash is not a bcrypt hash ($2a$/$2b$/$2y$, cost {COST_MIN} to {COST_MAX}, 60 characters)"
                    ));
                }
                ImportSecret::Hash(h)
            }
            ImportSecret::Password(p) => {
                self.policy.parse_password(p.clone()).map_err(|e| format!("invalid password: {e}"))?;
                ImportSecret::Password(p)
            }
        };
        Ok(ImportRow { email, secret })
    }

    /// Inserts one batch in one transaction; emails that already exist are skipped.
    /// Returns `(imported, skipped)`.
    pub async fn import_batch(&self, rows: Vec<ImportRow>) -> Result<(u64, u64), AuthError> {
        if rows.is_empty() {
            return Ok((0, 0));
        }
        // Plain passwords are hashed concurrently, as many at once as the hashing pool allows.
        let values = futures_util::future::try_join_all(rows.into_iter().map(|row| async move {
            let hash = match row.secret {
                ImportSecret::Hash(h) => h,
                ImportSecret::Password(p) => {
                    let password = self.policy.parse_password(p)?;
                    // An operator's import waits for its turn rather than being refused.
                    self.hasher.admit_waiting().await?.hash(&password).await?
                }
            };
            Ok::<_, AuthError>((row.email, hash))
        }))
        .await?;
        let total = values.len() as u64;
        let at = self.now();
        let mut insert = Query::insert();
        insert.into_table(user::Entity).columns([
            user::Column::Id,
            user::Column::Email,
            user::Column::PasswordHash,
            user::Column::CreatedAt,
            user::Column::UpdatedAt,
        ]);
        for (email, hash) in values {
            insert.values_panic([
                Uuid::new_v4().into(),
                email.as_str().to_owned().into(),
                hash.into(),
                at.into(),
                at.into(),
            ]);
        }
        insert.on_conflict(OnConflict::column(user::Column::Email).do_nothing().to_owned());
        let txn = self.db.begin().await?;
        let imported = txn.execute(&insert).await?.rows_affected();
        txn.commit().await?;
        Ok((imported, total - imported))
    }

    /// Deletes the account; its sessions and reset tokens go with it (cascading foreign keys).
    pub async fn delete_user(&self, email: &str) -> Result<UserView, AuthError> {
        let email = Email::parse(email)?;
        let user = self.find_user(&email).await?.ok_or(AuthError::UserNotFound)?;
        user::Entity::delete_many().filter(user::Column::Id.eq(user.id)).exec(&self.db).await?;
        Ok(user.into())
    }

    /// Looks a user up by email, for commands that ask before they act.
    pub async fn get_user(&self, email: &str) -> Result<UserView, AuthError> {
        let email = Email::parse(email)?;
        Ok(self.find_user(&email).await?.ok_or(AuthError::UserNotFound)?.into())
    }
}
