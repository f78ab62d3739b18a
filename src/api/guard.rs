//! Request guards: the logged-in user, resolved from the `session_id` cookie by the service (in
//! one place, `resolve`, which the pages' guard uses too), and the session cookie itself.

use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use super::ApiSettings;
use super::error::{ApiError, ErrorCode, remember};
use crate::service::{AuthError, AuthService, NewSession, UserView};

pub const SESSION_COOKIE: &str = "session_id";

/// The user behind a valid session cookie. Fails with 401 (v1 routes).
pub struct AuthUser {
    pub user: UserView,
    /// The presented cookie value, for logout.
    pub token: String,
}

/// The same, failing with 403 as the classic routes do.
pub struct ClassicUser(pub AuthUser);

/// Why a request has no full session.
pub enum NoSession {
    /// No session cookie.
    NoCookie,
    /// A cookie that names no live session.
    Dead,
    /// A login waiting for its second factor (api.md §10): not a session yet.
    Pending,
    /// The service could not tell (the database is down): the error as the API answers it.
    Failed(ApiError),
}

/// The one place a request's session cookie is resolved to its user, for the API's guards and
/// the pages' (`pages::guards::PageUser`).
pub async fn resolve(req: &Request<'_>) -> Result<AuthUser, NoSession> {
    let Some(token) = req.cookies().get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Err(NoSession::NoCookie);
    };
    let Some(svc) = req.rocket().state::<AuthService>() else {
        return Err(NoSession::Failed(ApiError::for_status(Status::InternalServerError)));
    };
    match svc.authenticate(&token).await {
        Ok(user) => Ok(AuthUser { user, token }),
        // Only on the failure path: a pending login is told what it still owes.
        Err(AuthError::NotAuthenticated) => match svc.is_pending_login(&token).await {
            Ok(true) => Err(NoSession::Pending),
            Ok(false) => Err(NoSession::Dead),
            Err(e) => Err(NoSession::Failed(e.into())),
        },
        Err(e) => Err(NoSession::Failed(e.into())),
    }
}

/// The API's answer to a request without a full session.
fn api_error(why: NoSession) -> ApiError {
    match why {
        NoSession::NoCookie => ApiError::for_status(Status::Unauthorized),
        NoSession::Dead => AuthError::NotAuthenticated.into(),
        NoSession::Pending => AuthError::SecondFactorRequired.into(),
        NoSession::Failed(e) => e,
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match resolve(req).await {
            Ok(u) => Outcome::Success(u),
            Err(why) => Outcome::Error(remember(req, api_error(why))),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClassicUser {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match resolve(req).await.map_err(api_error) {
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

/// The session cookie as presented, whatever it names (a session to end, a pending login to
/// complete): `Option<SessionCookie>` where it may be absent.
pub struct SessionCookie(pub String);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SessionCookie {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        match req.cookies().get(SESSION_COOKIE) {
            Some(c) => Outcome::Success(SessionCookie(c.value().to_owned())),
            None => Outcome::Forward(Status::Unauthorized),
        }
    }
}

/// This response's session cookie: set at a login, removed at a logout.
pub struct SessionJar<'r> {
    jar: &'r CookieJar<'r>,
    settings: &'r ApiSettings,
}

impl<'r> SessionJar<'r> {
    pub fn new(jar: &'r CookieJar<'r>, settings: &'r ApiSettings) -> Self {
        Self { jar, settings }
    }

    /// Sets the cookie of a new session (or of a pending login).
    pub fn start(&self, session: &NewSession) {
        self.jar.add(session_cookie(session, self.settings));
    }

    /// Removes the session cookie.
    pub fn end(&self) {
        self.jar.remove(removal_cookie(self.settings));
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SessionJar<'r> {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match req.rocket().state::<ApiSettings>() {
            Some(settings) => Outcome::Success(SessionJar::new(req.cookies(), settings)),
            None => Outcome::Error(remember(req, ApiError::for_status(Status::InternalServerError))),
        }
    }
}
