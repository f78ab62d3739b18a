//! Second factors over the API (api.md §10): TOTP enrolment, confirmation, disabling, recovery
//! codes, and the second step of a login.

use rocket::http::Status;
use rocket::serde::json::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::Body;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::guard::{AuthUser, SessionCookie, SessionJar};
use super::protect::{ClientBudget, NotCrossSite, Svc};
use super::types::{EmailMessage, Message};
use crate::service::second_factor::SecondFactorProof;
use crate::service::{AuthError, NewSession};

/// `current_password`, for the routes that change factors.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CurrentPassword {
    pub current_password: String,
}

/// `code` from the authenticator app.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeOnly {
    #[schema(example = "123456")]
    pub code: String,
}

/// The second step of a login: `code` or `recovery_code`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SecondFactorBody {
    #[schema(example = "123456")]
    pub code: Option<String>,
    #[schema(example = "abcde-fgh23")]
    pub recovery_code: Option<String>,
}

/// `POST /api/v1/totp`: the secret, not active until confirmed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSecret {
    pub secret: String,
    pub otpauth_url: String,
    pub qr_svg: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnabled {
    pub message: String,
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// The answer to a right password: logged in, or (api.md §10) a second factor is required.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginAnswer {
    pub email: String,
    pub message: String,
    /// With "second factor required": `totp`, `recovery_code`, then `passkey` when the user has
    /// one (api.md §10, §11). Absent when logged in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub second_factor: Vec<&'static str>,
}

impl LoginAnswer {
    pub fn of(session: &NewSession) -> Self {
        let message = if session.second_factor.is_empty() { "logged in" } else { "second factor required" };
        Self {
            email: session.user.email.clone(),
            message: message.into(),
            second_factor: session.second_factor.clone(),
        }
    }
}

fn plain(codes: Vec<zeroize::Zeroizing<String>>) -> Vec<String> {
    codes.iter().map(|c| c.as_str().to_owned()).collect()
}

#[utoipa::path(post, path = "/api/v1/totp", tag = "v1", security(("session_cookie" = [])),
    request_body(content((CurrentPassword = "application/x-www-form-urlencoded"), (CurrentPassword = "application/json"))),
    responses((status = 200, description = "A new secret, active once confirmed", body = TotpSecret),
              (status = 400, description = "Missing field", body = ErrorBody),
              (status = 401, description = "Wrong password (counts toward the lockout), or no full session", body = ErrorBody),
              (status = 409, description = "already_enabled", body = ErrorBody),
              (status = 429, description = "Account locked (Retry-After)", body = ErrorBody)))]
#[rocket::post("/totp", data = "<body>")]
pub async fn enrol(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    me: AuthUser,
    body: Body<CurrentPassword>,
) -> Result<Json<TotpSecret>, ApiError> {
    let e = svc.totp_enrol(&me.token, &body.0.current_password).await?;
    Ok(Json(TotpSecret {
        secret: e.secret.as_str().to_owned(),
        otpauth_url: e.otpauth_url.as_str().to_owned(),
        qr_svg: e.qr_svg.clone(),
    }))
}

#[utoipa::path(post, path = "/api/v1/totp/confirm", tag = "v1", security(("session_cookie" = [])),
    request_body(content((CodeOnly = "application/x-www-form-urlencoded"), (CodeOnly = "application/json"))),
    responses((status = 200, description = "TOTP on; the recovery codes, shown this once", body = TotpEnabled),
              (status = 400, description = "invalid_code", body = ErrorBody),
              (status = 401, description = "No full session", body = ErrorBody),
              (status = 409, description = "nothing_to_confirm", body = ErrorBody)))]
#[rocket::post("/totp/confirm", data = "<body>")]
pub async fn confirm(
    _site: NotCrossSite,
    svc: Svc,
    me: AuthUser,
    body: Body<CodeOnly>,
) -> Result<Json<TotpEnabled>, ApiError> {
    match svc.totp_confirm(&me.token, &body.0.code).await {
        Ok(codes) => {
            Ok(Json(TotpEnabled { message: "two-factor authentication enabled".into(), recovery_codes: plain(codes) }))
        }
        Err(AuthError::InvalidCode) => Err(ApiError::new(
            Status::BadRequest,
            ErrorCode::InvalidCode,
            "The code does not match; enter the current code from your authenticator app.",
        )),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(post, path = "/api/v1/totp/disable", tag = "v1", security(("session_cookie" = [])),
    request_body(content((CurrentPassword = "application/x-www-form-urlencoded"), (CurrentPassword = "application/json"))),
    responses((status = 200, description = "TOTP off; recovery codes removed", body = Message),
              (status = 400, description = "Missing field", body = ErrorBody),
              (status = 401, description = "Wrong password, or no full session", body = ErrorBody),
              (status = 409, description = "not_enabled", body = ErrorBody)))]
#[rocket::post("/totp/disable", data = "<body>")]
pub async fn disable(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    me: AuthUser,
    body: Body<CurrentPassword>,
) -> Result<Json<Message>, ApiError> {
    svc.totp_disable(&me.token, &body.0.current_password).await?;
    Ok(Json(Message::new("two-factor authentication disabled")))
}

#[utoipa::path(post, path = "/api/v1/recovery_codes", tag = "v1", security(("session_cookie" = [])),
    request_body(content((CurrentPassword = "application/x-www-form-urlencoded"), (CurrentPassword = "application/json"))),
    responses((status = 200, description = "A new set; the old codes stop working", body = RecoveryCodes),
              (status = 400, description = "Missing field", body = ErrorBody),
              (status = 401, description = "Wrong password, or no full session", body = ErrorBody),
              (status = 409, description = "not_enabled", body = ErrorBody)))]
#[rocket::post("/recovery_codes", data = "<body>")]
pub async fn regenerate(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    me: AuthUser,
    body: Body<CurrentPassword>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let codes = svc.regenerate_recovery_codes(&me.token, &body.0.current_password).await?;
    Ok(Json(RecoveryCodes { recovery_codes: plain(codes) }))
}

#[utoipa::path(post, path = "/api/v1/session/second_factor", tag = "v1", security(("session_cookie" = [])),
    request_body(content((SecondFactorBody = "application/x-www-form-urlencoded"), (SecondFactorBody = "application/json"))),
    responses((status = 200, description = "Logged in; a new session cookie (full session)", body = EmailMessage),
              (status = 400, description = "Neither code nor recovery_code", body = ErrorBody),
              (status = 401, description = "invalid_code (counts toward the lockout), or unauthorized: no live pending login", body = ErrorBody),
              (status = 429, description = "Account locked (Retry-After)", body = ErrorBody)))]
#[rocket::post("/session/second_factor", data = "<body>")]
pub async fn second_step(
    _site: NotCrossSite,
    svc: Svc,
    cookies: SessionJar<'_>,
    pending: Option<SessionCookie>,
    body: Body<SecondFactorBody>,
) -> Result<Json<EmailMessage>, ApiError> {
    let proof = match (body.0.code.as_deref(), body.0.recovery_code.as_deref()) {
        (Some(code), _) => SecondFactorProof::Totp(code),
        (None, Some(code)) => SecondFactorProof::RecoveryCode(code),
        (None, None) => return Err(ApiError::missing_field("code")),
    };
    let Some(SessionCookie(token)) = pending else {
        return Err(AuthError::NotAuthenticated.into());
    };
    let session = svc.complete_second_factor(&token, proof).await?;
    cookies.start(&session);
    Ok(Json(EmailMessage::new(session.user.email, "logged in")))
}
