//! SeaORM entities: plain table mappings, nothing web- or CLI-specific.

/// The relation of a table whose `user_id` names the user each row belongs to (the schema
/// deletes the rows with the user), and the entity's active-model behaviour (the default).
macro_rules! belongs_to_user {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {
            #[sea_orm(
                belongs_to = "super::user::Entity",
                from = "Column::UserId",
                to = "super::user::Column::Id",
                on_delete = "Cascade"
            )]
            User,
        }

        impl Related<super::user::Entity> for Entity {
            fn to() -> RelationDef {
                Relation::User.def()
            }
        }

        impl ActiveModelBehavior for ActiveModel {}
    };
}

/// A table of a user's single-use tokens, keyed by the SHA-256 of the token (never the token),
/// with `extra` columns after the common ones; it belongs to the user.
macro_rules! user_token_table {
    ($(#[doc = $doc:literal])* table = $table:literal, extra = { $($extra:tt)* }) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = $table)]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub token_hash: String,
            pub user_id: Uuid,
            pub created_at: ChronoDateTimeUtc,
            pub expires_at: ChronoDateTimeUtc,
            $($extra)*
        }

        belongs_to_user!();
    };
}

pub mod audit_event;
pub mod audit_head;
pub mod email_verification_token;
pub mod outbox;
pub mod passkey;
pub mod passkey_challenge;
pub mod pending_login;
pub mod recovery_code;
pub mod reset_token;
pub mod server_key;
pub mod session;
pub mod throttle;
pub mod totp_factor;
pub mod user;
