//! The request and response bodies of the HTTP API: the handlers use them, and the OpenAPI
//! document is generated from them, so the document cannot drift from what is served.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetIssued {
    pub email: String,
    pub reset_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// The classic `GET /profile`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailOnlyResponse {
    pub email: String,
}
