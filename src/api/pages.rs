//! Server-rendered account pages (api.md §8): register, log in, account (sessions, password,
//! log out), forgot and reset. No JavaScript; every form carries a CSRF token; a successful POST
//! answers 303; errors are shown beside the form with the status the API would give.
//!
//! CSRF tokens (`csrf.rs`) are keyed with the server key and bound to a secret the browser holds
//! in an HttpOnly cookie: the session token once logged in (and then only that), a random
//! pre-session `csrf` cookie before. The cross-site refusal of §6 runs first.

use askama::Template;
use rocket::http::{ContentType, Cookie, CookieJar, Header, Status};
use rocket::response::Responder;
use rocket::{Request, Response, State};

use super::ApiSettings;
use super::body::Fields;
use super::error::ApiError;
use super::guard::{SESSION_COOKIE, removal_cookie, session_cookie};
use super::protect::{ClientBudget, NotCrossSite, Svc};
use crate::config::ResetDelivery;
use crate::service::{AuthError, AuthService, ResetRequest};

use super::csrf::PRE_SESSION_COOKIE;
const STYLESHEET: &str = include_str!("../../static/style.css");

/// What the pages need to know of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct PageSettings {
    pub reset_delivery: ResetDelivery,
    pub password_min_length: usize,
    /// `email_verification = "required"`: the register page says what happens next (§13).
    pub email_verification: bool,
}

// ---------------------------------------------------------------- responses

/// An HTML page with its status and the page headers (CSP; no-store and frame denial come from
/// the security-headers fairing).
pub struct Page {
    status: Status,
    html: String,
    /// Seconds, for 429 and 503 pages (`Retry-After`).
    retry_after: Option<u64>,
}

impl Page {
    pub(crate) fn render(status: Status, template: &impl Template) -> Page {
        match template.render() {
            Ok(html) => Page { status, html, retry_after: None },
            Err(e) => {
                tracing::error!(error = %e, "a page failed to render");
                Page {
                    status: Status::InternalServerError,
                    html: "<!doctype html><title>Error</title><p>Something went wrong.</p>".into(),
                    retry_after: None,
                }
            }
        }
    }
}

impl Page {
    /// The same page telling the browser when to retry (a locked account, a busy server).
    fn with_retry_after(mut self, secs: Option<u64>) -> Page {
        self.retry_after = secs;
        self
    }
}

impl<'r> Responder<'r, 'static> for Page {
    fn respond_to(self, _: &'r Request<'_>) -> rocket::response::Result<'static> {
        let mut resp = Response::build();
        resp.status(self.status).header(ContentType::HTML).header(Header::new(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ));
        if let Some(secs) = self.retry_after {
            resp.header(Header::new("Retry-After", secs.to_string()));
        }
        resp.sized_body(self.html.len(), std::io::Cursor::new(self.html)).ok()
    }
}

/// A page, or a 303 See Other to a path on this site (post/redirect/get).
pub enum PageOr {
    Page(Page),
    SeeOther(String),
}

impl<'r> Responder<'r, 'static> for PageOr {
    fn respond_to(self, req: &'r Request<'_>) -> rocket::response::Result<'static> {
        match self {
            PageOr::Page(p) => p.respond_to(req),
            PageOr::SeeOther(to) => Response::build().status(Status::SeeOther).header(Header::new("Location", to)).ok(),
        }
    }
}

// ---------------------------------------------------------------- templates

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    next: String,
    email: String,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    email: String,
    min_length: usize,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    email: String,
    sessions: Vec<super::wayfinding::SessionCard>,
    min_length: usize,
    /// The passkeys section, rendered (and escaped) by `passkey_pages`.
    passkeys: String,
    /// The "Two-factor authentication" section (api.md §10).
    tfa: super::pages_second_factor::TwoFactorView,
    /// A failed password change, shown beside its form.
    password_error: Option<String>,
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    by_email: bool,
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    token: String,
    min_length: usize,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    pub(crate) title: &'a str,
    pub(crate) notice: Option<&'a str>,
    pub(crate) error: Option<String>,
    pub(crate) link: &'a str,
    pub(crate) link_text: &'a str,
}

// ---------------------------------------------------------------- CSRF

