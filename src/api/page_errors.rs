//! Pages fail as pages (api.md §14): an error caught on a page route (403 cross-site or CSRF,
//! 404, 413, 415, 400 for a body that is not UTF-8, the per-client 429, 500, 503) is an HTML page
//! in the site's layout with the API's status and `Retry-After`; API routes keep their JSON.

use askama::Template;
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

use super::error::ApiError;
use super::pages::PageSettings;

/// The first path segments of the page routes (api.md §8).
const PAGE_ROOTS: &[&str] = &["login", "register", "account", "logout", "forgot", "reset", "static"];

#[derive(Template)]
#[template(path = "message.html")]
struct ErrorPage<'a> {
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<String>,
    link: &'a str,
    link_text: &'a str,
}

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

/// What the catcher answers: the API's JSON, or the same error as a page.
pub enum Caught {
    Api(ApiError),
    Page(ApiError),
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
            Caught::Page(err) => err,
        };
        let page = ErrorPage {
            title: title_for(err.status),
            notice: None,
            error: Some(err.message.clone()),
            link: "/account",
            link_text: "Back to your account",
        };
        // The layout is compiled in; should it fail, a minimal page still answers with the status.
        let html = page
            .render()
            .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned());
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
