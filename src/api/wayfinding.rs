//! Finding one's way (issue 21): a browser that mistypes a path, follows a stale URL or opens a
//! form's address gets an HTML page with a way back, while API clients keep JSON; a known path
//! asked with another method answers 405 with `Allow`; and the account page's session list reads
//! as a person reads it ("Chrome 156 on Linux", "3 minutes ago").

use askama::Template;
use chrono::{DateTime, Utc};
use rocket::http::{Cookie, CookieJar, Header, MediaType, Method, SameSite, Status};
use rocket::response::Responder;
use rocket::{Request, State};

use super::ApiSettings;
use super::error::{ApiError, ErrorCode, default_catcher};
use super::guard::SESSION_COOKIE;
use super::pages::{MessagePage, Page, PageOr, PageSettings, csrf_token};
use crate::service::account::SessionInfo;
use crate::service::{AuthError, AuthService, rfc3339};

// ---------------------------------------------------------------- unmatched requests

/// What a catcher answers: a page for browsers, JSON for everyone else.
pub enum Caught {
    Page(Page),
    Json(ApiError),
    /// 405, with the methods the path does answer.
    NotAllowed(Box<Caught>, String),
    /// Whatever the default catcher answers (a page on page routes, JSON elsewhere).
    Default(super::page_errors::Caught),
}

impl<'r> Responder<'r, 'static> for Caught {
    fn respond_to(self, req: &'r Request<'_>) -> rocket::response::Result<'static> {
        match self {
            Caught::Page(p) => p.respond_to(req),
            Caught::Json(e) => e.respond_to(req),
            Caught::Default(c) => c.respond_to(req),
            Caught::NotAllowed(inner, allow) => {
                let mut resp = inner.respond_to(req)?;
                resp.set_header(Header::new("Allow", allow));
                Ok(resp)
            }
        }
    }
}

/// A browser navigating (its first choice is HTML), on a server that serves pages.
fn wants_page(req: &Request<'_>) -> bool {
    // The API's own paths answer JSON whatever the client prefers (api.md §1).
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path == "/api" || path == "/health" || path == "/metrics";
    !api && req.rocket().state::<PageSettings>().is_some()
        && req.accept().is_some_and(|a| a.preferred().media_type() == &MediaType::HTML)
}

/// Whether a route's path template (`/api/v1/sessions/<id>`, `/static/<path..>`) matches `path`.
fn template_matches(template: &str, path: &str) -> bool {
    let segments = |s: &str| s.split('/').filter(|p| !p.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let (template, path) = (segments(template), segments(path));
    for (i, t) in template.iter().enumerate() {
        if t.starts_with('<') && t.ends_with("..>") {
            return true;
        }
        match path.get(i) {
            Some(_) if t.starts_with('<') && t.ends_with('>') => {}
            Some(p) if p == t => {}
            _ => return false,
        }
    }
    template.len() == path.len()
}

/// The methods some mounted route answers at this request's path (HEAD wherever GET is).
pub fn allowed_methods(req: &Request<'_>) -> Vec<Method> {
    let path = req.uri().path().as_str();
    let mut methods: Vec<Method> =
        req.rocket().routes().filter(|r| template_matches(r.uri.path(), path)).map(|r| r.method).collect();
    if methods.contains(&Method::Get) {
        methods.push(Method::Head);
    }
    methods.sort_by_key(|m| m.as_str());
    methods.dedup();
    methods
}

fn message_page(status: Status, title: &str, error: String, link: &str, link_text: &str) -> Page {
    Page::render(status, &MessagePage { title, notice: None, error: Some(error), link, link_text })
}

/// 404s: a known path asked with another method is 405 (with `Allow`), JSON
/// `method_not_allowed` for API clients; anything else unmatched is `not_found`. Browsers get
/// either as a page with a way back.
#[rocket::catch(404)]
pub fn not_found(req: &Request<'_>) -> Caught {
    let allowed = allowed_methods(req);
    let page = wants_page(req);
    if !allowed.is_empty() && !allowed.contains(&req.method()) {
        let allow = allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        let inner = if page {
            Caught::Page(message_page(
                Status::MethodNotAllowed,
                "This address is not opened that way",
                format!("This address answers {allow} requests only: it is where a form sends its data."),
                "/account",
                "Go to your account",
            ))
        } else {
            Caught::Json(ApiError::new(
                Status::MethodNotAllowed,
                ErrorCode::MethodNotAllowed,
                format!("This route does not answer {}; it answers {allow}.", req.method()),
            ))
        };
        return Caught::NotAllowed(Box::new(inner), allow);
    }
    if page {
        return Caught::Page(message_page(
            Status::NotFound,
            "Page not found",
            "There is no page at this address; it may have been mistyped.".into(),
            "/account",
            "Go to your account",
        ));
    }
    Caught::Default(default_catcher(Status::NotFound, req))
}

// ---------------------------------------------------------------- addresses a browser is left on

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    csrf: String,
    email: String,
}