/// The token for the forms of this request (see `csrf.rs`: keyed, bound to the session once
/// logged in, fail closed).
pub(crate) fn csrf_token(jar: &CookieJar<'_>, settings: &ApiSettings) -> String {
    super::csrf::form_token(jar, &settings.csrf, settings.cookie_secure, settings.cookie_domain.as_deref())
}

/// Whether the form's token is the one for this browser (only the session-bound one once logged in).
pub(crate) fn csrf_ok(jar: &CookieJar<'_>, settings: &ApiSettings, form: &Fields) -> bool {
    super::csrf::check(jar, &settings.csrf, form.get("csrf_token"))
}

pub(crate) fn forbidden() -> PageOr {
    PageOr::Page(Page::render(
        Status::Forbidden,
        &MessagePage {
            title: "This form has expired",
            notice: None,
            error: Some(
                "The form could not be verified (a missing or wrong CSRF token). Open the page again and retry.".into(),
            ),
            link: "/login",
            link_text: "Back to log in",
        },
    ))
}

/// An error as the API would answer it: its status and its sentence.
pub(crate) fn failure(e: AuthError) -> (Status, String) {
    let words = super::wayfinding::page_message(&e, String::new());
    let api = ApiError::from(e);
    (api.status, if words.is_empty() { api.message } else { words })
}

/// The `Retry-After` the API would send with this error (locked, throttled, busy).
fn retry_after_of(e: &AuthError) -> Option<u64> {
    match e {
        AuthError::AccountLocked { retry_after_secs } | AuthError::TooManyResetRequests { retry_after_secs } => {
            Some(*retry_after_secs)
        }
        AuthError::Busy => Some(1),
        _ => None,
    }
}

/// `next` is followed only when it is a path on this site: one leading `/`, no second `/` or `\`
/// after it (`//evil.example` and `/\evil.example` are other hosts to a browser), no scheme, no
/// control characters.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && n.len() <= 512
                && rocket::http::uri::Reference::parse(n).is_ok() =>
        {
            n.to_owned()
        }
        _ => "/account".to_owned(),
    }
}

// ---------------------------------------------------------------- the form pages
// One builder per page, used by its GET and by its POST's failure path (the same page again,
// with the error beside the form and the API's status).

fn login_page(
    jar: &CookieJar<'_>,
    settings: &ApiSettings,
    status: Status,
    notice: Option<&str>,
    error: Option<String>,
    next: String,
    email: String,
) -> Page {
    let csrf = csrf_token(jar, settings);
    Page::render(status, &LoginPage { title: "Log in", notice, error, csrf, next, email })
}

fn register_page(
    jar: &CookieJar<'_>,
    settings: &ApiSettings,
    pages: &PageSettings,
    status: Status,
    error: Option<String>,
    email: String,
) -> Page {
    let csrf = csrf_token(jar, settings);
    let min_length = pages.password_min_length;
    let notice = pages.email_verification.then_some(
        "After you create the account we email you a link to confirm your address; you can log in once it is confirmed.",
    );
    Page::render(status, &RegisterPage { title: "Create an account", notice, error, csrf, email, min_length })
}

fn forgot_page(
    jar: &CookieJar<'_>,
    settings: &ApiSettings,
    pages: &PageSettings,
    status: Status,
    notice: Option<&str>,
    error: Option<String>,
) -> Page {
    let csrf = csrf_token(jar, settings);
    let by_email = pages.reset_delivery == ResetDelivery::Email;
    Page::render(status, &ForgotPage { title: "Forgot your password?", notice, error, csrf, by_email })
}

fn reset_page(
    jar: &CookieJar<'_>,
    settings: &ApiSettings,
    pages: &PageSettings,
    status: Status,
    error: Option<String>,
    token: String,
) -> Page {
    let csrf = csrf_token(jar, settings);
    let min_length = pages.password_min_length;
    Page::render(status, &ResetPage { title: "Choose a new password", notice: None, error, csrf, token, min_length })
}

// ---------------------------------------------------------------- routes

/// The stylesheet, cacheable (it carries nothing personal).
pub struct Stylesheet;

