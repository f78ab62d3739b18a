//! The classic routes of the original exercise (api.md §2): same service, same sessions and
//! cookie; only the paths, bodies and failure statuses differ.

use rocket::State;
use rocket::http::{CookieJar, Status};
use rocket::response::Redirect;
use rocket::serde::json::{Json, Value, json};

use super::ApiSettings;
use super::body::Fields;
use super::error::{ApiError, json_response};
use super::guard::{ClassicUser, removal_cookie, session_cookie};
use super::protect::{ClientBudget, NotCrossSite};
use crate::service::{AuthError, AuthService};

type JsonResult = Result<Json<Value>, ApiError>;

#[rocket::get("/")]
pub fn index() -> Json<Value> {
    Json(json!({"message": "Bienvenue"}))
}

/// 200 on success; a duplicate gets the original's bare `{"message": …}` body.
pub enum UsersResponse {
    Created(Value),
    Duplicate,
}

impl<'r> rocket::response::Responder<'r, 'static> for UsersResponse {
    fn respond_to(self, _: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        Ok(match self {
            UsersResponse::Created(v) => json_response(Status::Ok, &v),
            UsersResponse::Duplicate => {
                json_response(Status::BadRequest, &json!({"message": "email already registered"}))
            }
        })
    }
}

#[rocket::post("/users", data = "<body>")]
pub async fn users(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: &State<AuthService>,
    body: Fields,
) -> Result<UsersResponse, ApiError> {
    match svc.register(body.required("email")?, body.required("password")?).await {
        Ok(user) => Ok(UsersResponse::Created(json!({"email": user.email, "message": "user created"}))),
        Err(AuthError::UserExists) => Ok(UsersResponse::Duplicate),
        Err(e) => Err(e.into()),
    }
}

#[rocket::post("/sessions", data = "<body>")]
pub async fn login(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: &State<AuthService>,
    settings: &State<ApiSettings>,
    jar: &CookieJar<'_>,
    body: Fields,
) -> JsonResult {
    let unauthorized = |e: ApiError| e.with_client_status(Status::Unauthorized);
    let email = body.required("email").map_err(unauthorized)?;
    let password = body.required("password").map_err(unauthorized)?;
    let session = svc.login(email, password).await.map_err(|e| unauthorized(e.into()))?;
    jar.add(session_cookie(&session, settings));
    Ok(Json(json!({"email": session.user.email, "message": "logged in"})))
}

#[rocket::delete("/sessions")]
pub async fn logout(
    _site: NotCrossSite,
    svc: &State<AuthService>,
    settings: &State<ApiSettings>,
    jar: &CookieJar<'_>,
    me: ClassicUser,
) -> Result<Redirect, ApiError> {
    svc.logout(&me.0.token).await?;
    jar.remove(removal_cookie(settings));
    Ok(Redirect::found("/"))
}

#[rocket::get("/profile")]
pub fn profile(me: ClassicUser) -> Json<Value> {
    Json(json!({"email": me.0.user.email}))
}

#[rocket::post("/reset_password", data = "<body>")]
pub async fn reset_password(_site: NotCrossSite, svc: &State<AuthService>, body: Fields) -> JsonResult {
    let forbidden = |e: ApiError| e.with_client_status(Status::Forbidden);
    let email = body.required("email").map_err(forbidden)?;
    let issued = svc.request_reset(email).await.map_err(|e| forbidden(e.into()))?;
    Ok(Json(json!({"email": issued.email, "reset_token": issued.token.expose()})))
}

#[rocket::put("/reset_password", data = "<body>")]
pub async fn update_password(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: &State<AuthService>,
    body: Fields,
) -> JsonResult {
    let forbidden = |e: ApiError| e.with_client_status(Status::Forbidden);
    let email = body.required("email").map_err(forbidden)?;
    let token = body.required("reset_token").map_err(forbidden)?;
    let new_password = body.required("new_password").map_err(forbidden)?;
    let user = svc.update_password(token, new_password, Some(email)).await.map_err(|e| forbidden(e.into()))?;
    Ok(Json(json!({"email": user.email, "message": "Password updated"})))
}
