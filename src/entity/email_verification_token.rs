//! The `email_verification_tokens` table.

use sea_orm::entity::prelude::*;

user_token_table! {
    /// An email confirmation token (api.md §13). Only the SHA-256 of the token is stored.
    table = "email_verification_tokens",
    extra = { pub used_at: Option<ChronoDateTimeUtc>, }
}
