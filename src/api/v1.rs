//! The HTTP API, version 1 (api.md §1).

use rocket::State;
use rocket::http::{CookieJar, Status};
use rocket::serde::json::{Json, Value, json};

use super::ApiSettings;
use super::body::Fields;
use super::error::ApiError;
use super::guard::{AuthUser, SESSION_COOKIE, removal_cookie, session_cookie};
use super::protect::{ClientBudget, NotCrossSite};
use crate::service::{AuthService, rfc3339};

type JsonResult = Result<Json<Value>, ApiError>;

#[utoipa::path(post, path = "/api/v1/register", tag = "v1",
    request_body(content((super::openapi::Credentials = "application/x-www-form-urlencoded"), (super::openapi::Credentials = "application/json"))),
    responses((status = 201, description = "User created", body = super::openapi::EmailMessage),
              (status = 400, description = "Missing field, malformed email, password outside the policy, or user exists", body = super::openapi::ErrorBody),
              (status = 413, description = "Body too large", body = super::openapi::ErrorBody), (status = 415, description = "Unsupported content type", body = super::openapi::ErrorBody)))]
#[rocket::post("/register", data = "<body>")]
pub async fn register(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: &State<AuthService>,
    body: Fields,
) -> Result<(Status, Json<Value>), ApiError> {
    let user = svc.register(body.required("email")?, body.required("password")?).await?;
    Ok((Status::Created, Json(json!({"email": user.email, "message": "user created"}))))
}

#[utoipa::path(post, path = "/api/v1/session", tag = "v1",
    request_body(content((super::openapi::Credentials = "application/x-www-form-urlencoded"), (super::openapi::Credentials = "application/json"))),
    responses((status = 200, description = "Logged in; sets the session_id cookie", body = super::openapi::EmailMessage),
              (status = 400, description = "Missing field", body = super::openapi::ErrorBody),
              (status = 401, description = "Invalid credentials", body = super::openapi::ErrorBody),
              (status = 429, description = "Account temporarily locked (Retry-After)", body = super::openapi::ErrorBody)))]
#[rocket::post("/session", data = "<body>")]
pub async fn login(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: &State<AuthService>,
    settings: &State<ApiSettings>,
    jar: &CookieJar<'_>,
    body: Fields,
) -> JsonResult {
    let session = svc.login(body.required("email")?, body.required("password")?).await?;
    jar.add(session_cookie(&session, settings));
    Ok(Json(json!({"email": session.user.email, "message": "logged in"})))
}

#[utoipa::path(post, path = "/api/v1/logout", tag = "v1", security(("session_cookie" = [])),
    responses((status = 200, description = "Logged out (also without a valid session)", body = super::openapi::Message)))]
#[rocket::post("/logout")]
pub async fn logout(
    _site: NotCrossSite,
    svc: &State<AuthService>,
    settings: &State<ApiSettings>,
    jar: &CookieJar<'_>,
) -> JsonResult {
    if let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) {
        svc.logout(&token).await?;
    }
    jar.remove(removal_cookie(settings));
    Ok(Json(json!({"message": "logged out"})))
}

#[utoipa::path(get, path = "/api/v1/profile", tag = "v1", security(("session_cookie" = [])),
    responses((status = 200, description = "The logged-in user", body = super::openapi::Profile),
              (status = 401, description = "No valid session", body = super::openapi::ErrorBody)))]
#[rocket::get("/profile")]
pub fn profile(me: AuthUser) -> Json<Value> {
    Json(json!({"id": me.user.id, "email": me.user.email, "created_at": rfc3339(me.user.created_at)}))
}

#[utoipa::path(post, path = "/api/v1/reset_password", tag = "v1",
    request_body(content((super::openapi::EmailOnly = "application/x-www-form-urlencoded"), (super::openapi::EmailOnly = "application/json"))),
    responses((status = 200, description = "Reset token issued", body = super::openapi::ResetIssued),
              (status = 400, description = "Missing email", body = super::openapi::ErrorBody),
              (status = 404, description = "No such user", body = super::openapi::ErrorBody),
              (status = 429, description = "Too many reset requests (Retry-After)", body = super::openapi::ErrorBody)))]
#[rocket::post("/reset_password", data = "<body>")]
pub async fn reset_password(_site: NotCrossSite, svc: &State<AuthService>, body: Fields) -> JsonResult {
    let issued = svc.request_reset(body.required("email")?).await?;
    Ok(Json(json!({"email": issued.email, "reset_token": issued.token.expose()})))
}

#[utoipa::path(post, path = "/api/v1/update_password", tag = "v1",
    request_body(content((super::openapi::UpdatePassword = "application/x-www-form-urlencoded"), (super::openapi::UpdatePassword = "application/json"))),
    responses((status = 200, description = "Password updated; every session of the user ended", body = super::openapi::EmailMessage),
              (status = 400, description = "Token missing, unknown, expired or used, or password outside the policy", body = super::openapi::ErrorBody)))]
#[rocket::post("/update_password", data = "<body>")]
pub async fn update_password(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: &State<AuthService>,
    body: Fields,
) -> JsonResult {
    let user = svc.update_password(body.required("reset_token")?, body.required("new_password")?, None).await?;
    Ok(Json(json!({"email": user.email, "message": "password updated"})))
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The database answers", body = super::openapi::Health),
              (status = 503, description = "The database does not answer", body = super::openapi::ErrorBody)))]
#[rocket::get("/health")]
pub async fn health(svc: &State<AuthService>) -> JsonResult {
    match svc.health().await {
        Ok(()) => Ok(Json(json!({"status": "ok"}))),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            Err(ApiError::new(Status::ServiceUnavailable, "unavailable", "The database is not answering."))
        }
    }
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "v1",
    responses((status = 200, description = "This document")))]
#[rocket::get("/openapi.json")]
pub fn openapi_json() -> (rocket::http::ContentType, String) {
    super::openapi::document()
}
