//! The request and response bodies of the HTTP API: the handlers use them, and the OpenAPI
//! document is generated from them, so the document cannot drift from what is served.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// Timestamps in API bodies: RFC 3339 to the second, in UTC (`2026-12-01T00:43:46Z`), the same
/// text as `service::rfc3339`. Documented as strings, as they always were.
pub mod timestamp {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::service::rfc3339(*t))
    }

    /// The same for a timestamp that may be absent (`null`).
    pub fn optional<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

// ---------------------------------------------------------------- requests

/// `email` and `password`, as a form or as JSON.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    #[schema(example = "alice@example.com")]
    pub email: String,
    #[schema(example = "correct horse battery", min_length = 12)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailOnly {
    #[schema(example = "alice@example.com")]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdatePassword {
    pub reset_token: String,
    #[schema(min_length = 12)]
    pub new_password: String,
}

/// `POST /api/v1/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    #[schema(min_length = 12)]
    pub new_password: String,
}

/// The classic `PUT /reset_password`: the token must belong to `email`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClassicUpdatePassword {
    pub email: String,
    pub reset_token: String,
    pub new_password: String,
}

// ---------------------------------------------------------------- responses

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailMessage {
    pub email: String,
    #[schema(example = "user created")]
    pub message: String,
}

impl EmailMessage {
    pub fn new(email: impl Into<String>, message: &str) -> Self {
        Self { email: email.into(), message: message.to_owned() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    #[schema(example = "logged out")]
    pub message: String,
}

impl Message {
    pub fn new(message: &str) -> Self {
        Self { message: message.to_owned() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    pub id: uuid::Uuid,
    pub email: String,
    /// RFC 3339
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetIssued {
    pub email: String,
    pub reset_token: String,
}

/// What a reset request answers: the token (`reset_delivery = "response"`) or, by email, the same
/// message for every address. `emailed_status` is 202 for v1 and 200 for the classic route.
pub enum ResetAnswer {
    Token(ResetIssued),
    Emailed { emailed_status: rocket::http::Status },
}

impl<'r> rocket::response::Responder<'r, 'static> for ResetAnswer {
    fn respond_to(self, _: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        use super::error::json_response;
        Ok(match self {
            ResetAnswer::Token(issued) => json_response(rocket::http::Status::Ok, &issued),
            ResetAnswer::Emailed { emailed_status } => json_response(emailed_status, &Message::new(RESET_EMAILED)),
        })
    }
}

impl ResetAnswer {
    pub fn from_request(done: crate::service::ResetRequest, emailed_status: rocket::http::Status) -> Self {
        match done {
            crate::service::ResetRequest::Token(t) => {
                ResetAnswer::Token(ResetIssued { email: t.email, reset_token: t.token.expose().to_owned() })
            }
            crate::service::ResetRequest::Emailed => ResetAnswer::Emailed { emailed_status },
        }
    }
}

/// The answer in email mode, whatever the address.
pub const RESET_EMAILED: &str = "if that address has an account, a reset link is on its way";

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// One of the caller's sessions (`id` is its public id, never the cookie's token).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionItem {
    pub id: uuid::Uuid,
    /// RFC 3339
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    /// RFC 3339
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String)]
    pub last_seen_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OthersEnded {
    #[schema(example = "other sessions ended")]
    pub message: String,
    pub ended: u64,
}

/// The classic `GET /profile`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailOnlyResponse {
    pub email: String,
}
