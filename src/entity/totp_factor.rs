//! The `totp_factors` table.

use sea_orm::entity::prelude::*;

/// A user's TOTP secret (api.md §10), encrypted with the server key; active once confirmed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_factors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub secret: Vec<u8>,
    pub created_at: ChronoDateTimeUtc,
    pub confirmed_at: Option<ChronoDateTimeUtc>,
    /// The last accepted step: a code of this step or an earlier one is refused.
    pub totp_last_step: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
