//! The `outbox` table.

use sea_orm::entity::prelude::*;

/// An accepted reset request, or the email it led to, waiting to be sent (api.md §14). The
/// payload is encrypted with the server key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    pub payload: Vec<u8>,
    pub created_at: ChronoDateTimeUtc,
    /// Not to be tried before this time (back-off).
    pub not_before: ChronoDateTimeUtc,
    /// Dropped unsent after this time (the token's expiry).
    pub expires_at: ChronoDateTimeUtc,
    pub attempts: i32,
    /// The lease of the instance sending it, if any.
    pub claimed_until: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
