//! The classic routes of the original exercise (api.md §2): same service, same sessions and
//! cookie; only the paths, bodies and failure statuses differ.

use rocket::http::Status;
use rocket::response::Redirect;
use rocket::serde::json::Json;

use super::body::{Body, Fields};
use super::error::{ApiError, json_response};
use super::guard::{ClassicUser, SessionJar};
use super::protect::{ClientBudget, NotCrossSite, Svc};
use super::second_factor::LoginAnswer;
use super::types::{
    ClassicUpdatePassword, Credentials, EmailMessage, EmailOnly, EmailOnlyResponse, Message, ResetAnswer,
};
use crate::service::AuthError;

#[rocket::get("/")]
pub fn index() -> Json<Message> {
    Json(Message::new("Bienvenue"))
}

/// 200 on success; a duplicate gets the original's bare `{"message": …}` body.
pub enum UsersResponse {
    Created(EmailMessage),
    Duplicate,
}

impl<'r> rocket::response::Responder<'r, 'static> for UsersResponse {
    fn respond_to(self, _: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        Ok(match self {
            UsersResponse::Created(v) => json_response(Status::Ok, &v),
            UsersResponse::Duplicate => json_response(Status::BadRequest, &Message::new("email already registered")),
        })
    }
}

/// The classic routes answer one failure status for missing fields too, so they read the body as
/// fields and type it themselves.
fn typed<T: serde::de::DeserializeOwned + utoipa::ToSchema>(body: Fields, status: Status) -> Result<T, ApiError> {
    body.into_typed().map_err(|e: ApiError| e.with_client_status(status))
}

#[rocket::post("/users", data = "<body>")]
pub async fn users(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    body: Body<Credentials>,
) -> Result<UsersResponse, ApiError> {
    match svc.sign_up(&body.0.email, &body.0.password).await {
        Ok(crate::service::verification::SignUp::Created(user)) => {
            Ok(UsersResponse::Created(EmailMessage::new(user.email, "user created")))
        }
        // Confirmation required: the same answer for every address, as on /api/v1/register.
        Ok(crate::service::verification::SignUp::Pending { email }) => {
            Ok(UsersResponse::Created(EmailMessage::new(email, crate::service::verification::CHECK_YOUR_EMAIL)))
        }
        Err(AuthError::UserExists) => Ok(UsersResponse::Duplicate),
        Err(e) => Err(e.into()),
    }
}

#[rocket::post("/sessions", data = "<body>")]
pub async fn login(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    cookies: SessionJar<'_>,
    body: Fields,
) -> Result<Json<LoginAnswer>, ApiError> {
    let creds: Credentials = typed(body, Status::Unauthorized)?;
    super::v1::password_login(&svc, &cookies, &creds)
        .await
        .map_err(|e| ApiError::from(e).with_client_status(Status::Unauthorized))
}

#[rocket::delete("/sessions")]
pub async fn logout(
    _site: NotCrossSite,
    svc: Svc,
    cookies: SessionJar<'_>,
    me: ClassicUser,
) -> Result<Redirect, ApiError> {
    svc.logout(&me.0.token).await?;
    cookies.end();
    Ok(Redirect::found("/"))
}

#[rocket::get("/profile")]
pub fn profile(me: ClassicUser) -> Json<EmailOnlyResponse> {
    Json(EmailOnlyResponse { email: me.0.user.email })
}

#[rocket::post("/reset_password", data = "<body>")]
pub async fn reset_password(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    body: Fields,
) -> Result<ResetAnswer, ApiError> {
    let forbidden = |e: ApiError| e.with_client_status(Status::Forbidden);
    let body: EmailOnly = typed(body, Status::Forbidden)?;
    let done = svc.self_service_reset(&body.email).await.map_err(|e| forbidden(e.into()))?;
    Ok(ResetAnswer::from_request(done, Status::Ok))
}

#[rocket::put("/reset_password", data = "<body>")]
pub async fn update_password(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    body: Fields,
) -> Result<Json<EmailMessage>, ApiError> {
    let body: ClassicUpdatePassword = typed(body, Status::Forbidden)?;
    let user = svc
        .update_password(&body.reset_token, &body.new_password, Some(&body.email))
        .await
        .map_err(|e| ApiError::from(e).with_client_status(Status::Forbidden))?;
    Ok(Json(EmailMessage::new(user.email, "Password updated")))
}
