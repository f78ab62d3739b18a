//! The HTTP API, version 1 (api.md §1).

use rocket::State;
use rocket::http::{CookieJar, Status};
use rocket::serde::json::{Json, Value, json};

use super::ApiSettings;
use super::body::Fields;
use super::error::ApiError;
use super::guard::{AuthUser, SESSION_COOKIE, removal_cookie, session_cookie};
use crate::service::AuthService;

type JsonResult = Result<Json<Value>, ApiError>;

pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[rocket::post("/register", data = "<body>")]
pub async fn register(svc: &State<AuthService>, body: Fields) -> Result<(Status, Json<Value>), ApiError> {
    let user = svc.register(body.required("email")?, body.required("password")?).await?;
    Ok((Status::Created, Json(json!({"email": user.email, "message": "user created"}))))
}

#[rocket::post("/session", data = "<body>")]
pub async fn login(
    svc: &State<AuthService>,
    settings: &State<ApiSettings>,
    jar: &CookieJar<'_>,
    body: Fields,
) -> JsonResult {
    let session = svc.login(body.required("email")?, body.required("password")?).await?;
    jar.add(session_cookie(&session, settings));
    Ok(Json(json!({"email": session.user.email, "message": "logged in"})))
}

#[rocket::post("/logout")]
pub async fn logout(svc: &State<AuthService>, settings: &State<ApiSettings>, jar: &CookieJar<'_>) -> JsonResult {
    if let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) {
        svc.logout(&token).await?;
    }
    jar.remove(removal_cookie(settings));
    Ok(Json(json!({"message": "logged out"})))
}

#[rocket::get("/profile")]
pub fn profile(me: AuthUser) -> Json<Value> {
    Json(json!({"id": me.user.id, "email": me.user.email, "created_at": rfc3339(me.user.created_at)}))
}

#[rocket::post("/reset_password", data = "<body>")]
pub async fn reset_password(svc: &State<AuthService>, body: Fields) -> JsonResult {
    let issued = svc.request_reset(body.required("email")?).await?;
    Ok(Json(json!({"email": issued.email, "reset_token": issued.token.expose()})))
}

#[rocket::post("/update_password", data = "<body>")]
pub async fn update_password(svc: &State<AuthService>, body: Fields) -> JsonResult {
    let user = svc.update_password(body.required("reset_token")?, body.required("new_password")?, None).await?;
    Ok(Json(json!({"email": user.email, "message": "password updated"})))
}

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
