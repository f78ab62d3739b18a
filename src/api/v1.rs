//! The HTTP API, version 1 (api.md §1).

use rocket::http::Status;
use rocket::serde::json::Json;

use super::body::Body;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::guard::{AuthUser, SessionCookie, SessionJar};
use super::protect::{ClientBudget, NotCrossSite, Svc};
use super::second_factor::LoginAnswer;
use super::types::{
    Credentials, EmailMessage, EmailOnly, Health, Message, OthersEnded, PasswordChange, Profile, ResetAnswer,
    ResetIssued, SessionItem, SessionList, UpdatePassword,
};
use crate::service::verification::{CHECK_YOUR_EMAIL, SignUp};
use crate::service::{AuthError, AuthService};

#[utoipa::path(post, path = "/api/v1/register", tag = "v1",
    request_body(content((Credentials = "application/x-www-form-urlencoded"), (Credentials = "application/json"))),
    responses((status = 201, description = "User created", body = EmailMessage),
              (status = 400, description = "Missing field, malformed email, password outside the policy, or user exists", body = ErrorBody),
              (status = 413, description = "Body too large", body = ErrorBody), (status = 415, description = "Unsupported content type", body = ErrorBody)))]
#[rocket::post("/register", data = "<body>")]
pub async fn register(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    body: Body<Credentials>,
) -> Result<(Status, Json<EmailMessage>), ApiError> {
    Ok(match svc.sign_up(&body.0.email, &body.0.password).await? {
        SignUp::Created(user) => (Status::Created, Json(EmailMessage::new(user.email, "user created"))),
        // The same bytes for a new and an existing address (api.md §13).
        SignUp::Pending { email } => (Status::Created, Json(EmailMessage::new(email, CHECK_YOUR_EMAIL))),
    })
}

#[utoipa::path(post, path = "/api/v1/session", tag = "v1",
    request_body(content((Credentials = "application/x-www-form-urlencoded"), (Credentials = "application/json"))),
    responses((status = 200, description = "Logged in; sets the session_id cookie (with a second factor: \"second factor required\" and a pending login's cookie)", body = LoginAnswer),
              (status = 400, description = "Missing field", body = ErrorBody),
              (status = 401, description = "Invalid credentials", body = ErrorBody),
              (status = 429, description = "Account temporarily locked (Retry-After)", body = ErrorBody)))]
#[rocket::post("/session", data = "<body>")]
pub async fn login(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    cookies: SessionJar<'_>,
    body: Body<Credentials>,
) -> Result<Json<LoginAnswer>, ApiError> {
    Ok(password_login(&svc, &cookies, &body.0).await?)
}

/// A login with email and password (v1 and classic): the session's cookie and the answer.
pub(super) async fn password_login(
    svc: &AuthService,
    cookies: &SessionJar<'_>,
    creds: &Credentials,
) -> Result<Json<LoginAnswer>, AuthError> {
    let session = svc.login(&creds.email, &creds.password).await?;
    cookies.start(&session);
    Ok(Json(LoginAnswer::of(&session)))
}

#[utoipa::path(post, path = "/api/v1/logout", tag = "v1", security(("session_cookie" = [])),
    responses((status = 200, description = "Logged out (also without a valid session)", body = Message)))]
#[rocket::post("/logout")]
pub async fn logout(
    _site: NotCrossSite,
    svc: Svc,
    cookies: SessionJar<'_>,
    session: Option<SessionCookie>,
) -> Result<Json<Message>, ApiError> {
    if let Some(SessionCookie(token)) = session {
        svc.logout(&token).await?;
    }
    cookies.end();
    Ok(Json(Message::new("logged out")))
}

#[utoipa::path(get, path = "/api/v1/profile", tag = "v1", security(("session_cookie" = [])),
    responses((status = 200, description = "The logged-in user", body = Profile),
              (status = 401, description = "No valid session", body = ErrorBody)))]
#[rocket::get("/profile")]
pub fn profile(me: AuthUser) -> Json<Profile> {
    Json(Profile { id: me.user.id, email: me.user.email, created_at: me.user.created_at })
}

#[utoipa::path(post, path = "/api/v1/reset_password", tag = "v1",
    request_body(content((EmailOnly = "application/x-www-form-urlencoded"), (EmailOnly = "application/json"))),
    responses((status = 200, description = "Reset token issued (reset_delivery = \"response\")", body = ResetIssued),
              (status = 202, description = "reset_delivery = \"email\": the same answer for every well-formed email", body = Message),
              (status = 400, description = "Missing or malformed email", body = ErrorBody),
              (status = 404, description = "No such user (reset_delivery = \"response\" only)", body = ErrorBody),
              (status = 429, description = "Too many reset requests (Retry-After)", body = ErrorBody)))]
