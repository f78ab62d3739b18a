//! The pages' guards. `Browser`: the browser's cookies and the settings pages use (CSRF tokens,
//! the session cookie, short-lived cookies). `PageUser`: the logged-in user, resolved by the same
//! code as the API's (`guard::resolve`). `CsrfForm<T>` and `AccountForm<T>`: a form post with its
//! CSRF token checked, then `T` (and for the account's forms, the user).
//!
//! A guard that refuses answers with a page: a 303 to log in, the 403 "form has expired" page, or
//! an error page. Rocket hands a failed guard's request to the catcher, which finds that page in
//! the request's cache (`take_refusal`); the status it is caught with must match, so a refusal
//! swallowed by `Option<PageUser>` never answers for anything else.

use std::sync::Mutex;

use rocket::data::{self, Data, FromData};
use rocket::http::{Cookie, CookieJar, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};
use serde::de::DeserializeOwned;

use super::render::{PageOr, forbidden, message_page};
use super::{PageSettings, csrf, login};
use crate::api::ApiSettings;
use crate::api::body::{Fields, read_fields};
use crate::api::error::{ApiError, remember};
use crate::api::guard::{AuthUser, NoSession, SessionJar, resolve};
use crate::service::{AuthService, UserView};

/// Where every page that needs a session returns after logging in.
const ACCOUNT: &str = "/account";

// ---------------------------------------------------------------- refusals

/// A page guard's refusal as Rocket logs it; the page itself waits in the request's cache.
pub struct Refused(Status);

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused with a {} page", self.0.code)
    }
}

struct Refusal(Mutex<Option<PageOr>>);

/// Keeps `page` for the catcher and gives the failure to return.
fn refuse(req: &Request<'_>, page: PageOr) -> (Status, Refused) {
    let status = page.status();
    let slot = req.local_cache(|| Refusal(Mutex::new(None)));
    *slot.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(page);
    (status, Refused(status))
}

/// The page a guard refused this request with, when the catcher answers for that refusal.
pub fn take_refusal(req: &Request<'_>, status: Status) -> Option<PageOr> {
    let slot = req.local_cache(|| Refusal(Mutex::new(None)));
    let mut kept = slot.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    kept.take_if(|page| page.status() == status)
}

/// Where a page that needs a full session sends a browser without one: a pending login goes on
/// to its second step, anything else to log in; a failing service shows its error.
pub(super) fn login_first(why: NoSession) -> PageOr {
    match why {
        NoSession::NoCookie | NoSession::Dead => PageOr::SeeOther(format!("/login?next={ACCOUNT}")),
        NoSession::Pending => login::continue_login(ACCOUNT),
        NoSession::Failed(e) => message_page(e.status, "Your account", e.message, ACCOUNT, "Try again").into(),
    }
}

/// The same when the service finds the session gone halfway through a request.
pub(super) async fn session_lost(svc: &AuthService, token: &str) -> PageOr {
    let pending = svc.is_pending_login(token).await.unwrap_or(false);
    login_first(if pending { NoSession::Pending } else { NoSession::Dead })
}

fn settings<'r>(req: &'r Request<'_>) -> Result<(&'r ApiSettings, &'r PageSettings), ApiError> {
    let rocket = req.rocket();
    match (rocket.state::<ApiSettings>(), rocket.state::<PageSettings>()) {
        (Some(s), Some(p)) => Ok((s, p)),
        _ => Err(ApiError::for_status(Status::InternalServerError)),
    }
}

// ---------------------------------------------------------------- the browser

/// The browser's cookies as the pages use them, with the settings they need.
pub struct Browser<'r> {
    jar: &'r CookieJar<'r>,
    pub settings: &'r ApiSettings,
    pub pages: &'r PageSettings,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Browser<'r> {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match settings(req) {
            Ok((settings, pages)) => Outcome::Success(Browser { jar: req.cookies(), settings, pages }),
            Err(e) => Outcome::Error(remember(req, e)),
        }
    }
}

