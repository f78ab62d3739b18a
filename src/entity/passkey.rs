//! The `passkeys` table.

use sea_orm::entity::prelude::*;

/// A user's passkey (api.md §11). `credential` is webauthn-rs' `Passkey` as JSON (public key,
/// signature counter, backup flags): no secret, the private key never leaves the authenticator.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// base64url of the credential id (unique).
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub created_at: ChronoDateTimeUtc,
    pub last_used_at: Option<ChronoDateTimeUtc>,
}

belongs_to_user!();
