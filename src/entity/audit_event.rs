//! The `audit_events` table.

use sea_orm::entity::prelude::*;

/// One account event in the audit log; `hash` chains it to the event before it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub at: ChronoDateTimeUtc,
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub actor: String,
    pub client: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// How a `login_succeeded` logged in (`password`, `passkey`); null for every other event and
    /// for events written before it existed.
    pub method: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
