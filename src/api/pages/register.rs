//! Creating an account (api.md §8, §13): the register page, the login form remembering the email
//! just registered, and the confirmation pages: `/verify?token=T` shows a button and only its POST
//! confirms (a mail scanner that follows the link confirms nothing); `/verify` without a token
//! says what happens next; a resend form, also shown by the login page when the answer was
//! `email_not_confirmed`.

use askama::Template;
use rocket::http::Status;
use serde::Deserialize;

use super::guards::{Browser, CsrfForm};
use super::render::{Page, PageOr, failure};
use crate::api::protect::{ClientBudget, NotCrossSite, Svc};
use crate::service::verification::{RESEND_MESSAGE, SignUp};

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
#[template(path = "verify.html")]
struct VerifyPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    token: Option<String>,
    next_step: &'a str,
    resend: bool,
    email: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterForm {
    email: String,
    password: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EmailForm {
    email: String,
}

const NEXT_STEP: &str = "We have sent a link to the address you gave. Open it and press the button on the page \
                         to confirm your address; then you can log in. The link works once.";

const REGISTERED_EMAIL_COOKIE: &str = "registered_email";

/// After registering, the login form has the email filled in: carried in a short-lived cookie
/// (not the URL, which logs and histories keep).
fn remember_registered_email(browser: &Browser<'_>, email: &str) {
    let email = crate::service::domain::Email::parse(email).map(|e| e.as_str().to_owned()).unwrap_or_default();
    browser.set(REGISTERED_EMAIL_COOKIE, email, "/login", rocket::time::Duration::minutes(10));
}

/// The email just registered, once.
pub(super) fn take_registered_email(browser: &Browser<'_>) -> Option<String> {
    let email = browser.get(REGISTERED_EMAIL_COOKIE)?;
    browser.remove(REGISTERED_EMAIL_COOKIE, "/login");
    Some(email)
}

fn register_page(browser: &Browser<'_>, status: Status, error: Option<String>, email: String) -> Page {
    let csrf = browser.csrf_token();
    let min_length = browser.pages.password_min_length;
    let notice = browser.pages.email_verification.then_some(
        "After you create the account we email you a link to confirm your address; you can log in once it is confirmed.",
    );
    Page::render(status, &RegisterPage { title: "Create an account", notice, error, csrf, email, min_length })
}

#[rocket::get("/register")]
pub fn register_form(browser: Browser<'_>) -> Page {
    register_page(&browser, Status::Ok, None, String::new())
}

#[rocket::post("/register", data = "<form>")]
pub async fn register(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    browser: Browser<'_>,
    form: CsrfForm<RegisterForm>,
) -> PageOr {
    let RegisterForm { email, password } = form.0;
    match svc.sign_up(&email, &password).await {
        Ok(SignUp::Created(_)) => {
            remember_registered_email(&browser, &email);
            PageOr::SeeOther("/login?registered=1".into())
        }
        // The same answer whether the address was new or already had an account (api.md §13).
        Ok(SignUp::Pending { .. }) => PageOr::SeeOther("/verify".into()),
        Err(e) => {
            let (status, message) = failure(e);
            register_page(&browser, status, Some(message), email).into()
        }
    }
}

// ---------------------------------------------------------------- confirming the address

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| format!("{}{}.", f.to_uppercase(), c.as_str())).unwrap_or_default()
}

#[rocket::get("/verify?<token>&<sent>")]
pub fn verify_form(browser: Browser<'_>, token: Option<String>, sent: Option<&str>) -> Page {
    let csrf = browser.csrf_token();
    let notice = sent.map(|_| RESEND_MESSAGE).map(capitalised);
    let token = token.filter(|t| !t.is_empty());
    let title = if token.is_some() { "Confirm your email address" } else { "Check your email" };
    let resend = token.is_none();
    let page = VerifyPage {
        title,
        notice: notice.as_deref(),
        error: None,
        csrf,
        token,
        next_step: NEXT_STEP,
        resend,
        email: String::new(),
    };
    Page::render(Status::Ok, &page)
}

/// The confirmation page again, failed, with the resend form.
fn resend_page(browser: &Browser<'_>, status: Status, error: String, next_step: &str, email: String) -> Page {
    let page = VerifyPage {
        title: "Confirm your email address",
        notice: None,
        error: Some(error),
        csrf: browser.csrf_token(),
        token: None,
        next_step,
        resend: true,
        email,
    };
    Page::render(status, &page)
}

#[rocket::post("/verify", data = "<form>")]
pub async fn verify(_site: NotCrossSite, svc: Svc, browser: Browser<'_>, form: CsrfForm<TokenForm>) -> PageOr {
    match svc.verify_email(&form.0.token).await {
        Ok(_) => PageOr::SeeOther("/login?registered=1".into()),
        Err(e) => {
            let (status, message) = failure(e);
            let next_step = "This link cannot be used any more. Ask for a new one below.";
            resend_page(&browser, status, message, next_step, String::new()).into()
        }
    }
}

const NOT_CONFIRMED_YET: &str = "Your address is not confirmed yet: open the link we sent you, or ask for a new one.";

#[rocket::post("/verify/resend", data = "<form>")]
pub async fn resend(_site: NotCrossSite, svc: Svc, browser: Browser<'_>, form: CsrfForm<EmailForm>) -> PageOr {
    let email = form.0.email;
    match svc.resend_verification(&email).await {
        Ok(()) => PageOr::SeeOther("/verify?sent=1".into()),
        Err(e) => {
            let (status, message) = failure(e);
            resend_page(&browser, status, message, NOT_CONFIRMED_YET, email).into()
        }
    }
}

/// The login page's answer to a correct password for an unconfirmed address: 403, as the API,
/// with a resend form for that address.
pub(super) fn not_confirmed(browser: &Browser<'_>, message: String, email: String) -> PageOr {
    resend_page(browser, Status::Forbidden, message, NOT_CONFIRMED_YET, email).into()
}
