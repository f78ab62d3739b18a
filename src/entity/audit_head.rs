//! The `audit_head` table.

use sea_orm::entity::prelude::*;

/// The audit chain's head (one row, id 1): the last event's sequence number and hash, and the
/// anchor left by pruning (the last pruned event's sequence number and hash).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_head")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub seq: i64,
    pub hash: String,
    pub pruned_seq: i64,
    pub pruned_hash: String,
    /// HMAC under the server key of the pruning anchor (api.md §14); `None` before the key.
    pub pruned_mac: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
