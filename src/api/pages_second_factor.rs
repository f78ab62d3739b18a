//! The pages of api.md §10: the account page's "Two-factor authentication" section, TOTP setup
//! (QR code as inline SVG, the key grouped for reading, a confirm form), recovery codes shown
//! once (with a .txt download), and `/login/second-factor`.
//!
//! Recovery codes exist in clear only in the answer that made them. To show them after the
//! post/redirect/get and offer them as a download, they ride in a short-lived HttpOnly cookie
//! encrypted with the server key and bound to the session that made them: no other session (nor a
//! copy of the cookie after that session ends) opens it, and nothing about them is stored.

use askama::Template;
use base64::Engine as _;
use rocket::http::{ContentType, Cookie, CookieJar, Header, SameSite, Status};
use rocket::response::Responder;
use rocket::{Request, Response, Route, State};

use super::ApiSettings;
use super::body::Fields;
use super::guard::{SESSION_COOKIE, session_cookie};
use super::pages::{Page, PageOr, account_page, csrf_ok, csrf_token, failure, forbidden};
use super::protect::{ClientBudget, NotCrossSite, Svc};
use crate::service::domain::presented_token_digest;
use crate::service::second_factor::{RECOVERY_CODES_LOW, SecondFactorProof};
use crate::service::{AuthError, AuthService, Authenticated};

const CODES_COOKIE: &str = "recovery_codes";
const CODES_PURPOSE: &str = "recovery-codes-display";
/// How long the codes stay on offer after they were made.
const CODES_TTL_SECS: i64 = 600;

pub fn routes() -> Vec<Route> {
    rocket::routes![
        setup_page,
        enrol,
        confirm,
        disable,
        regenerate,
        codes_page,
        codes_download,
        codes_done,
        second_factor_form,
        second_factor
    ]
}

/// The account page's section.
pub struct TwoFactorView {
    pub totp: bool,
    pub pending: bool,
    pub recovery_left: u64,
    pub recovery_low: bool,
}

impl TwoFactorView {
    pub async fn load(svc: &AuthService, me: &Authenticated) -> Self {
        match svc.my_factors(me).await {
            Ok(s) => {
                let totp = s.factors.contains(&"totp");
                Self {
                    totp,
                    pending: s.totp_pending,
                    recovery_left: s.recovery_codes_left,
                    recovery_low: totp && s.recovery_codes_left < RECOVERY_CODES_LOW,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the account's factors failed");
                Self { totp: false, pending: false, recovery_left: 0, recovery_low: false }
            }
        }
    }
}

/// Where a page that needs a full session sends a browser without one: a pending login goes on
/// to its second step, anything else to log in.
pub async fn not_logged_in(svc: &AuthService, token: &str, next: &str) -> PageOr {
    if svc.is_pending_login(token).await.unwrap_or(false) {
        return continue_login(next);
    }
    PageOr::SeeOther(format!("/login?next={next}"))
}

/// After a right password for an account with a second factor.
pub fn continue_login(next: &str) -> PageOr {
    let next: String = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC).collect();
    PageOr::SeeOther(format!("/login/second-factor?next={next}"))
}

#[derive(Template)]
#[template(path = "totp_setup.html")]
struct SetupPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    qr_svg: String,
    secret_grouped: String,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct CodesPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    codes: Vec<String>,
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    next: String,
    /// The pending login's user has a passkey: offer "Log in with a passkey" (api.md §11).
    passkey: bool,
}

fn session_token(jar: &CookieJar<'_>) -> Option<String> {
    jar.get(SESSION_COOKIE).map(|c| c.value().to_owned())
}

