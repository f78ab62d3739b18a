//! The `sessions` table.

use sea_orm::entity::prelude::*;

/// A login session. Only the SHA-256 of the cookie value is stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub user_id: Uuid,
    pub created_at: ChronoDateTimeUtc,
    pub last_seen_at: ChronoDateTimeUtc,
    pub expires_at: ChronoDateTimeUtc,
    /// Shown to the owner and used to end this one session; never the token.
    pub public_id: Option<Uuid>,
    pub user_agent: Option<String>,
    /// The client address the session was opened from, as the audit log records it.
    pub client: Option<String>,
}

belongs_to_user!();
