//! What callers get back from the service: users without their hash, new sessions, issued reset
//! tokens, `user list` rows, and the one timestamp format the edges show.

use chrono::{DateTime, Utc};
use sea_orm::FromQueryResult;
use uuid::Uuid;

use super::domain::SecretToken;
use crate::entity::user;

/// What callers may see of a user: never the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<user::Model> for UserView {
    fn from(m: user::Model) -> Self {
        Self { id: m.id, email: m.email, created_at: m.created_at, last_login_at: m.last_login_at }
    }
}

/// A session just created by a login. `token` goes to the client (the cookie) and nowhere else.
#[derive(Debug)]
pub struct NewSession {
    pub token: SecretToken,
    pub user: UserView,
    pub expires_at: DateTime<Utc>,
    /// Empty for a full session. Otherwise `token` is a pending login's (api.md §10), which
    /// only the second step can finish with one of these factors.
    pub second_factor: Vec<&'static str>,
}

/// What a self-service reset request did (api.md §1 and §7).
#[derive(Debug)]
pub enum ResetRequest {
    /// `reset_delivery = "response"`: the token, for the answer.
    Token(IssuedResetToken),
    /// `reset_delivery = "email"`: a message is on its way if the address has an account.
    Emailed,
}

#[derive(Debug)]
pub struct IssuedResetToken {
    pub email: String,
    pub token: SecretToken,
    pub expires_at: DateTime<Utc>,
}

/// Which users `list_users` returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// Case-insensitive substring of the email.
    pub email_contains: Option<String>,
}

/// One row of `user list`.
#[derive(Debug, Clone, FromQueryResult)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub active_sessions: i64,
    /// `None`: not confirmed yet (api.md §13).
    pub email_confirmed_at: Option<DateTime<Utc>>,
    /// 1 when TOTP is on (api.md §10's `factors`).
    pub totp_factors: i64,
    /// How many passkeys the user has (api.md §11; `factors` shows `passkey`).
    pub passkeys: i64,
}

/// Timestamps as the API and the CLI show them: RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
