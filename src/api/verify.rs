//! Email confirmation routes (api.md §13). Registration itself stays in `v1.rs`.

use rocket::http::Status;
use rocket::serde::json::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::body::Body;
use super::error::{ApiError, ErrorBody};
use super::protect::{NotCrossSite, Svc};
use super::types::{EmailMessage, EmailOnly, Message};
use crate::service::verification::RESEND_MESSAGE;

/// `POST /api/v1/verify_email`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyEmail {
    /// The token from the confirmation link.
    pub token: String,
}

#[utoipa::path(post, path = "/api/v1/verify_email", tag = "v1",
    request_body(content((VerifyEmail = "application/x-www-form-urlencoded"), (VerifyEmail = "application/json"))),
    responses((status = 200, description = "Address confirmed", body = EmailMessage),
              (status = 400, description = "Token unknown, expired or already used", body = ErrorBody)))]
#[rocket::post("/verify_email", data = "<body>")]
pub async fn verify_email(
    _site: NotCrossSite,
    svc: Svc<'_>,
    body: Body<VerifyEmail>,
) -> Result<Json<EmailMessage>, ApiError> {
    let user = svc.verify_email(&svc.ctx, &body.0.token).await?;
    Ok(Json(EmailMessage::new(user.email, "email confirmed")))
}

#[utoipa::path(post, path = "/api/v1/verify_email/resend", tag = "v1",
    request_body(content((EmailOnly = "application/x-www-form-urlencoded"), (EmailOnly = "application/json"))),
    responses((status = 202, description = "The same answer for every well-formed address", body = Message),
              (status = 400, description = "Missing or malformed email", body = ErrorBody),
              (status = 429, description = "Too many requests for this address (Retry-After)", body = ErrorBody)))]
#[rocket::post("/verify_email/resend", data = "<body>")]
pub async fn resend(
    _site: NotCrossSite,
    svc: Svc<'_>,
    body: Body<EmailOnly>,
) -> Result<(Status, Json<Message>), ApiError> {
    svc.resend_verification(&body.0.email).await?;
    Ok((Status::Accepted, Json(Message::new(RESEND_MESSAGE))))
}