#[rocket::post("/reset_password", data = "<body>")]
pub async fn reset_password(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    body: Body<EmailOnly>,
) -> Result<ResetAnswer, ApiError> {
    Ok(ResetAnswer::from_request(svc.self_service_reset(&body.0.email).await?, Status::Accepted))
}

#[utoipa::path(post, path = "/api/v1/update_password", tag = "v1",
    request_body(content((UpdatePassword = "application/x-www-form-urlencoded"), (UpdatePassword = "application/json"))),
    responses((status = 200, description = "Password updated; every session of the user ended", body = EmailMessage),
              (status = 400, description = "Token missing, unknown, expired or used, or password outside the policy", body = ErrorBody)))]
#[rocket::post("/update_password", data = "<body>")]
pub async fn update_password(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    body: Body<UpdatePassword>,
) -> Result<Json<EmailMessage>, ApiError> {
    let user = svc.update_password(&body.0.reset_token, &body.0.new_password, None).await?;
    Ok(Json(EmailMessage::new(user.email, "password updated")))
}

#[utoipa::path(post, path = "/api/v1/password", tag = "v1", security(("session_cookie" = [])),
    request_body(content((PasswordChange = "application/x-www-form-urlencoded"), (PasswordChange = "application/json"))),
    responses((status = 200, description = "Password changed; every other session of the user ended", body = EmailMessage),
              (status = 400, description = "Missing field, or new password outside the policy", body = ErrorBody),
              (status = 401, description = "Wrong current password (counts toward the lockout), or no session", body = ErrorBody),
              (status = 429, description = "Account locked (Retry-After)", body = ErrorBody)))]
#[rocket::post("/password", data = "<body>")]
pub async fn change_password(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    me: AuthUser,
    body: Body<PasswordChange>,
) -> Result<Json<EmailMessage>, ApiError> {
    let user = svc.change_password(&me.token, &body.0.current_password, &body.0.new_password).await?;
    Ok(Json(EmailMessage::new(user.email, "password changed")))
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "v1", security(("session_cookie" = [])),
    responses((status = 200, description = "The caller's live sessions", body = SessionList),
              (status = 401, description = "No valid session", body = ErrorBody)))]
#[rocket::get("/sessions")]
pub async fn sessions(svc: Svc, me: AuthUser) -> Result<Json<SessionList>, ApiError> {
    let sessions = svc
        .list_sessions(&me.token)
        .await?
        .into_iter()
        .map(|s| SessionItem {
            id: s.id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            user_agent: s.user_agent,
            current: s.current,
        })
        .collect();
    Ok(Json(SessionList { sessions }))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "v1", security(("session_cookie" = [])),
    params(("id" = String, Path, description = "A session's public id")),
    responses((status = 200, description = "Session ended", body = Message),
              (status = 401, description = "No valid session", body = ErrorBody),
              (status = 404, description = "Not one of the caller's sessions", body = ErrorBody)))]
#[rocket::delete("/sessions/<id>")]
pub async fn end_session(_site: NotCrossSite, svc: Svc, me: AuthUser, id: &str) -> Result<Json<Message>, ApiError> {
    // A malformed id names no session of the caller's.
    let id = uuid::Uuid::parse_str(id).map_err(|_| AuthError::SessionNotFound)?;
    svc.end_session(&me.token, id).await?;
    Ok(Json(Message::new("session ended")))
}

#[utoipa::path(delete, path = "/api/v1/sessions", tag = "v1", security(("session_cookie" = [])),
    responses((status = 200, description = "Every other session of the caller ended", body = OthersEnded),
              (status = 401, description = "No valid session", body = ErrorBody)))]
#[rocket::delete("/sessions")]
pub async fn end_other_sessions(_site: NotCrossSite, svc: Svc, me: AuthUser) -> Result<Json<OthersEnded>, ApiError> {
    let ended = svc.end_other_sessions(&me.token).await?;
    Ok(Json(OthersEnded { message: "other sessions ended".into(), ended }))
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The database answers", body = Health),
              (status = 503, description = "The database does not answer", body = ErrorBody)))]
#[rocket::get("/health")]
pub async fn health(svc: Svc) -> Result<Json<Health>, ApiError> {
    match svc.health().await {
        Ok(()) => Ok(Json(Health { status: "ok".into() })),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            Err(ApiError::new(Status::ServiceUnavailable, ErrorCode::Unavailable, "The database is not answering."))
        }
    }
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "v1",
    responses((status = 200, description = "This document")))]
#[rocket::get("/openapi.json")]
pub fn openapi_json() -> (rocket::http::ContentType, String) {
    super::openapi::document()
}
