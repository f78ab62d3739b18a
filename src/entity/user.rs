//! The `users` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: String,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
    pub last_login_at: Option<ChronoDateTimeUtc>,
    /// When the address was confirmed (api.md §13); `None` until then.
    pub email_confirmed_at: Option<ChronoDateTimeUtc>,
    /// Bumped by every change of the password (not by a re-hash of the same one); guards logins.
    pub credential_version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
    #[sea_orm(has_many = "super::reset_token::Entity")]
    ResetToken,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl Related<super::reset_token::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ResetToken.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
