//! The `server_key` table.

use sea_orm::entity::prelude::*;

/// The server key's fingerprint and the audit chain's legacy anchor (one row, id 1; api.md §14).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "server_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub fingerprint: String,
    /// The last audit event written before the chain was keyed (0: none).
    pub legacy_seq: i64,
    pub legacy_hash: String,
    /// HMAC under the key over the fingerprint and the anchor.
    pub anchor_mac: String,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