impl<'r> Responder<'r, 'static> for Stylesheet {
    fn respond_to(self, _: &'r Request<'_>) -> rocket::response::Result<'static> {
        Response::build()
            .header(ContentType::CSS)
            .header(Header::new("Cache-Control", "public, max-age=3600"))
            .sized_body(STYLESHEET.len(), std::io::Cursor::new(STYLESHEET))
            .ok()
    }
}

#[rocket::get("/static/style.css")]
pub fn stylesheet() -> Stylesheet {
    Stylesheet
}

#[rocket::get("/login?<next>&<registered>&<reset>&<logged_out>")]
pub async fn login_form(
    svc: &State<AuthService>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    next: Option<&str>,
    registered: Option<&str>,
    reset: Option<&str>,
    logged_out: Option<&str>,
) -> PageOr {
    // Already logged in: there is nothing to do here.
    if super::wayfinding::logged_in(svc, jar).await.is_some() {
        return PageOr::SeeOther(super::forward::login_next(next, settings));
    }
    let notice = match (registered, reset, logged_out) {
        (Some(_), _, _) => Some("Your account is ready: log in."),
        (_, Some(_), _) => Some("Your password is set: log in with it."),
        (_, _, Some(_)) => Some("You are logged out."),
        _ => None,
    };
    let email = super::wayfinding::take_registered_email(jar).unwrap_or_default();
    PageOr::Page(login_page(jar, settings, Status::Ok, notice, None, super::forward::login_next(next, settings), email))
}

#[rocket::post("/login", data = "<form>")]
pub async fn login(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    if !csrf_ok(jar, settings, &form) {
        return forbidden();
    }
    let next = super::forward::login_next(form.get("next"), settings);
    let email = form.get("email").unwrap_or_default().to_owned();
    match svc.login(&svc.ctx, &email, form.get("password").unwrap_or_default()).await {
        Ok(session) => {
            jar.add(session_cookie(&session, settings));
            jar.remove(super::forward::scoped(Cookie::build(PRE_SESSION_COOKIE).path("/").build(), settings));
            if !session.second_factor.is_empty() {
                return super::pages_second_factor::continue_login(&next);
            }
            PageOr::SeeOther(next)
        }
        Err(e) => {
            let unconfirmed = matches!(e, AuthError::EmailNotConfirmed);
            let retry = retry_after_of(&e);
            let (status, message) = failure(e);
            if unconfirmed {
                return super::verify_pages::not_confirmed(jar, settings, message, email);
            }
            PageOr::Page(login_page(jar, settings, status, None, Some(message), next, email).with_retry_after(retry))
        }
    }
}

#[rocket::get("/register")]
pub fn register_form(jar: &CookieJar<'_>, settings: &State<ApiSettings>, pages: &State<PageSettings>) -> Page {
    register_page(jar, settings, pages, Status::Ok, None, String::new())
}

#[rocket::post("/register", data = "<form>")]
pub async fn register(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    pages: &State<PageSettings>,
    form: Fields,
) -> PageOr {
    if !csrf_ok(jar, settings, &form) {
        return forbidden();
    }
    let email = form.get("email").unwrap_or_default().to_owned();
    match svc.sign_up(&svc.ctx, &email, form.get("password").unwrap_or_default()).await {
        Ok(crate::service::verification::SignUp::Created(_)) => {
            super::wayfinding::remember_registered_email(jar, settings, &email);
            PageOr::SeeOther("/login?registered=1".into())
        }
        // The same answer whether the address was new or already had an account (api.md §13).
        Ok(crate::service::verification::SignUp::Pending { .. }) => PageOr::SeeOther("/verify".into()),
        Err(e) => {
            let (status, message) = failure(e);
            PageOr::Page(register_page(jar, settings, pages, status, Some(message), email))
        }
    }
}