/// The key in groups of four, as people copy it.
fn grouped(secret: &str) -> String {
    secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

async fn render_setup(
    svc: &AuthService,
    jar: &CookieJar<'_>,
    settings: &ApiSettings,
    token: &str,
    status: Status,
    error: Option<String>,
) -> PageOr {
    let enrolment = match svc.authenticate(token).await {
        Ok(me) => svc.pending_enrolment(&me).await,
        Err(e) => Err(e),
    };
    match enrolment {
        Ok(Some(e)) => {
            let page = SetupPage {
                title: "Set up your authenticator app",
                notice: None,
                error,
                csrf: csrf_token(jar, settings),
                qr_svg: e.qr_svg.clone(),
                secret_grouped: grouped(&e.secret),
            };
            PageOr::Page(Page::render(status, &page))
        }
        Ok(None) => PageOr::SeeOther("/account".into()),
        Err(AuthError::NotAuthenticated) => not_logged_in(svc, token, "/account").await,
        Err(e) => account_error(svc, jar, settings, e).await,
    }
}

async fn account_error(svc: &AuthService, jar: &CookieJar<'_>, settings: &ApiSettings, e: AuthError) -> PageOr {
    let (status, message) = failure(e);
    account_page(svc, jar, settings, status, None, Some(message), None).await
}

/// The session token of a form post whose CSRF token matches.
fn form_session(jar: &CookieJar<'_>, settings: &ApiSettings, form: &Fields) -> Result<String, PageOr> {
    if !csrf_ok(jar, settings, form) {
        return Err(forbidden());
    }
    session_token(jar).ok_or_else(|| PageOr::SeeOther("/login?next=/account".into()))
}

// ---------------------------------------------------------------- the codes cookie

#[derive(serde::Serialize, serde::Deserialize)]
struct CodesCarried {
    session: String,
    until: i64,
    codes: Vec<String>,
}

fn carry_codes(svc: &AuthService, jar: &CookieJar<'_>, settings: &ApiSettings, token: &str, codes: Vec<String>) {
    let Some(session) = presented_token_digest(token) else { return };
    let until = chrono::Utc::now().timestamp() + CODES_TTL_SECS;
    let plain =
        zeroize::Zeroizing::new(serde_json::to_vec(&CodesCarried { session, until, codes }).unwrap_or_default());
    match svc.key().encrypt(CODES_PURPOSE, &plain) {
        Ok(sealed) => jar.add(
            Cookie::build((CODES_COOKIE, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)))
                .http_only(true)
                .same_site(SameSite::Strict)
                .path("/account")
                .secure(settings.cookie_secure)
                .max_age(rocket::time::Duration::seconds(CODES_TTL_SECS))
                .build(),
        ),
        Err(e) => tracing::error!(error = %e, "could not seal the recovery codes for display"),
    }
}

/// The codes carried for this session, if they are still on offer.
fn carried_codes(svc: &AuthService, jar: &CookieJar<'_>) -> Option<Vec<String>> {
    let token = session_token(jar)?;
    let session = presented_token_digest(&token)?;
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jar.get(CODES_COOKIE)?.value()).ok()?;
    let plain = svc.key().decrypt(CODES_PURPOSE, &sealed).ok()?;
    let carried: CodesCarried = serde_json::from_slice(&plain).ok()?;
    (carried.session == session && chrono::Utc::now().timestamp() < carried.until).then_some(carried.codes)
}

fn drop_codes(jar: &CookieJar<'_>) {
    jar.remove(Cookie::build(CODES_COOKIE).path("/account").build());
}

// ---------------------------------------------------------------- routes

#[rocket::get("/account/two-factor")]
pub async fn setup_page(svc: Svc<'_>, jar: &CookieJar<'_>, settings: &State<ApiSettings>) -> PageOr {
    let Some(token) = session_token(jar) else { return PageOr::SeeOther("/login?next=/account".into()) };
    render_setup(&svc, jar, settings, &token, Status::Ok, None).await
}

