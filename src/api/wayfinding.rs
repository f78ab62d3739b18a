//! Finding one's way (issue 21): a browser that mistypes a path, follows a stale URL or opens a
//! form's address gets an HTML page with a way back, while API clients keep JSON; a known path
//! asked with another method answers 405 with `Allow`.

use rocket::Request;
use rocket::http::{Header, MediaType, Method, Status};
use rocket::response::Responder;

use super::error::{ApiError, ErrorCode, default_catcher};
use super::pages::PageSettings;
use super::pages::render::{Page, message_page};

// ---------------------------------------------------------------- unmatched requests

/// What a catcher answers: a page for browsers, JSON for everyone else.
pub enum Caught {
    Page(Page),
    Json(ApiError),
    /// 405, with the methods the path does answer.
    NotAllowed(Box<Caught>, String),
    /// Whatever the default catcher answers (a page on page routes, JSON elsewhere).
    Default(super::pages::render::Caught),
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
}
