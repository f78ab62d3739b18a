//! The `reset_tokens` table.

use sea_orm::entity::prelude::*;

user_token_table! {
    /// A password-reset token. Only the SHA-256 of the token is stored.
    table = "reset_tokens",
    extra = { pub used_at: Option<ChronoDateTimeUtc>, }
}