#[rocket::post("/account/totp", data = "<form>")]
pub async fn enrol(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    let token = match form_session(jar, settings, &form) {
        Ok(t) => t,
        Err(p) => return p,
    };
    let result = match svc.authenticate(&token).await {
        Ok(me) => svc.totp_enrol(&svc.ctx, &me, form.get("current_password").unwrap_or_default()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => PageOr::SeeOther("/account/two-factor".into()),
        Err(AuthError::NotAuthenticated) => not_logged_in(&svc, &token, "/account").await,
        Err(e) => account_error(&svc, jar, settings, e).await,
    }
}

#[rocket::post("/account/totp/confirm", data = "<form>")]
pub async fn confirm(
    _site: NotCrossSite,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    let token = match form_session(jar, settings, &form) {
        Ok(t) => t,
        Err(p) => return p,
    };
    let result = match svc.authenticate(&token).await {
        Ok(me) => svc.totp_confirm(&svc.ctx, &me, form.get("code").unwrap_or_default()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(codes) => {
            carry_codes(&svc, jar, settings, &token, codes.iter().map(|c| c.as_str().to_owned()).collect());
            PageOr::SeeOther("/account/recovery-codes".into())
        }
        Err(AuthError::InvalidCode) => {
            let message = "The code does not match. Enter the code your app shows now.".to_owned();
            render_setup(&svc, jar, settings, &token, Status::BadRequest, Some(message)).await
        }
        Err(AuthError::NotAuthenticated) => not_logged_in(&svc, &token, "/account").await,
        Err(e) => account_error(&svc, jar, settings, e).await,
    }
}

#[rocket::post("/account/totp/disable", data = "<form>")]
pub async fn disable(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    let token = match form_session(jar, settings, &form) {
        Ok(t) => t,
        Err(p) => return p,
    };
    let result = match svc.authenticate(&token).await {
        Ok(me) => svc.totp_disable(&svc.ctx, &me, form.get("current_password").unwrap_or_default()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => PageOr::SeeOther("/account?done=totp-off".into()),
        Err(AuthError::NotAuthenticated) => not_logged_in(&svc, &token, "/account").await,
        Err(e) => account_error(&svc, jar, settings, e).await,
    }
}

#[rocket::post("/account/recovery-codes", data = "<form>")]
pub async fn regenerate(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    let token = match form_session(jar, settings, &form) {
        Ok(t) => t,
        Err(p) => return p,
    };
    let result = match svc.authenticate(&token).await {
        Ok(me) => svc.regenerate_recovery_codes(&svc.ctx, &me, form.get("current_password").unwrap_or_default()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(codes) => {
            carry_codes(&svc, jar, settings, &token, codes.iter().map(|c| c.as_str().to_owned()).collect());
            PageOr::SeeOther("/account/recovery-codes".into())
        }
        Err(AuthError::NotAuthenticated) => not_logged_in(&svc, &token, "/account").await,
        Err(e) => account_error(&svc, jar, settings, e).await,
    }
}

#[rocket::get("/account/recovery-codes")]
pub async fn codes_page(svc: Svc<'_>, jar: &CookieJar<'_>, settings: &State<ApiSettings>) -> PageOr {
    let Some(token) = session_token(jar) else { return PageOr::SeeOther("/login?next=/account".into()) };
    // The codes belong to a full session; anything else sees nothing.
    if svc.authenticate(&token).await.is_err() {
        return not_logged_in(&svc, &token, "/account").await;
    }
    match carried_codes(&svc, jar) {
        Some(codes) => PageOr::Page(Page::render(
            Status::Ok,
            &CodesPage {
                title: "Your recovery codes",
                notice: None,
                error: None,
                csrf: csrf_token(jar, settings),
                codes,
            },
        )),
        None => PageOr::SeeOther("/account".into()),
    }
}

/// The codes as a text file: `Content-Disposition: attachment`.
pub struct CodesFile(String);

impl<'r> Responder<'r, 'static> for CodesFile {
    fn respond_to(self, _: &'r Request<'_>) -> rocket::response::Result<'static> {
        Response::build()
            .status(Status::Ok)
            .header(ContentType::Plain)
            .header(Header::new("Content-Disposition", "attachment; filename=\"userauth-recovery-codes.txt\""))
            .header(Header::new("Cache-Control", "no-store"))
            .sized_body(self.0.len(), std::io::Cursor::new(self.0))
            .ok()
    }
}

#[rocket::get("/account/recovery-codes.txt")]
pub async fn codes_download(svc: Svc<'_>, jar: &CookieJar<'_>) -> Result<CodesFile, PageOr> {
    let Some(token) = session_token(jar) else { return Err(PageOr::SeeOther("/login?next=/account".into())) };
    if svc.authenticate(&token).await.is_err() {
        return Err(not_logged_in(&svc, &token, "/account").await);
    }
    let codes = carried_codes(&svc, jar).ok_or_else(|| PageOr::SeeOther("/account".into()))?;
    let mut text = String::from("userauth recovery codes: each one works once.\r\n\r\n");
    for c in codes {
        text.push_str(&c);
        text.push_str("\r\n");
    }
    Ok(CodesFile(text))
}

#[rocket::post("/account/recovery-codes/done", data = "<form>")]
pub async fn codes_done(
    _site: NotCrossSite,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    if let Err(p) = form_session(jar, settings, &form) {
        return p;
    }
    drop_codes(jar);
    PageOr::SeeOther("/account".into())
}

/// Whether the pending login `token` belongs to a user with a passkey. A failure to tell only
/// hides the passkey button: the code forms still work.
async fn offers_passkey(svc: &AuthService, token: &str) -> bool {
    match svc.pending_login_user(token).await {
        Ok(Some(user)) => svc.has_passkeys(user).await.unwrap_or(false),
        _ => false,
    }
}

fn second_factor_page(
    jar: &CookieJar<'_>,
    settings: &ApiSettings,
    status: Status,
    error: Option<String>,
    next: String,
    passkey: bool,
) -> PageOr {
    let csrf = csrf_token(jar, settings);
    PageOr::Page(Page::render(
        status,
        &SecondFactorPage { title: "Two-factor authentication", notice: None, error, csrf, next, passkey },
    ))
}

#[rocket::get("/login/second-factor?<next>")]
pub async fn second_factor_form(
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    next: Option<&str>,
) -> PageOr {
    let next = super::forward::login_next(next, settings);
    match session_token(jar) {
        Some(token) if svc.is_pending_login(&token).await.unwrap_or(false) => {
            let passkey = offers_passkey(&svc, &token).await;
            second_factor_page(jar, settings, Status::Ok, None, next, passkey)
        }
        _ => PageOr::SeeOther("/login".into()),
    }
}

#[rocket::post("/login/second-factor", data = "<form>")]
pub async fn second_factor(
    _site: NotCrossSite,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    let token = match form_session(jar, settings, &form) {
        Ok(t) => t,
        Err(p) => return p,
    };
    let next = super::forward::login_next(form.get("next"), settings);
    let proof = match (form.get("code"), form.get("recovery_code")) {
        (Some(code), _) => SecondFactorProof::Totp(code),
        (None, Some(code)) => SecondFactorProof::RecoveryCode(code),
        (None, None) => {
            let message = "Enter the code from your app, or a recovery code.".to_owned();
            let passkey = offers_passkey(&svc, &token).await;
            return second_factor_page(jar, settings, Status::BadRequest, Some(message), next, passkey);
        }
    };
    match svc.complete_second_factor(&svc.ctx, &token, proof).await {
        Ok(session) => {
            jar.add(session_cookie(&session, settings));
            PageOr::SeeOther(next)
        }
        Err(AuthError::NotAuthenticated) => PageOr::SeeOther("/login".into()),
        Err(e) => {
            let (status, message) = failure(e);
            let passkey = offers_passkey(&svc, &token).await;
            second_factor_page(jar, settings, status, Some(message), next, passkey)
        }
    }
}
