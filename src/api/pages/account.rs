//! The account page (api.md §8): the email, the sessions (as a person reads them: "Chrome 156 on
//! Linux", "3 minutes ago") with "end" buttons, "end all other sessions", the password form, the
//! passkeys and two-factor sections; and the forms posted from it.

use askama::Template;
use chrono::{DateTime, Utc};
use rocket::http::Status;
use serde::Deserialize;

use super::guards::{AccountForm, Browser, NoFields, PageUser, login_first, session_lost};
use super::render::{Page, PageOr, failure, retry_after_of};
use super::second_factor::TwoFactorView;
use crate::api::guard::NoSession;
use crate::api::protect::{ClientBudget, NotCrossSite, Svc};
use crate::service::account::SessionInfo;
use crate::service::{AuthError, AuthService, rfc3339};

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    email: String,
    sessions: Vec<SessionCard>,
    min_length: usize,
    /// The passkeys section, rendered (and escaped) by `passkeys.rs`.
    passkeys: String,
    /// The "Two-factor authentication" section (api.md §10).
    tfa: TwoFactorView,
    /// A failed password change, shown beside its form.
    password_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordChangeForm {
    current_password: String,
    new_password: String,
}

/// The message for a wrong *current* password on the account page (no email was typed there).
const WRONG_CURRENT_PASSWORD: &str = "Your current password is not correct.";

/// What the account page shows besides the account: a notice, an error, or an error beside the
/// password form.
#[derive(Default)]
pub(super) struct Shown<'a> {
    pub notice: Option<&'a str>,
    pub error: Option<String>,
    pub password_error: Option<String>,
}

/// The account page of `me`.
pub(super) async fn account_page(
    svc: &AuthService,
    me: &PageUser,
    browser: &Browser<'_>,
    status: Status,
    shown: Shown<'_>,
) -> PageOr {
    let sessions = match svc.list_sessions(me.auth()).await {
        Ok(sessions) => session_cards(sessions, Utc::now()),
        Err(AuthError::NotAuthenticated) => return session_lost(svc, me.token()).await,
        Err(e) => return login_first(NoSession::Failed(e.into())),
    };
    let csrf = browser.csrf_token();
    let min_length = svc.policy().password_min_length;
    let passkeys = super::passkeys::section(svc, me.user(), &csrf).await;
    let tfa = TwoFactorView::load(svc, me.auth()).await;
    let page = AccountPage {
        title: "Your account",
        notice: shown.notice,
        error: shown.error,
        csrf,
        email: me.user().email.clone(),
        sessions,
        min_length,
        passkeys,
        tfa,
        password_error: shown.password_error,
    };
    Page::render(status, &page).into()
}

/// The account page again after a failed form, with the error and the API's status.
pub(super) async fn account_error(svc: &AuthService, me: &PageUser, browser: &Browser<'_>, e: AuthError) -> PageOr {
    account_failure(svc, me, browser, e, |message| Shown { error: Some(message), ..Shown::default() }).await
}

/// The account page after a failed form, the message placed by `shown`: the API's status, and
/// `Retry-After` for a locked account or a busy server.
async fn account_failure(
    svc: &AuthService,
    me: &PageUser,
    browser: &Browser<'_>,
    e: AuthError,
    shown: impl FnOnce(String) -> Shown<'static>,
) -> PageOr {
    let retry = retry_after_of(&e);
    let (status, message) = failure(e);
    account_page(svc, me, browser, status, shown(message)).await.with_retry_after(retry)
}

/// After a form on the account page: 303 to `done`, to log in when the session is gone, or the
/// account page again with the error.
pub(super) async fn after_account_action(
    svc: &AuthService,
    me: &PageUser,
    browser: &Browser<'_>,
    result: Result<(), AuthError>,
    done: &str,
) -> PageOr {
    match result {
        Ok(()) => PageOr::SeeOther(done.into()),
        Err(AuthError::NotAuthenticated) => session_lost(svc, me.token()).await,
        Err(e) => account_error(svc, me, browser, e).await,
    }
}

#[rocket::get("/account?<done>")]
pub async fn account(svc: Svc<'_>, me: PageUser, browser: Browser<'_>, done: Option<&str>) -> PageOr {
    let notice = match done {
        Some("password") => Some("Your password is changed; your other sessions have ended."),
        Some("ended") => Some("The session has ended."),
        Some("others") => Some("Your other sessions have ended."),
        Some("passkey_added") => Some("Your passkey is added: you can log in with it."),
        Some("passkey_removed") => Some("The passkey is removed."),
        Some("totp-off") => Some("Two-factor authentication is off."),
        _ => None,
    };
    account_page(&svc, &me, &browser, Status::Ok, Shown { notice, ..Shown::default() }).await
}

/// `GET /account/password`: the address left in the bar after a failed change; the form is on
/// the account page.
#[rocket::get("/account/password")]
pub fn password_form() -> PageOr {
    PageOr::SeeOther("/account".into())
}

