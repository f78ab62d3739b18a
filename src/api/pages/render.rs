//! How pages answer: an HTML page with its status and the pages' CSP, a 303 after a POST, the
//! sentences shown for failures, and (api.md §14) errors caught on page routes rendered as pages
//! in the site's layout with the API's status and `Retry-After`; API routes keep their JSON.

use askama::Template;
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

use super::PageSettings;
use crate::api::error::ApiError;
use crate::service::AuthError;

/// What a page shows when its template fails (it is compiled in, so this is not expected).
const FALLBACK_HTML: &str = "<!doctype html><title>Error</title><p>Something went wrong.</p>";

/// An HTML page with its status and the page headers (CSP; no-store and frame denial come from
/// the security-headers fairing).
#[derive(Debug, Clone)]
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
                Page { status: Status::InternalServerError, html: FALLBACK_HTML.into(), retry_after: None }
            }
        }
    }

    /// The same page telling the browser when to retry (a locked account, a busy server).
    pub(crate) fn with_retry_after(mut self, secs: Option<u64>) -> Page {
        self.retry_after = secs;
        self
    }
}

impl<'r> Responder<'r, 'static> for Page {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
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
#[derive(Debug, Clone)]
pub enum PageOr {
    Page(Page),
    SeeOther(String),
}

impl PageOr {
    pub fn status(&self) -> Status {
        match self {
            PageOr::Page(p) => p.status,
            PageOr::SeeOther(_) => Status::SeeOther,
        }
    }

    /// The same answer telling the browser when to retry, when it is a page.
    pub(crate) fn with_retry_after(self, secs: Option<u64>) -> PageOr {
        match self {
            PageOr::Page(p) => PageOr::Page(p.with_retry_after(secs)),
            other => other,
        }
    }
}

impl From<Page> for PageOr {
    fn from(page: Page) -> Self {
        PageOr::Page(page)
    }
}

impl<'r> Responder<'r, 'static> for PageOr {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self {
            PageOr::Page(p) => p.respond_to(req),
            PageOr::SeeOther(to) => Response::build().status(Status::SeeOther).header(Header::new("Location", to)).ok(),
        }
    }
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

/// A page with one sentence and a way on.
pub(crate) fn message_page(status: Status, title: &str, error: String, link: &str, link_text: &str) -> Page {
    Page::render(status, &MessagePage { title, notice: None, error: Some(error), link, link_text })
}

/// The answer to a form post without the right CSRF token.
pub(crate) fn forbidden() -> PageOr {
    message_page(
        Status::Forbidden,
        "This form has expired",
        "The form could not be verified (a missing or wrong CSRF token). Open the page again and retry.".into(),
        "/login",
        "Back to log in",
    )
    .into()
}

/// An error as the API would answer it: its status and its sentence (in other words where a
/// person needs them).
pub(crate) fn failure(e: AuthError) -> (Status, String) {
    let words = page_message(&e);
    let api = ApiError::from(e);
    (api.status, words.unwrap_or(api.message))
}

/// The sentence a page shows for a failure where the API's would not do.
fn page_message(e: &AuthError) -> Option<String> {
    match e {
        AuthError::AccountLocked { retry_after_secs } => {
            let minutes = retry_after_secs.div_ceil(60).max(1);
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            Some(format!("Too many failed logins for this account. Try again in {minutes} {unit}."))
        }
        _ => None,
    }
}

/// The `Retry-After` the API would send with this error (locked, throttled, busy).
pub(crate) fn retry_after_of(e: &AuthError) -> Option<u64> {
    match e {
        AuthError::AccountLocked { retry_after_secs } | AuthError::TooManyResetRequests { retry_after_secs } => {
            Some(*retry_after_secs)
        }
        AuthError::Busy => Some(1),
        _ => None,
    }
}

// ---------------------------------------------------------------- errors caught on page routes

/// The first path segments of the page routes (api.md §8).
const PAGE_ROOTS: &[&str] = &["login", "register", "account", "logout", "forgot", "reset", "static"];

/// Whether a failed request was for a page: pages are on, and it is under a page route, or it is
/// not an API path and a browser asked for HTML (an unknown path typed into the address bar).
pub fn is_page_request(req: &Request<'_>) -> bool {
    if req.rocket().state::<PageSettings>().is_none() {
        return false;
    }
    let first = req.uri().path().segments().next().unwrap_or("");
    if PAGE_ROOTS.contains(&first) {
        return true;
    }
    let api = first == "api" || first == "metrics" || first == "health";
    let wants_html = req.headers().get("Accept").any(|a| a.contains("text/html"));
    !api && wants_html
}

/// What the catcher answers: the API's JSON, the same error as a page, or the page a page guard
/// refused the request with (`guards.rs`).
pub enum Caught {
    Api(ApiError),
    Page(ApiError),
    Refused(PageOr),
}

impl Caught {
    pub fn new(err: ApiError, req: &Request<'_>) -> Self {
        if is_page_request(req) { Caught::Page(err) } else { Caught::Api(err) }
    }
}

fn title_for(status: Status) -> &'static str {
    match status.code {
        403 => "Not allowed",
        404 => "Page not found",
        413 => "Too much data",
        415 => "Unsupported form",
        429 => "Too many attempts",
        400..=499 => "The request was not understood",
        503 => "Temporarily unavailable",
        _ => "Something went wrong",
    }
}

impl<'r> Responder<'r, 'static> for Caught {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let err = match self {
            Caught::Api(err) => return err.respond_to(req),
            Caught::Refused(page) => return page.respond_to(req),
            Caught::Page(err) => err,
        };
        let page = MessagePage {
            title: title_for(err.status),
            notice: None,
            error: Some(err.message.clone()),
            link: "/account",
            link_text: "Back to your account",
        };
        // The layout is compiled in; should it fail, a minimal page still answers with the status.
        let html = page.render().unwrap_or_else(|_| FALLBACK_HTML.to_owned());
        let mut resp = Response::build()
            .status(err.status)
            .header(ContentType::HTML)
            .header(Header::new("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"))
            .sized_body(html.len(), std::io::Cursor::new(html))
            .finalize();
        if let Some(secs) = err.retry_after {
            resp.set_header(Header::new("Retry-After", secs.to_string()));
        }
        Ok(resp)
    }
}
