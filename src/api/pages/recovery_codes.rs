//! Recovery codes on the pages (api.md §10): shown once after they are made (with a .txt
//! download), and made anew from the account page.
//!
//! Recovery codes exist in clear only in the answer that made them. To show them after the
//! post/redirect/get and offer them as a download, they ride in a short-lived HttpOnly cookie
//! encrypted with the server key and bound to the session that made them: no other session (nor a
//! copy of the cookie after that session ends) opens it, and nothing about them is stored.

use askama::Template;
use base64::Engine as _;
use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder};
use rocket::{Request, Response};

use super::guards::{AccountForm, Browser, CsrfForm, NoFields, PageUser};
use super::render::{Page, PageOr};
use super::second_factor::PasswordForm;
use crate::api::guard::SessionCookie;
use crate::api::protect::{ClientBudget, NotCrossSite, Svc};
use crate::service::AuthService;
use crate::service::domain::presented_token_digest;

const CODES_COOKIE: &str = "recovery_codes";
const CODES_PATH: &str = "/account";
const CODES_PURPOSE: &str = "recovery-codes-display";
/// How long the codes stay on offer after they were made.
const CODES_TTL_SECS: i64 = 600;

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct CodesPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    codes: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CodesCarried {
    session: String,
    until: i64,
    codes: Vec<String>,
}

/// Puts the new codes on offer for `me`'s session and sends the browser to see them.
pub(super) fn carry_codes(
    svc: &AuthService,
    browser: &Browser<'_>,
    me: &PageUser,
    codes: Vec<zeroize::Zeroizing<String>>,
) -> PageOr {
    let codes = codes.iter().map(|c| c.as_str().to_owned()).collect();
    if let Some(session) = presented_token_digest(me.token()) {
        let until = chrono::Utc::now().timestamp() + CODES_TTL_SECS;
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(&CodesCarried { session, until, codes }).unwrap_or_default());
        match svc.key().encrypt(CODES_PURPOSE, &plain) {
            Ok(sealed) => {
                let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed);
                browser.set(CODES_COOKIE, value, CODES_PATH, rocket::time::Duration::seconds(CODES_TTL_SECS));
            }
            Err(e) => tracing::error!(error = %e, "could not seal the recovery codes for display"),
        }
    }
    PageOr::SeeOther("/account/recovery-codes".into())
}

/// The codes carried for this session, if they are still on offer.
fn carried_codes(svc: &AuthService, browser: &Browser<'_>, me: &PageUser) -> Option<Vec<String>> {
    let session = presented_token_digest(me.token())?;
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(browser.get(CODES_COOKIE)?).ok()?;
    let plain = svc.key().decrypt(CODES_PURPOSE, &sealed).ok()?;
    let carried: CodesCarried = serde_json::from_slice(&plain).ok()?;
    (carried.session == session && chrono::Utc::now().timestamp() < carried.until).then_some(carried.codes)
}

#[rocket::post("/account/recovery-codes", data = "<post>")]
pub async fn regenerate(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    browser: Browser<'_>,
    post: AccountForm<PasswordForm>,
) -> PageOr {
    let AccountForm { me, form } = post;
    let result = svc.regenerate_recovery_codes(me.token(), &form.current_password).await;
    super::second_factor::after_factor_change(&svc, &me, &browser, result, |codes| {
        carry_codes(&svc, &browser, &me, codes)
    })
    .await
}

/// The codes belong to a full session (`PageUser`); anything else sees nothing.
#[rocket::get("/account/recovery-codes")]
pub fn codes_page(svc: Svc, me: PageUser, browser: Browser<'_>) -> PageOr {
    match carried_codes(&svc, &browser, &me) {
        Some(codes) => {
            let csrf = browser.csrf_token();
            let page = CodesPage { title: "Your recovery codes", notice: None, error: None, csrf, codes };
            Page::render(Status::Ok, &page).into()
        }
        None => PageOr::SeeOther("/account".into()),
    }
}

/// The codes as a text file: `Content-Disposition: attachment`.
pub struct CodesFile(String);

impl<'r> Responder<'r, 'static> for CodesFile {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
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
pub fn codes_download(svc: Svc, me: PageUser, browser: Browser<'_>) -> Result<CodesFile, PageOr> {
    let codes = carried_codes(&svc, &browser, &me).ok_or_else(|| PageOr::SeeOther("/account".into()))?;
    let mut text = String::from("userauth recovery codes: each one works once.\r\n\r\n");
    for c in codes {
        text.push_str(&c);
        text.push_str("\r\n");
    }
    Ok(CodesFile(text))
}

/// "I have saved them": the codes are no longer on offer.
#[rocket::post("/account/recovery-codes/done", data = "<_form>")]
pub fn codes_done(
    _site: NotCrossSite,
    browser: Browser<'_>,
    session: Option<SessionCookie>,
    _form: CsrfForm<NoFields>,
) -> PageOr {
    if session.is_none() {
        return PageOr::SeeOther("/login?next=/account".into());
    }
    browser.remove(CODES_COOKIE, CODES_PATH);
    PageOr::SeeOther("/account".into())
}