impl Browser<'_> {
    /// The token for the forms of this page (see `csrf.rs`: keyed, bound to the session once
    /// logged in, fail closed).
    pub fn csrf_token(&self) -> String {
        let s = self.settings;
        csrf::form_token(self.jar, &s.csrf, s.cookie_secure, s.cookie_domain.as_deref())
    }

    /// Where to go after logging in (`login_next`).
    pub fn next(&self, next: Option<&str>) -> String {
        crate::api::forward::login_next(next, self.settings)
    }

    /// The session cookie, to set at a login or remove at a logout.
    pub fn session(&self) -> SessionJar<'_> {
        SessionJar::new(self.jar, self.settings)
    }

    /// Removes the pre-session CSRF cookie (a session binds the tokens from now on).
    pub fn forget_pre_session(&self) {
        let cookie = Cookie::build(csrf::PRE_SESSION_COOKIE).path("/").build();
        self.jar.remove(crate::api::forward::scoped(cookie, self.settings));
    }

    /// A short-lived cookie of the pages' own (HttpOnly, SameSite=Strict, `Secure` as configured).
    pub fn set(&self, name: &'static str, value: String, path: &'static str, max_age: rocket::time::Duration) {
        self.jar.add(
            Cookie::build((name, value))
                .http_only(true)
                .same_site(rocket::http::SameSite::Strict)
                .path(path)
                .secure(self.settings.cookie_secure)
                .max_age(max_age)
                .build(),
        );
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.jar.get(name).map(|c| c.value().to_owned())
    }

    pub fn remove(&self, name: &'static str, path: &'static str) {
        self.jar.remove(Cookie::build(name).path(path).build());
    }
}

// ---------------------------------------------------------------- the logged-in user

/// The user of a page that needs a full session. Without one the page answers a 303 to
/// `/login?next=/account` (to the second step for a pending login).
pub struct PageUser(pub AuthUser);

impl PageUser {
    pub fn user(&self) -> &UserView {
        &self.0.user
    }

    /// The session token, for the service calls that still take it.
    pub fn token(&self) -> &str {
        &self.0.token
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PageUser {
    type Error = Refused;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Refused> {
        match resolve(req).await {
            Ok(user) => Outcome::Success(PageUser(user)),
            Err(why) => Outcome::Error(refuse(req, login_first(why))),
        }
    }
}

// ---------------------------------------------------------------- forms

/// A page form: the body read as the API reads bodies (a form or JSON, at most `max_body_bytes`,
/// duplicates refused), its CSRF token checked (403 "form has expired" page otherwise), then `T`.
/// Absent and empty fields take `T`'s defaults (`#[serde(default)]`: "" for a string).
pub struct CsrfForm<T>(pub T);

/// An account form: as `CsrfForm`, then the logged-in user as `PageUser` resolves it.
pub struct AccountForm<T> {
    pub me: PageUser,
    pub form: T,
}

/// The fields of a form post whose CSRF token matches.
async fn checked_fields<'r>(req: &'r Request<'_>, data: Data<'r>) -> Result<Fields, (Status, Refused)> {
    let failed = |e: ApiError| {
        let (status, _) = remember(req, e);
        (status, Refused(status))
    };
    let fields = read_fields(req, data).await.map_err(failed)?;
    let (settings, _) = settings(req).map_err(failed)?;
    if !csrf::check(req.cookies(), &settings.csrf, fields.get("csrf_token")) {
        return Err(refuse(req, forbidden()));
    }
    Ok(fields)
}

fn typed<T: DeserializeOwned>(req: &Request<'_>, fields: Fields) -> Result<T, (Status, Refused)> {
    fields.into_value().map_err(|e| {
        let (status, _) = remember(req, e);
        (status, Refused(status))
    })
}

#[rocket::async_trait]
impl<'r, T: DeserializeOwned + Send> FromData<'r> for CsrfForm<T> {
    type Error = Refused;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match checked_fields(req, data).await.and_then(|fields| typed(req, fields)) {
            Ok(form) => Outcome::Success(CsrfForm(form)),
            Err(e) => Outcome::Error(e),
        }
    }
}

