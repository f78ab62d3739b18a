//! Logging in and out (api.md §8): the login page (and where it leads: `next`, the second step of
//! a login with a second factor), the logout button's page and the logout itself.

use askama::Template;
use rocket::http::Status;
use serde::Deserialize;

use super::guards::{Browser, CsrfForm, NoFields, PageUser};
use super::register::{not_confirmed, take_registered_email};
use super::render::{Page, PageOr, failure, message_page, retry_after_of};
use crate::api::guard::SessionCookie;
use crate::api::protect::{ClientBudget, NotCrossSite, Svc};
use crate::service::AuthError;

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
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    email: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
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

/// After a right password for an account with a second factor.
pub(super) fn continue_login(next: &str) -> PageOr {
    let next: String = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC).collect();
    PageOr::SeeOther(format!("/login/second-factor?next={next}"))
}

fn login_page(
    browser: &Browser<'_>,
    status: Status,
    notice: Option<&str>,
    error: Option<String>,
    next: String,
    email: String,
) -> Page {
    let csrf = browser.csrf_token();
    Page::render(status, &LoginPage { title: "Log in", notice, error, csrf, next, email })
}

#[rocket::get("/login?<next>&<registered>&<reset>&<logged_out>")]
pub fn login_form(
    me: Option<PageUser>,
    browser: Browser<'_>,
    next: Option<&str>,
    registered: Option<&str>,
    reset: Option<&str>,
    logged_out: Option<&str>,
) -> PageOr {
    // Already logged in: there is nothing to do here.
    if me.is_some() {
        return PageOr::SeeOther(browser.next(next));
    }
    let notice = match (registered, reset, logged_out) {
        (Some(_), _, _) => Some("Your account is ready: log in."),
        (_, Some(_), _) => Some("Your password is set: log in with it."),
        (_, _, Some(_)) => Some("You are logged out."),
        _ => None,
    };
    let email = take_registered_email(&browser).unwrap_or_default();
    login_page(&browser, Status::Ok, notice, None, browser.next(next), email).into()
}

#[rocket::post("/login", data = "<form>")]
pub async fn login(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    browser: Browser<'_>,
    form: CsrfForm<LoginForm>,
) -> PageOr {
    let LoginForm { email, password, next } = form.0;
    let next = browser.next(next.as_deref());
    match svc.login(&email, &password).await {
        Ok(session) => {
            browser.session().start(&session);
            browser.forget_pre_session();
            if !session.second_factor.is_empty() {
                return continue_login(&next);
            }
            PageOr::SeeOther(next)
        }
        Err(e) => {
            let unconfirmed = matches!(e, AuthError::EmailNotConfirmed);
            let retry = retry_after_of(&e);
            let (status, message) = failure(e);
            if unconfirmed {
                return not_confirmed(&browser, message, email);
            }
            login_page(&browser, status, None, Some(message), next, email).with_retry_after(retry).into()
        }
    }
}

/// `GET /logout` (a typed or bookmarked address): logging out changes state, so it is a button
/// on a page (a link must not log anyone out); without a session, the login page.
#[rocket::get("/logout")]
pub fn logout_page(me: Option<PageUser>, browser: Browser<'_>) -> PageOr {
    let Some(me) = me else {
        return PageOr::SeeOther("/login".into());
    };
    let csrf = browser.csrf_token();
    let email = me.user().email.clone();
    Page::render(Status::Ok, &LogoutPage { title: "Log out", notice: None, error: None, csrf, email }).into()
}

#[rocket::post("/logout", data = "<_form>")]
pub async fn logout(
    _site: NotCrossSite,
    svc: Svc,
    browser: Browser<'_>,
    session: Option<SessionCookie>,
    _form: CsrfForm<NoFields>,
) -> PageOr {
    if let Some(SessionCookie(token)) = session
        && let Err(e) = svc.logout(&token).await
    {
        let (status, message) = failure(e);
        return message_page(status, "Your account", message, "/account", "Try again").into();
    }
    browser.session().end();
    PageOr::SeeOther("/login?logged_out=1".into())
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
