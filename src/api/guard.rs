//! Request guards: the logged-in user, resolved from the `session_id` cookie by the service.

use rocket::State;
use rocket::http::{Cookie, SameSite, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use super::ApiSettings;
use super::error::{ApiError, ErrorCode, remember};
use crate::service::{AuthError, AuthService, Authenticated, NewSession};

pub const SESSION_COOKIE: &str = "session_id";

/// The user behind a valid session cookie, resolved once for the whole request. Fails with 401
/// (v1 routes).
pub struct AuthUser {
    pub auth: Authenticated,
    /// The presented cookie value, for logout.
    pub token: String,
}

/// The same, failing with 403 as the classic routes do.
pub struct ClassicUser(pub AuthUser);

async fn resolve(req: &Request<'_>) -> Result<AuthUser, ApiError> {
    let Some(token) = req.cookies().get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Err(ApiError::for_status(Status::Unauthorized));
    };
    let svc = req
        .guard::<&State<AuthService>>()
        .await
        .succeeded()
        .ok_or_else(|| ApiError::for_status(Status::InternalServerError))?;
    let auth = match svc.authenticate(&token).await {
        // Only on the failure path: a pending login (api.md §10) is told what it still owes.
        Err(AuthError::NotAuthenticated) if svc.is_pending_login(&token).await? => {
            return Err(AuthError::SecondFactorRequired.into());
        }
        other => other?,
    };
    Ok(AuthUser { auth, token })
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match resolve(req).await {
            Ok(u) => Outcome::Success(u),
            Err(e) => Outcome::Error(remember(req, e)),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClassicUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match resolve(req).await {
            Ok(u) => Outcome::Success(ClassicUser(u)),
            Err(e) if e.status == Status::Unauthorized => Outcome::Error(remember(
                req,
                ApiError::new(Status::Forbidden, ErrorCode::Forbidden, "A valid session is required."),
            )),
            Err(e) => Outcome::Error(remember(req, e)),
        }
    }
}

/// The cookie for a new session: opaque, `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` when configured.
pub fn session_cookie(session: &NewSession, settings: &ApiSettings) -> Cookie<'static> {
    let cookie = Cookie::build((SESSION_COOKIE, session.token.expose().to_owned()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(settings.cookie_secure)
        .max_age(rocket::time::Duration::seconds(settings.session_max_age_secs))
        .build();
    super::forward::scoped(cookie, settings)
}

/// What `CookieJar::remove` needs to send a matching removal cookie.
pub fn removal_cookie(settings: &ApiSettings) -> Cookie<'static> {
    let cookie = Cookie::build(SESSION_COOKIE)
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(settings.cookie_secure)
        .build();
    super::forward::scoped(cookie, settings)
}
