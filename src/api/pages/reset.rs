//! Forgotten passwords (api.md §7, §8): the forgot page (by email only: pages never show reset
//! tokens) and the reset page, which checks a link's token as soon as it is opened.

use askama::Template;
use rocket::State;
use rocket::http::Status;
use serde::Deserialize;

use super::guards::{Browser, CsrfForm};
use super::render::{Page, PageOr, failure, message_page, retry_after_of};
use crate::api::error::ApiError;
use crate::api::protect::{ClientBudget, NotCrossSite, Svc};
use crate::config::ResetDelivery;
use crate::service::{AuthError, AuthService, ResetRequest};

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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ForgotForm {
    email: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetForm {
    reset_token: String,
    new_password: String,
}

fn forgot_page(browser: &Browser<'_>, status: Status, notice: Option<&str>, error: Option<String>) -> Page {
    let csrf = browser.csrf_token();
    let by_email = browser.pages.reset_delivery == ResetDelivery::Email;
    Page::render(status, &ForgotPage { title: "Forgot your password?", notice, error, csrf, by_email })
}

fn reset_page(browser: &Browser<'_>, status: Status, error: Option<String>, token: String) -> Page {
    let csrf = browser.csrf_token();
    let min_length = browser.pages.password_min_length;
    Page::render(status, &ResetPage { title: "Choose a new password", notice: None, error, csrf, token, min_length })
}

/// Where the reset page's token stands: `None` when it can be used, otherwise the page saying so.
async fn stale_reset_link(svc: &AuthService, token: &str) -> Option<Page> {
    match svc.check_reset_token(token).await {
        Ok(()) => None,
        Err(AuthError::InvalidResetToken) => Some(message_page(
            Status::BadRequest,
            "This reset link cannot be used",
            "This reset link is unknown, has expired or was already used. Ask for a new one.".into(),
            "/forgot",
            "Ask for a new reset link",
        )),
        Err(e) => {
            let api = ApiError::from(e);
            Some(message_page(api.status, "Choose a new password", api.message, "/forgot", "Back"))
        }
    }
}

#[rocket::get("/forgot?<sent>")]
pub fn forgot_form(browser: Browser<'_>, sent: Option<&str>) -> Page {
    let notice = sent.map(|_| "If that address has an account, a reset link is on its way.");
    forgot_page(&browser, Status::Ok, notice, None)
}

#[rocket::post("/forgot", data = "<form>")]
pub async fn forgot(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    browser: Browser<'_>,
    form: CsrfForm<ForgotForm>,
) -> PageOr {
    if browser.pages.reset_delivery != ResetDelivery::Email {
        // Pages never show reset tokens: in response mode the operator issues them.
        return PageOr::SeeOther("/forgot".into());
    }
    match svc.self_service_reset(&form.0.email).await {
        Ok(ResetRequest::Emailed | ResetRequest::Token(_)) => PageOr::SeeOther("/forgot?sent=1".into()),
        Err(e) => {
            let retry = retry_after_of(&e);
            let (status, message) = failure(e);
            forgot_page(&browser, status, None, Some(message)).with_retry_after(retry).into()
        }
    }
}

#[rocket::get("/reset?<token>")]
pub async fn reset_form(svc: &State<AuthService>, browser: Browser<'_>, token: Option<&str>) -> Page {
    let token = token.filter(|t| t.len() <= 128).unwrap_or_default().to_owned();
    // A link's token is checked at once, before anyone types a new password.
    if !token.is_empty()
        && let Some(stale) = stale_reset_link(svc, &token).await
    {
        return stale;
    }
    reset_page(&browser, Status::Ok, None, token)
}

#[rocket::post("/reset", data = "<form>")]
pub async fn reset(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    browser: Browser<'_>,
    form: CsrfForm<ResetForm>,
) -> PageOr {
    let ResetForm { reset_token, new_password } = form.0;
    match svc.update_password(&reset_token, &new_password, None).await {
        Ok(_) => PageOr::SeeOther("/login?reset=1".into()),
        Err(e) => {
            let (status, message) = failure(e);
            reset_page(&browser, status, Some(message), reset_token).into()
        }
    }
}
