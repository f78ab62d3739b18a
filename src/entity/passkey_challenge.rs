//! The `passkey_challenges` table.

use sea_orm::entity::prelude::*;

/// A passkey ceremony in progress: registration (`kind = "register"`, bound to its user) or login.
/// Only the SHA-256 of the challenge id is stored; `state` is webauthn-rs' serialised state.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkey_challenges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub state: String,
    pub created_at: ChronoDateTimeUtc,
    pub expires_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