/// The account page for the session in the cookie, or a redirect to log in.
pub(crate) async fn account_page(
    svc: &AuthService,
    jar: &CookieJar<'_>,
    settings: &ApiSettings,
    status: Status,
    notice: Option<&str>,
    error: Option<String>,
    password_error: Option<String>,
) -> PageOr {
    let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return PageOr::SeeOther("/login?next=/account".into());
    };
    let listed = match svc.authenticate(&token).await {
        Ok(me) => svc.list_sessions(&me).await.map(|s| (me, s)),
        Err(e) => Err(e),
    };
    let (me, sessions) = match listed {
        Ok(found) => found,
        Err(AuthError::NotAuthenticated) => {
            return super::pages_second_factor::not_logged_in(svc, &token, "/account").await;
        }
        Err(e) => {
            let (status, message) = failure(e);
            let page = MessagePage {
                title: "Your account",
                notice: None,
                error: Some(message),
                link: "/account",
                link_text: "Try again",
            };
            return PageOr::Page(Page::render(status, &page));
        }
    };
    let sessions = super::wayfinding::session_cards(sessions, chrono::Utc::now());
    let csrf = csrf_token(jar, settings);
    let min_length = svc.policy().password_min_length;
    let passkeys = super::passkey_pages::section(svc, &me.user, &csrf).await;
    let tfa = super::pages_second_factor::TwoFactorView::load(svc, &me).await;
    let page = AccountPage {
        title: "Your account",
        notice,
        error,
        csrf,
        email: me.user.email,
        sessions,
        min_length,
        passkeys,
        tfa,
        password_error,
    };
    PageOr::Page(Page::render(status, &page))
}

#[rocket::get("/account?<done>")]
pub async fn account(svc: Svc<'_>, jar: &CookieJar<'_>, settings: &State<ApiSettings>, done: Option<&str>) -> PageOr {
    let notice = match done {
        Some("password") => Some("Your password is changed; your other sessions have ended."),
        Some("ended") => Some("The session has ended."),
        Some("others") => Some("Your other sessions have ended."),
        Some("passkey_added") => Some("Your passkey is added: you can log in with it."),
        Some("passkey_removed") => Some("The passkey is removed."),
        Some("totp-off") => Some("Two-factor authentication is off."),
        _ => None,
    };
    account_page(&svc, jar, settings, Status::Ok, notice, None, None).await
}

/// The session token of a logged-in form post whose CSRF token matches, or the page to answer.
pub(crate) fn session_post(jar: &CookieJar<'_>, settings: &ApiSettings, form: &Fields) -> Result<String, PageOr> {
    if !csrf_ok(jar, settings, form) {
        return Err(forbidden());
    }
    jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()).ok_or_else(|| PageOr::SeeOther("/login?next=/account".into()))
}

/// After a form on the account page: 303 to `done`, to log in when the session is gone, or the
/// account page again with the error and the API's status.
pub(crate) async fn after_account_action(
    svc: &AuthService,
    jar: &CookieJar<'_>,
    settings: &ApiSettings,
    result: Result<(), AuthError>,
    done: &str,
) -> PageOr {
    match result {
        Ok(()) => PageOr::SeeOther(done.into()),
        Err(AuthError::NotAuthenticated) => {
            let token = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
            super::pages_second_factor::not_logged_in(svc, &token, "/account").await
        }
        Err(e) => {
            let retry = retry_after_of(&e);
            let (status, message) = failure(e);
            match account_page(svc, jar, settings, status, None, Some(message), None).await {
                PageOr::Page(p) => PageOr::Page(p.with_retry_after(retry)),
                other => other,
            }
        }
    }
}

#[rocket::post("/account/password", data = "<form>")]
pub async fn change_password(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    let token = match session_post(jar, settings, &form) {
        Ok(t) => t,
        Err(page) => return page,
    };
    let (current, new) =
        (form.get("current_password").unwrap_or_default(), form.get("new_password").unwrap_or_default());
    let result = match svc.authenticate(&token).await {
        Ok(me) => svc.change_password(&svc.ctx, &me, current, new).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => PageOr::SeeOther("/account?done=password".into()),
        Err(AuthError::NotAuthenticated) => PageOr::SeeOther("/login?next=/account".into()),
        // Beside the password form, in words about the password typed there.
        Err(e) => {
            let wrong_current = matches!(e, AuthError::InvalidCredentials);
            let (status, message) = failure(e);
            let message = if wrong_current { super::wayfinding::WRONG_CURRENT_PASSWORD.to_owned() } else { message };
            account_page(&svc, jar, settings, status, None, None, Some(message)).await
        }
    }
}

