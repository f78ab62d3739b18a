//! The `pending_logins` table.

use sea_orm::entity::prelude::*;

user_token_table! {
    /// A login whose password was right and whose second factor is still owed. Only the digest of
    /// its token is stored; it authorises nothing but completing the login.
    table = "pending_logins",
    extra = {}
}
