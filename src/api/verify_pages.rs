//! The confirmation pages (api.md §13): `/verify?token=T` shows a button and only its POST
//! confirms (a mail scanner that follows the link confirms nothing); `/verify` without a token
//! says what happens next; a resend form, also shown by the login page when the answer was
//! `email_not_confirmed`. Same conventions as `pages.rs`: CSRF on every form, 303 after a POST.

use askama::Template;
use rocket::State;
use rocket::http::{CookieJar, Status};

use super::ApiSettings;
use super::body::Fields;
use super::pages::{Page, PageOr, csrf_ok, csrf_token, failure, forbidden};
use super::protect::{NotCrossSite, Svc};
use crate::service::verification::RESEND_MESSAGE;

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

const NEXT_STEP: &str = "We have sent a link to the address you gave. Open it and press the button on the page \
                         to confirm your address; then you can log in. The link works once.";

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| format!("{}{}.", f.to_uppercase(), c.as_str())).unwrap_or_default()
}

#[rocket::get("/verify?<token>&<sent>")]
pub fn verify_form(
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    token: Option<String>,
    sent: Option<&str>,
) -> Page {
    let csrf = csrf_token(jar, settings);
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

#[rocket::post("/verify", data = "<form>")]
pub async fn verify(
    _site: NotCrossSite,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    if !csrf_ok(jar, settings, &form) {
        return forbidden();
    }
    match svc.verify_email(&svc.ctx, form.get("token").unwrap_or_default()).await {
        Ok(_) => PageOr::SeeOther("/login?registered=1".into()),
        Err(e) => {
            let (status, message) = failure(e);
            let page = VerifyPage {
                title: "Confirm your email address",
                notice: None,
                error: Some(message),
                csrf: csrf_token(jar, settings),
                token: None,
                next_step: "This link cannot be used any more. Ask for a new one below.",
                resend: true,
                email: String::new(),
            };
            PageOr::Page(Page::render(status, &page))
        }
    }
}

#[rocket::post("/verify/resend", data = "<form>")]
pub async fn resend(
    _site: NotCrossSite,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    if !csrf_ok(jar, settings, &form) {
        return forbidden();
    }
    let email = form.get("email").unwrap_or_default().to_owned();
    match svc.resend_verification(&email).await {
        Ok(()) => PageOr::SeeOther("/verify?sent=1".into()),
        Err(e) => {
            let (status, message) = failure(e);
            PageOr::Page(resend_page(jar, settings, status, message, email))
        }
    }
}

fn resend_page(jar: &CookieJar<'_>, settings: &ApiSettings, status: Status, error: String, email: String) -> Page {
    let page = VerifyPage {
        title: "Confirm your email address",
        notice: None,
        error: Some(error),
        csrf: csrf_token(jar, settings),
        token: None,
        next_step: "Your address is not confirmed yet: open the link we sent you, or ask for a new one.",
        resend: true,
        email,
    };
    Page::render(status, &page)
}

/// The login page's answer to a correct password for an unconfirmed address: 403, as the API,
/// with a resend form for that address.
pub(super) fn not_confirmed(jar: &CookieJar<'_>, settings: &ApiSettings, message: String, email: String) -> PageOr {
    PageOr::Page(resend_page(jar, settings, Status::Forbidden, message, email))
}
