//! The pages of api.md §10: the account page's "Two-factor authentication" section, TOTP setup
//! (QR code as inline SVG, the key grouped for reading, a confirm form, disabling) and
//! `/login/second-factor`. Recovery codes are in `recovery_codes.rs`.

use askama::Template;
use rocket::http::Status;
use serde::Deserialize;

use super::account::account_error;
use super::guards::{AccountForm, Browser, CsrfForm, PageUser, session_lost};
use super::recovery_codes::carry_codes;
use super::render::{Page, PageOr, failure};
use crate::api::guard::SessionCookie;
use crate::api::protect::{ClientBudget, NotCrossSite, Svc};
use crate::service::second_factor::{RECOVERY_CODES_LOW, SecondFactorProof};
use crate::service::{AuthError, AuthService};

/// The account page's section.
pub struct TwoFactorView {
    pub totp: bool,
    pub pending: bool,
    pub recovery_left: u64,
    pub recovery_low: bool,
}

impl TwoFactorView {
    pub async fn load(svc: &AuthService, token: &str) -> Self {
        match svc.my_factors(token).await {
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

/// The forms that change factors: the current password.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    pub(super) current_password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CodeForm {
    code: String,
}

/// The second step of a login: a code from the app, or a recovery code.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SecondStepForm {
    next: Option<String>,
    code: Option<String>,
    recovery_code: Option<String>,
}

/// The key in groups of four, as people copy it.
fn grouped(secret: &str) -> String {
    secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

/// After a factor form: `done` on success, the right page otherwise.
pub(super) async fn after_factor_change<T>(
    svc: &AuthService,
    me: &PageUser,
    browser: &Browser<'_>,
    result: Result<T, AuthError>,
    done: impl FnOnce(T) -> PageOr,
) -> PageOr {
    match result {
        Ok(value) => done(value),
        Err(AuthError::NotAuthenticated) => session_lost(svc, me.token()).await,
        Err(e) => account_error(svc, me, browser, e).await,
    }
}

async fn render_setup(
    svc: &AuthService,
    me: &PageUser,
    browser: &Browser<'_>,
    status: Status,
    error: Option<String>,
) -> PageOr {
    let pending = svc.pending_enrolment(me.token()).await;
    after_factor_change(svc, me, browser, pending, |enrolment| match enrolment {
        Some(e) => {
            let page = SetupPage {
                title: "Set up your authenticator app",
                notice: None,
                error,
                csrf: browser.csrf_token(),
                qr_svg: e.qr_svg.clone(),
                secret_grouped: grouped(&e.secret),
            };
            Page::render(status, &page).into()
        }
        None => PageOr::SeeOther("/account".into()),
    })
    .await
}

#[rocket::get("/account/two-factor")]
pub async fn setup_page(svc: Svc, me: PageUser, browser: Browser<'_>) -> PageOr {
    render_setup(&svc, &me, &browser, Status::Ok, None).await
}

#[rocket::post("/account/totp", data = "<post>")]
pub async fn enrol(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    browser: Browser<'_>,
    post: AccountForm<PasswordForm>,
) -> PageOr {
    let result = svc.totp_enrol(post.me.token(), &post.form.current_password).await;
    after_factor_change(&svc, &post.me, &browser, result, |_| PageOr::SeeOther("/account/two-factor".into())).await
}

#[rocket::post("/account/totp/confirm", data = "<post>")]
pub async fn confirm(_site: NotCrossSite, svc: Svc, browser: Browser<'_>, post: AccountForm<CodeForm>) -> PageOr {
    let AccountForm { me, form } = post;
    match svc.totp_confirm(me.token(), &form.code).await {
        Err(AuthError::InvalidCode) => {
            let message = "The code does not match. Enter the code your app shows now.".to_owned();
            render_setup(&svc, &me, &browser, Status::BadRequest, Some(message)).await
        }
        result => {
            after_factor_change(&svc, &me, &browser, result, |codes| carry_codes(&svc, &browser, &me, codes)).await
        }
    }
}

#[rocket::post("/account/totp/disable", data = "<post>")]
pub async fn disable(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    browser: Browser<'_>,
    post: AccountForm<PasswordForm>,
) -> PageOr {
    let result = svc.totp_disable(post.me.token(), &post.form.current_password).await;
    after_factor_change(&svc, &post.me, &browser, result, |()| PageOr::SeeOther("/account?done=totp-off".into())).await
}

// ---------------------------------------------------------------- the second step of a login

/// Whether the pending login `token` belongs to a user with a passkey. A failure to tell only
/// hides the passkey button: the code forms still work.
async fn offers_passkey(svc: &AuthService, token: &str) -> bool {
    match svc.pending_login_user(token).await {
        Ok(Some(user)) => svc.has_passkeys(user).await.unwrap_or(false),
        _ => false,
    }
}

async fn second_factor_page(
    svc: &AuthService,
    browser: &Browser<'_>,
    token: &str,
    status: Status,
    error: Option<String>,
    next: String,
) -> PageOr {
    let passkey = offers_passkey(svc, token).await;
    let csrf = browser.csrf_token();
    let page = SecondFactorPage { title: "Two-factor authentication", notice: None, error, csrf, next, passkey };
    Page::render(status, &page).into()
}

#[rocket::get("/login/second-factor?<next>")]
pub async fn second_factor_form(
    svc: Svc,
    browser: Browser<'_>,
    session: Option<SessionCookie>,
    next: Option<&str>,
) -> PageOr {
    let next = browser.next(next);
    match session {
        Some(SessionCookie(token)) if svc.is_pending_login(&token).await.unwrap_or(false) => {
            second_factor_page(&svc, &browser, &token, Status::Ok, None, next).await
        }
        _ => PageOr::SeeOther("/login".into()),
    }
}

#[rocket::post("/login/second-factor", data = "<form>")]
pub async fn second_factor(
    _site: NotCrossSite,
    svc: Svc,
    browser: Browser<'_>,
    session: Option<SessionCookie>,
    form: CsrfForm<SecondStepForm>,
) -> PageOr {
    let Some(SessionCookie(token)) = session else {
        return PageOr::SeeOther("/login?next=/account".into());
    };
    let SecondStepForm { next, code, recovery_code } = form.0;
    let next = browser.next(next.as_deref());
    let proof = match (code.as_deref(), recovery_code.as_deref()) {
        (Some(code), _) => SecondFactorProof::Totp(code),
        (None, Some(code)) => SecondFactorProof::RecoveryCode(code),
        (None, None) => {
            let message = "Enter the code from your app, or a recovery code.".to_owned();
            return second_factor_page(&svc, &browser, &token, Status::BadRequest, Some(message), next).await;
        }
    };
    match svc.complete_second_factor(&token, proof).await {
        Ok(session) => {
            browser.session().start(&session);
            PageOr::SeeOther(next)
        }
        Err(AuthError::NotAuthenticated) => PageOr::SeeOther("/login".into()),
        Err(e) => {
            let (status, message) = failure(e);
            second_factor_page(&svc, &browser, &token, status, Some(message), next).await
        }
    }
}