#[rocket::post("/account/password", data = "<post>")]
pub async fn change_password(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc<'_>,
    browser: Browser<'_>,
    post: AccountForm<PasswordChangeForm>,
) -> PageOr {
    let AccountForm { me, form } = post;
    match svc.change_password(&svc.ctx, me.auth(), &form.current_password, &form.new_password).await {
        Ok(_) => PageOr::SeeOther("/account?done=password".into()),
        Err(AuthError::NotAuthenticated) => login_first(NoSession::Dead),
        // Beside the password form, in words about the password typed there.
        Err(e) => {
            let wrong_current = matches!(e, AuthError::InvalidCredentials);
            account_failure(&svc, &me, &browser, e, |message| {
                let message = if wrong_current { WRONG_CURRENT_PASSWORD.to_owned() } else { message };
                Shown { password_error: Some(message), ..Shown::default() }
            })
            .await
        }
    }
}

#[rocket::post("/account/sessions/<id>/end", data = "<post>")]
pub async fn end_session(
    _site: NotCrossSite,
    svc: Svc<'_>,
    browser: Browser<'_>,
    id: &str,
    post: AccountForm<NoFields>,
) -> PageOr {
    let result = match uuid::Uuid::parse_str(id) {
        Ok(id) => svc.end_session(&svc.ctx, post.me.auth(), id).await,
        Err(_) => Err(AuthError::SessionNotFound),
    };
    after_account_action(&svc, &post.me, &browser, result, "/account?done=ended").await
}

#[rocket::post("/account/sessions/end-others", data = "<post>")]
pub async fn end_other_sessions(
    _site: NotCrossSite,
    svc: Svc<'_>,
    browser: Browser<'_>,
    post: AccountForm<NoFields>,
) -> PageOr {
    let result = svc.end_other_sessions(&svc.ctx, post.me.auth()).await.map(|_| ());
    after_account_action(&svc, &post.me, &browser, result, "/account?done=others").await
}

// ---------------------------------------------------------------- the session list

/// One session as the account page shows it.
pub struct SessionCard {
    pub id: String,
    /// "Chrome 156 on Linux".
    pub browser: String,
    /// The client address, as the audit log records it ("unknown" before it was recorded).
    pub client: String,
    pub created_at: String,
    pub created_ago: String,
    pub last_seen_at: String,
    pub last_seen_ago: String,
    pub current: bool,
}

fn session_cards(sessions: Vec<SessionInfo>, now: DateTime<Utc>) -> Vec<SessionCard> {
    sessions
        .into_iter()
        .map(|s| SessionCard {
            id: s.id.to_string(),
            browser: browser_summary(s.user_agent.as_deref()),
            client: s.client.unwrap_or_else(|| "unknown address".into()),
            created_at: rfc3339(s.created_at),
            created_ago: ago(s.created_at, now),
            last_seen_at: rfc3339(s.last_seen_at),
            last_seen_ago: ago(s.last_seen_at, now),
            current: s.current,
        })
        .collect()
}

/// "Chrome 156 on Linux" from a User-Agent (woothee's classification); the raw string cut short
/// when it names no known browser.
fn browser_summary(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|u| !u.trim().is_empty()) else { return "Unknown browser".into() };
    let known = |s: &str| !s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN;
    match woothee::parser::Parser::new().parse(ua) {
        // Browsers only: crawlers and libraries (curl) read better as what they sent.
        Some(r) if known(r.name) && matches!(r.category, "pc" | "smartphone" | "mobilephone" | "appliance") => {
            let major = r.version.split('.').next().filter(|v| known(v)).map(|v| format!(" {v}")).unwrap_or_default();
            let os = if known(r.os) { format!(" on {}", r.os) } else { String::new() };
            format!("{}{major}{os}", r.name)
        }
        _ => {
            let short: String = ua.chars().take(40).collect();
            if short.len() < ua.len() { format!("{short}…") } else { short }
        }
    }
}

/// "just now", "3 minutes ago", "2 hours ago", "5 days ago".
fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0);
    let (n, unit) = match secs {
        0..60 => return "just now".into(),
        60..3600 => (secs / 60, "minute"),
        3600..86_400 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_and_times_read_as_words() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(browser_summary(Some(chrome)), "Chrome 156 on Linux");
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(browser_summary(Some(firefox)), "Firefox 133 on Windows 10");
        assert_eq!(browser_summary(None), "Unknown browser");
        assert_eq!(browser_summary(Some("curl/8.5.0")), "curl/8.5.0");
        let now = Utc::now();
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now - chrono::Duration::seconds(185), now), "3 minutes ago");
        assert_eq!(ago(now - chrono::Duration::hours(1), now), "1 hour ago");
        assert_eq!(ago(now - chrono::Duration::days(5), now), "5 days ago");
    }
}