/// `GET /logout` (a typed or bookmarked address): logging out changes state, so it is a button
/// on a page (a link must not log anyone out); without a session, the login page.
#[rocket::get("/logout")]
pub async fn logout_page(svc: &State<AuthService>, jar: &CookieJar<'_>, settings: &State<ApiSettings>) -> PageOr {
    let Some(user) = logged_in(svc, jar).await else {
        return PageOr::SeeOther("/login".into());
    };
    let csrf = csrf_token(jar, settings);
    PageOr::Page(Page::render(
        Status::Ok,
        &LogoutPage { title: "Log out", notice: None, error: None, csrf, email: user },
    ))
}

/// `GET /account/password`: the address left in the bar after a failed change; the form is on
/// the account page.
#[rocket::get("/account/password")]
pub fn password_form() -> PageOr {
    PageOr::SeeOther("/account".into())
}

/// The email of the session in the cookie, when it is valid.
pub async fn logged_in(svc: &AuthService, jar: &CookieJar<'_>) -> Option<String> {
    let token = jar.get(SESSION_COOKIE)?.value().to_owned();
    svc.authenticate(&token).await.ok().map(|a| a.user.email)
}

// ---------------------------------------------------------------- the login page remembers

const REGISTERED_EMAIL_COOKIE: &str = "registered_email";

/// After registering, the login form has the email filled in: carried in a short-lived cookie
/// (not the URL, which logs and histories keep).
pub fn remember_registered_email(jar: &CookieJar<'_>, settings: &ApiSettings, email: &str) {
    let email = crate::service::domain::Email::parse(email).map(|e| e.as_str().to_owned()).unwrap_or_default();
    jar.add(
        Cookie::build((REGISTERED_EMAIL_COOKIE, email))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/login")
            .max_age(rocket::time::Duration::minutes(10))
            .secure(settings.cookie_secure)
            .build(),
    );
}

/// The email just registered, once.
pub fn take_registered_email(jar: &CookieJar<'_>) -> Option<String> {
    let email = jar.get(REGISTERED_EMAIL_COOKIE)?.value().to_owned();
    jar.remove(Cookie::build(REGISTERED_EMAIL_COOKIE).path("/login").build());
    Some(email)
}

/// The sentence a page shows for a failure: the API's, except where a person needs other words.
pub fn page_message(e: &AuthError, api_message: String) -> String {
    match e {
        AuthError::AccountLocked { retry_after_secs } => {
            let minutes = retry_after_secs.div_ceil(60).max(1);
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            format!("Too many failed logins for this account. Try again in {minutes} {unit}.")
        }
        _ => api_message,
    }
}

/// The message for a wrong *current* password on the account page (no email was typed there).
pub const WRONG_CURRENT_PASSWORD: &str = "Your current password is not correct.";

/// Where the reset page's token stands: `None` when it can be used, otherwise the page saying so.
pub async fn stale_reset_link(svc: &AuthService, token: &str) -> Option<Page> {
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

pub fn session_cards(sessions: Vec<SessionInfo>, now: DateTime<Utc>) -> Vec<SessionCard> {
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
pub fn browser_summary(user_agent: Option<&str>) -> String {
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
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
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
    fn templates_match_paths() {
        assert!(template_matches("/api/v1/sessions/<id>", "/api/v1/sessions/abc"));
        assert!(!template_matches("/api/v1/sessions/<id>", "/api/v1/sessions"));
        assert!(template_matches("/api/v1/sessions", "/api/v1/sessions/"));
        assert!(template_matches("/static/<p..>", "/static/a/b.css"));
        assert!(!template_matches("/login", "/logins"));
        assert!(template_matches("/", "/"));
    }

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
