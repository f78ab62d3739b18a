//! Importing users from other systems: rows are parsed once into typed values (a normalised
//! email, and a bcrypt hash we accept or a password that meets the policy), then inserted in
//! batches. The Flask service's database is read here too, so the CLI never touches SQL.

use std::path::Path;

use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use uuid::Uuid;

use super::audit::{EventKind, NewEvent};
use super::db::{DatabaseUrl, DbOptions, connect};
use super::domain::{Email, EmailError, Password, PasswordError};
use super::hashing::{COST_MAX, COST_MIN, parse_stored_hash};
use super::{AuthError, AuthService, RequestContext};
use crate::entity::user;

/// A bcrypt hash we are willing to store: bcrypt's own parser accepts it, with a `$2a$`, `$2b$`
/// or `$2y$` prefix and a cost from [`COST_MIN`] to [`COST_MAX`].
#[derive(Clone, PartialEq, Eq)]
pub struct BcryptHash(String);

impl BcryptHash {
    pub fn parse(raw: &str) -> Result<Self, RowError> {
        let h = raw.trim();
        parse_stored_hash(h).map(|_| Self(h.to_owned())).ok_or(RowError::NotBcrypt)
    }
}

impl std::fmt::Debug for BcryptHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BcryptHash(<redacted>)")
    }
}

/// The secret of a user being imported: an existing hash, or a password to hash here.
#[derive(Debug, Clone)]
pub enum ImportSecret {
    Hash(BcryptHash),
    Password(Password),
}

/// What the second column of an input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretColumn {
    Hash,
    Password,
}

/// A row checked and ready to insert.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub email: Email,
    pub secret: ImportSecret,
}

/// Why an input row was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("invalid email: {0}")]
    Email(#[from] EmailError),
    #[error("invalid password: {0}")]
    Password(#[from] PasswordError),
    #[error("password_hash is not a bcrypt hash ($2a$/$2b$/$2y$, cost {COST_MIN} to {COST_MAX}, 60 characters)")]
    NotBcrypt,
    #[error("email or hashed_password is empty or unreadable")]
    Missing,
    #[error("unreadable row: {0}")]
    Unreadable(String),
}

/// An input row by its line (or row) number, parsed or rejected.
pub type NumberedRow = (u64, Result<ImportRow, RowError>);

impl AuthService {
    /// Parses one input row. Passwords are kept byte for byte (spaces are allowed in passwords);
    /// emails and hashes are trimmed by their parsers.
    pub fn parse_import_row(&self, email: &str, column: SecretColumn, secret: &str) -> Result<ImportRow, RowError> {
        let email = Email::parse(email)?;
        let secret = match column {
            SecretColumn::Hash => ImportSecret::Hash(BcryptHash::parse(secret)?),
            SecretColumn::Password => ImportSecret::Password(self.policy.parse_new_password(secret, email.as_str())?),
        };
        Ok(ImportRow { email, secret })
    }

    /// The users of the original Flask service's SQLite database (table `users`: `email`,
    /// `hashed_password`), opened read-only. SQLAlchemy stored bcrypt's bytes as a BLOB, as
    /// text, or as the text of a Python bytes literal (`b'$2b$…'`).
    pub async fn read_flask_users(&self, path: &Path) -> Result<Vec<NumberedRow>, AuthError> {
        let flask = connect(&DbOptions::new(DatabaseUrl::sqlite_file(path, true)?)).await?;
        let records = flask
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT email, hashed_password FROM users ORDER BY rowid",
            ))
            .await?;
        let rows = records
            .iter()
            .zip(1u64..)
            .map(|(rec, line)| {
                let email: Option<String> = rec.try_get_by_index(0).ok();
                let hash = rec
                    .try_get_by_index::<String>(1)
                    .ok()
                    .or_else(|| rec.try_get_by_index::<Vec<u8>>(1).ok().and_then(|b| String::from_utf8(b).ok()))
                    .map(|h| h.strip_prefix("b'").and_then(|h| h.strip_suffix('\'')).map(str::to_owned).unwrap_or(h));
                let row = match (email, hash) {
                    (Some(e), Some(h)) => self.parse_import_row(&e, SecretColumn::Hash, &h),
                    _ => Err(RowError::Missing),
                };
                (line, row)
            })
            .collect();
        flask.close().await?;
        Ok(rows)
    }

    /// Inserts one batch in one transaction; emails that already exist are skipped.
    /// Returns `(imported, skipped)`.
    pub async fn import_batch(&self, rows: Vec<ImportRow>) -> Result<(u64, u64), AuthError> {
        if rows.is_empty() {
            return Ok((0, 0));
        }
        // Plain passwords are hashed concurrently, as many at once as the hashing pool allows;
        // an operator's import waits for its turn rather than being refused.
        let values = futures_util::future::try_join_all(rows.into_iter().map(|row| async move {
            let hash = match row.secret {
                ImportSecret::Hash(BcryptHash(h)) => h,
                ImportSecret::Password(p) => self.hasher.admit_waiting().await?.hash(&p).await?,
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
            // Imported by the operator: confirmed (api.md §13).
            user::Column::EmailConfirmedAt,
        ]);
        for (email, hash) in values {
            insert.values_panic([
                Uuid::new_v4().into(),
                email.as_str().to_owned().into(),
                hash.into(),
                at.into(),
                at.into(),
                at.into(),
            ]);
        }
        insert.on_conflict(OnConflict::column(user::Column::Email).do_nothing().to_owned());
        // Only the rows actually inserted come back: one event for each, in the same transaction.
        insert.returning(Query::returning().columns([user::Column::Id, user::Column::Email]));
        let txn = self.db.begin().await?;
        let inserted = txn.query_all(&insert).await?;
        let events = inserted
            .iter()
            .map(|row| {
                let id: Uuid = row.try_get_by_index(0)?;
                let email: String = row.try_get_by_index(1)?;
                Ok(NewEvent::new(EventKind::UsersImported, Some(id), &email))
            })
            .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
        let imported = events.len() as u64;
        self.audit_in(&txn, &RequestContext::operator(), events).await?;
        txn.commit().await?;
        Ok((imported, total - imported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_parsed_once_and_trimmed() {
        let php = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";
        assert_eq!(BcryptHash::parse(&format!(" {php} ")).unwrap(), BcryptHash(php.to_owned()));
        assert_eq!(BcryptHash::parse("plain text"), Err(RowError::NotBcrypt));
        assert_eq!(BcryptHash::parse(&php.replacen("$10$", "$31$", 1)), Err(RowError::NotBcrypt));
        assert!(!format!("{:?}", BcryptHash::parse(php).unwrap()).contains("vGA1"));
    }
}