#[rocket::post("/account/sessions/<id>/end", data = "<form>")]
pub async fn end_session(
    _site: NotCrossSite,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    id: &str,
    form: Fields,
) -> PageOr {
    let token = match session_post(jar, settings, &form) {
        Ok(t) => t,
        Err(page) => return page,
    };
    let result = match uuid::Uuid::parse_str(id) {
        Ok(id) => match svc.authenticate(&token).await {
            Ok(me) => svc.end_session(&svc.ctx, &me, id).await,
            Err(e) => Err(e),
        },
        Err(_) => Err(AuthError::SessionNotFound),
    };
    after_account_action(&svc, jar, settings, result, "/account?done=ended").await
}

#[rocket::post("/account/sessions/end-others", data = "<form>")]
pub async fn end_other_sessions(
    _site: NotCrossSite,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    let token = match session_post(jar, settings, &form) {
        Ok(t) => t,
        Err(page) => return page,
    };
    let result = match svc.authenticate(&token).await {
        Ok(me) => svc.end_other_sessions(&svc.ctx, &me).await.map(|_| ()),
        Err(e) => Err(e),
    };
    after_account_action(&svc, jar, settings, result, "/account?done=others").await
}

#[rocket::post("/logout", data = "<form>")]
pub async fn logout(
    _site: NotCrossSite,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    if !csrf_ok(jar, settings, &form) {
        return forbidden();
    }
    if let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned())
        && let Err(e) = svc.logout(&svc.ctx, &token).await
    {
        let (status, message) = failure(e);
        return account_page(&svc, jar, settings, status, None, Some(message), None).await;
    }
    jar.remove(removal_cookie(settings));
    PageOr::SeeOther("/login?logged_out=1".into())
}

#[rocket::get("/forgot?<sent>")]
pub fn forgot_form(
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    pages: &State<PageSettings>,
    sent: Option<&str>,
) -> Page {
    let notice = sent.map(|_| "If that address has an account, a reset link is on its way.");
    forgot_page(jar, settings, pages, Status::Ok, notice, None)
}

#[rocket::post("/forgot", data = "<form>")]
pub async fn forgot(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    pages: &State<PageSettings>,
    form: Fields,
) -> PageOr {
    if !csrf_ok(jar, settings, &form) {
        return forbidden();
    }
    if pages.reset_delivery != ResetDelivery::Email {
        // Pages never show reset tokens: in response mode the operator issues them.
        return PageOr::SeeOther("/forgot".into());
    }
    match svc.self_service_reset(&svc.ctx, form.get("email").unwrap_or_default()).await {
        Ok(ResetRequest::Emailed | ResetRequest::Token(_)) => PageOr::SeeOther("/forgot?sent=1".into()),
        Err(e) => {
            let retry = retry_after_of(&e);
            let (status, message) = failure(e);
            PageOr::Page(forgot_page(jar, settings, pages, status, None, Some(message)).with_retry_after(retry))
        }
    }
}

#[rocket::get("/reset?<token>")]
pub async fn reset_form(
    svc: &State<AuthService>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    pages: &State<PageSettings>,
    token: Option<&str>,
) -> Page {
    let token = token.filter(|t| t.len() <= 128).unwrap_or_default().to_owned();
    // A link's token is checked at once, before anyone types a new password.
    if !token.is_empty()
        && let Some(stale) = super::wayfinding::stale_reset_link(svc, &token).await
    {
        return stale;
    }
    reset_page(jar, settings, pages, Status::Ok, None, token)
}

#[rocket::post("/reset", data = "<form>")]
pub async fn reset(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    pages: &State<PageSettings>,
    form: Fields,
) -> PageOr {
    if !csrf_ok(jar, settings, &form) {
        return forbidden();
    }
    let token = form.get("reset_token").unwrap_or_default().to_owned();
    match svc.update_password(&svc.ctx, &token, form.get("new_password").unwrap_or_default(), None).await {
        Ok(_) => PageOr::SeeOther("/login?reset=1".into()),
        Err(e) => {
            let (status, message) = failure(e);
            PageOr::Page(reset_page(jar, settings, pages, status, Some(message), token))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_followed_only_on_this_site() {
        assert_eq!(safe_next(Some("/account")), "/account");
        assert_eq!(safe_next(Some("/account?tab=1")), "/account?tab=1");
        for evil in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "evil",
            "/a b",
            "/\tx",
            "",
        ] {
            assert_eq!(safe_next(Some(evil)), "/account", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/account");
    }
}