#[rocket::async_trait]
impl<'r, T: DeserializeOwned + Send> FromData<'r> for AccountForm<T> {
    type Error = Refused;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let fields = match checked_fields(req, data).await {
            Ok(fields) => fields,
            Err(e) => return Outcome::Error(e),
        };
        let me = match resolve(req).await {
            Ok(user) => PageUser(user),
            Err(why) => return Outcome::Error(refuse(req, login_first(why))),
        };
        match typed(req, fields) {
            Ok(form) => Outcome::Success(AccountForm { me, form }),
            Err(e) => Outcome::Error(e),
        }
    }
}

/// A form with no fields of its own but the CSRF token.
#[derive(Debug, Default, serde::Deserialize)]
pub struct NoFields {}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::http::ContentType;
    use rocket::local::blocking::Client;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Pair {
        email: String,
        next: Option<String>,
    }

    #[rocket::get("/form")]
    fn form(browser: Browser<'_>) -> String {
        browser.csrf_token()
    }

    #[rocket::post("/form", data = "<form>")]
    fn post(form: CsrfForm<Pair>) -> String {
        format!("{:?}|{:?}", form.0.email, form.0.next)
    }

    fn client() -> Client {
        let settings = ApiSettings {
            cookie_secure: false,
            max_body_bytes: 4096,
            session_max_age_secs: 60,
            trusted_proxies: Vec::new(),
            own_origin: None,
            allowed_origins: Vec::new(),
            cookie_domain: None,
            redirect_origins: Vec::new(),
            login_url: "http://localhost/login".into(),
            csrf: csrf::CsrfKey::new(&crate::service::key::ServerKey::from_bytes([9; 32])),
        };
        let pages = PageSettings {
            reset_delivery: crate::config::ResetDelivery::Response,
            password_min_length: 12,
            email_verification: false,
        };
        let rocket = rocket::build()
            .manage(settings)
            .manage(pages)
            .mount("/", rocket::routes![form, post])
            .register("/", rocket::catchers![crate::api::error::default_catcher]);
        Client::tracked(rocket).expect("a local client")
    }

    /// The form's token is checked before anything else; a missing one answers the 403 page.
    #[test]
    fn forms_without_their_token_get_the_expired_page() {
        let c = client();
        let token = c.get("/form").dispatch().into_string().unwrap();
        assert_eq!(token.len(), 64, "a token, and the pre-session cookie that binds it");
        let refused = c.post("/form").header(ContentType::Form).body("email=a%40b.c").dispatch();
        assert_eq!(refused.status(), Status::Forbidden);
        assert!(refused.into_string().unwrap().contains("This form has expired"));
        let wrong = c.post("/form").header(ContentType::Form).body(format!("csrf_token={}", "0".repeat(64))).dispatch();
        assert_eq!(wrong.status(), Status::Forbidden);
    }

    /// Absent and empty fields read as the form's defaults, as `form.get(..).unwrap_or_default()` did.
    #[test]
    fn missing_and_empty_fields_take_defaults() {
        let c = client();
        let token = c.get("/form").dispatch().into_string().unwrap();
        let ok = |body: String| c.post("/form").header(ContentType::Form).body(body).dispatch().into_string().unwrap();
        assert_eq!(ok(format!("csrf_token={token}")), r#"""|None"#);
        assert_eq!(ok(format!("csrf_token={token}&email=&next=")), r#"""|None"#);
        assert_eq!(ok(format!("csrf_token={token}&email=a%40b.c&next=%2Fx")), r#""a@b.c"|Some("/x")"#);
        // The body rules of the API hold: a duplicate field is refused.
        let dup =
            c.post("/form").header(ContentType::Form).body(format!("csrf_token={token}&email=a&email=b")).dispatch();
        assert_eq!(dup.status(), Status::BadRequest);
    }

    #[test]
    fn a_refusal_answers_only_for_its_own_status() {
        let c = client();
        let req = c.get("/");
        let (status, _) = refuse(req.inner(), PageOr::SeeOther("/login".into()));
        assert_eq!(status, Status::SeeOther);
        assert!(take_refusal(req.inner(), Status::Forbidden).is_none(), "another status");
        assert!(matches!(take_refusal(req.inner(), Status::SeeOther), Some(PageOr::SeeOther(to)) if to == "/login"));
        assert!(take_refusal(req.inner(), Status::SeeOther).is_none(), "taken once");
    }
}
