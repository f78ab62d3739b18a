//! Forward authentication for reverse proxies (api.md §12): nginx `auth_request`, Caddy
//! `forward_auth` and Traefik `ForwardAuth` ask `GET /api/v1/auth` whether a request may pass.
//!
//! It is the hottest route of a deployment (every request to every protected application), so it
//! does exactly what `GET /api/v1/profile` does — the shared `AuthUser` guard, the same session
//! read (the SQLite fast path; no write unless the idle timer needs refreshing) — and answers with
//! two headers and no body. Everything else here (the login redirect, `next` checks, cookie
//! domains) only runs when a request is refused or a cookie is set.

use std::net::IpAddr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rocket::Request;
use rocket::http::{Cookie, Header, Status};
use rocket::response::{self, Responder, Response};

use super::ApiSettings;
use super::error::{ApiError, ErrorBody};
use super::guard::AuthUser;
use crate::service::UserView;

/// The longest original URL carried in `next`; longer ones are dropped (the user lands on `/account`).
const MAX_NEXT_LEN: usize = 2048;

/// What RFC 3986 leaves unescaped in a query component: everything else in `next` is encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The answer of `GET /api/v1/auth`.
pub enum AuthAnswer {
    /// 200, empty body, `X-User-Id` and `X-User-Email`.
    Allowed(UserView),
    /// 401 with the JSON error body or, when asked for with `redirect=1`, 302 to the login page
    /// with `next` built from the trusted proxy's `X-Forwarded-*` headers.
    Refused(ApiError),
}

#[utoipa::path(get, path = "/api/v1/auth", tag = "v1", security(("session_cookie" = [])),
    params(("redirect" = Option<String>, Query,
        description = "`1`: answer a request without a valid session with 302 to the login page instead of 401")),
    responses(
        (status = 200, description = "A full session: the request may pass. Empty body.",
            headers(("X-User-Id" = String, description = "The user's id (UUID)"),
                    ("X-User-Email" = String, description = "The user's email"),
                    ("Cache-Control" = String, description = "no-store"))),
        (status = 302, description = "With `redirect=1` and no valid session: to `{public_url}/login?next=<original URL>`, \
            the original URL built from `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Uri` when they come \
            from a trusted proxy and lead to an allowed origin",
            headers(("Location" = String, description = "The login page"))),
        (status = 401, description = "No valid session (nginx auth_request)", body = ErrorBody)))]
#[rocket::get("/auth")]
pub fn auth(me: Result<AuthUser, ApiError>) -> AuthAnswer {
    match me {
        Ok(me) => AuthAnswer::Allowed(me.user),
        Err(e) => AuthAnswer::Refused(e),
    }
}

/// Whether the request asks for the login redirect. `redirect` is read here, on the refusal path
/// only, rather than as a route parameter: the route's URI stays `/api/v1/auth`.
fn wants_redirect(req: &Request<'_>) -> bool {
    match req.query_value::<&str>("redirect") {
        Some(Ok(v)) => !matches!(v, "0" | "false" | "no" | "off"),
        _ => false,
    }
}

impl<'r> Responder<'r, 'static> for AuthAnswer {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self {
            AuthAnswer::Allowed(user) => Response::build()
                .status(Status::Ok)
                .header(Header::new("X-User-Id", user.id.to_string()))
                .header(Header::new("X-User-Email", user.email))
                .header(Header::new("Cache-Control", "no-store"))
                .ok(),
            // Only a missing or dead session leads to the login page; a database failure stays an error.
            AuthAnswer::Refused(e) if e.status != Status::Unauthorized || !wants_redirect(req) => e.respond_to(req),
            AuthAnswer::Refused(_) => {
                let Some(settings) = req.rocket().state::<ApiSettings>() else {
                    return ApiError::for_status(Status::InternalServerError).respond_to(req);
                };
                let h = req.headers();
                let location = login_location(
                    settings,
                    req.remote().map(|r| r.ip()),
                    h.get_one("X-Forwarded-Proto"),
                    h.get_one("X-Forwarded-Host"),
                    h.get_one("X-Forwarded-Uri"),
                );
                Response::build()
                    .status(Status::Found)
                    .header(Header::new("Location", location))
                    .header(Header::new("Cache-Control", "no-store"))
                    .ok()
            }
        }
    }
}

/// `{public_url}/login`, with `?next=<the original URL, percent-encoded>` when a trusted proxy
/// named it and it leads to an allowed origin; otherwise the bare login page (which then leads to
/// `/account`). The forwarded headers of anyone else are ignored: they are the client's own claims.
pub fn login_location(
    settings: &ApiSettings,
    peer: Option<IpAddr>,
    proto: Option<&str>,
    host: Option<&str>,
    uri: Option<&str>,
) -> String {
    let mut location = settings.login_url.clone();
    let trusted = peer.is_some_and(|p| {
        let p = p.to_canonical();
        settings.trusted_proxies.iter().any(|net| net.contains(&p))
    });
    if trusted
        && let (Some(proto), Some(host), Some(uri)) = (proto, host, uri)
        && let Some(next) = forwarded_url(proto.trim(), host.trim(), uri.trim(), &settings.redirect_origins)
    {
        location.push_str("?next=");
        location.extend(utf8_percent_encode(&next, QUERY_VALUE));
    }
    location
}

/// The original URL from its forwarded parts, when each part is well-formed and the result's
/// origin is one `next` may lead to.
fn forwarded_url(proto: &str, host: &str, uri: &str, origins: &[String]) -> Option<String> {
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "http" | "https") {
        return None;
    }
    // A host and an optional port, nothing else: no user-info, path or second value.
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !host_ok || !uri.starts_with('/') || uri.starts_with("//") {
        return None;
    }
    let url = format!("{proto}://{host}{uri}");
    if url.len() > MAX_NEXT_LEN || url.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return None;
    }
    on_origin(url::Url::parse(&url).ok()?, origins)
}

/// The URL, when it has no user-info and its origin is one of `origins`.
fn on_origin(url: url::Url, origins: &[String]) -> Option<String> {
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    origins.contains(&url.origin().ascii_serialization()).then(|| url.into())
}

/// `next` when it is an absolute http(s) URL on one of `origins`: normalised, with no user-info,
/// and its text itself starting with that origin (so no parser can read another host out of it:
/// `https://app.example.test.evil`, `https://app.example.test@evil`, another scheme or port all fail).
pub fn allowed_absolute(next: &str, origins: &[String]) -> Option<String> {
    if next.len() > MAX_NEXT_LEN || next.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return None;
    }
    let url = url::Url::parse(next).ok()?;
    let origin = url.origin().ascii_serialization();
    let (prefix, rest) = (next.get(..origin.len())?, next.get(origin.len()..)?);
    if !prefix.eq_ignore_ascii_case(&origin) || !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
        return None;
    }
    on_origin(url, origins)
}

/// Where the login page sends the user after logging in: a path on this site (api.md §8), or an
/// absolute URL on an allowed origin (§12); anything else goes to `/account`.
pub fn login_next(next: Option<&str>, settings: &ApiSettings) -> String {
    let relative = super::pages::safe_next(next);
    if relative != "/account" {
        return relative;
    }
    next.and_then(|n| allowed_absolute(n, &settings.redirect_origins)).unwrap_or(relative)
}

/// A cookie of ours, with `cookie_domain` applied when one is configured.
pub fn scoped(mut cookie: Cookie<'static>, settings: &ApiSettings) -> Cookie<'static> {
    if let Some(domain) = &settings.cookie_domain {
        cookie.set_domain(domain.clone());
    }
    cookie
}

/// Whether `host` is `domain` or one of its subdomains (the browser's domain-match, RFC 6265 §5.1.3).
pub fn host_in_domain(host: &str, domain: &str) -> bool {
    let (host, domain) = (host.trim_end_matches('.').to_ascii_lowercase(), domain.to_ascii_lowercase());
    host == domain || host.strip_suffix(&domain).is_some_and(|rest| rest.ends_with('.'))
}

/// A small built-in list of common public suffixes (a registrable domain is one label below
/// them). Not the full Public Suffix List: `doctor` warns on these, and browsers refuse cookies for
/// every public suffix anyway.
pub const COMMON_PUBLIC_SUFFIXES: &[&str] = &[
    "com",
    "net",
    "org",
    "edu",
    "gov",
    "mil",
    "int",
    "io",
    "co",
    "dev",
    "app",
    "me",
    "info",
    "biz",
    "xyz",
    "online",
    "site",
    "cloud",
    "de",
    "fr",
    "uk",
    "nl",
    "be",
    "ch",
    "at",
    "es",
    "it",
    "pl",
    "se",
    "no",
    "dk",
    "fi",
    "cz",
    "ru",
    "cn",
    "jp",
    "kr",
    "in",
    "br",
    "au",
    "ca",
    "us",
    "eu",
    "co.uk",
    "org.uk",
    "ac.uk",
    "gov.uk",
    "com.au",
    "net.au",
    "org.au",
    "co.jp",
    "ne.jp",
    "or.jp",
    "com.br",
    "com.cn",
    "co.in",
    "co.nz",
    "co.za",
    "com.mx",
    "com.tr",
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "netlify.app",
    "vercel.app",
    "pages.dev",
    "workers.dev",
    "azurewebsites.net",
    "cloudfront.net",
    "appspot.com",
    "web.app",
    "firebaseapp.com",
    "blogspot.com",
    "s3.amazonaws.com",
    "fly.dev",
    "onrender.com",
    "ngrok.io",
    "ngrok-free.app",
    "duckdns.org",
    "dyndns.org",
    "no-ip.org",
    "localhost",
    "local",
    "test",
    "example",
    "invalid",
];

pub fn is_public_suffix(domain: &str) -> bool {
    let d = domain.trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
    COMMON_PUBLIC_SUFFIXES.contains(&d.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(trusted: &[&str], origins: &[&str]) -> ApiSettings {
        ApiSettings {
            cookie_secure: false,
            max_body_bytes: 4096,
            session_max_age_secs: 60,
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            own_origin: Some("https://auth.example.test".into()),
            allowed_origins: Vec::new(),
            cookie_domain: None,
            redirect_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            login_url: "https://auth.example.test/login".into(),
            csrf: crate::api::pages::csrf::CsrfKey::new(&crate::service::key::ServerKey::from_bytes([7; 32])),
        }
    }

    #[test]
    fn next_comes_only_from_trusted_proxies_and_allowed_origins() {
        let s = settings(&["10.0.0.0/8"], &["https://auth.example.test", "https://app.example.test"]);
        let proxy = Some("10.1.2.3".parse().unwrap());
        let at = |peer, proto, host, uri| login_location(&s, peer, Some(proto), Some(host), Some(uri));
        assert_eq!(
            at(proxy, "https", "app.example.test", "/a%20b/ü?x=1&y=/z"),
            "https://auth.example.test/login?next=https%3A%2F%2Fapp.example.test%2Fa%2520b%2F%25C3%25BC%3Fx%3D1%26y%3D%2Fz"
        );
        // IPv4-mapped IPv6 peers are their IPv4 address.
        assert!(at(Some("::ffff:10.0.0.1".parse().unwrap()), "https", "app.example.test", "/").contains("?next="));
        let bare = "https://auth.example.test/login";
        assert_eq!(at(Some("192.0.2.1".parse().unwrap()), "https", "app.example.test", "/"), bare, "untrusted peer");
        assert_eq!(at(None, "https", "app.example.test", "/"), bare);
        for (proto, host, uri) in [
            ("https", "app.example.test.evil", "/"),
            ("https", "evil.example", "/"),
            ("http", "app.example.test", "/"),
            ("https", "app.example.test:8443", "/"),
            ("https", "user@app.example.test", "/"),
            ("https", "evil@app.example.test", "/"),
            ("https", "app.example.test", "//evil.example/"),
            ("https", "app.example.test", "@evil.example/"),
            ("https", "app.example.test", "/\\evil"),
            ("https", "app.example.test", "/a\r\nSet-Cookie: x=1"),
            ("https", "app.example.test", "/a b"),
            ("javascript", "app.example.test", "/"),
            ("https, http", "app.example.test", "/"),
            ("https", "app.example.test, evil.example", "/"),
            ("https", "", "/"),
        ] {
            assert_eq!(at(proxy, proto, host, uri), bare, "{proto} {host} {uri}");
        }
        assert_eq!(login_location(&s, proxy, None, Some("app.example.test"), Some("/")), bare);
        // Port 443 on https is the default port: the same origin.
        assert!(at(proxy, "HTTPS", "App.Example.Test:443", "/x").ends_with("next=https%3A%2F%2Fapp.example.test%2Fx"));
    }

    #[test]
    fn absolute_next_only_to_allowed_origins() {
        let origins = vec!["https://app.example.test".to_owned(), "http://localhost:3000".to_owned()];
        let ok = |n: &str| allowed_absolute(n, &origins);
        assert_eq!(ok("https://app.example.test/x?y=1").as_deref(), Some("https://app.example.test/x?y=1"));
        assert_eq!(ok("https://app.example.test").as_deref(), Some("https://app.example.test/"));
        assert_eq!(ok("http://localhost:3000/").as_deref(), Some("http://localhost:3000/"));
        for evil in [
            "https://app.example.test.evil/",
            "https://app.example.test.evil",
            "https://app.example.test@evil.example/",
            "https://user@app.example.test/",
            "https://user:pw@app.example.test/",
            "http://app.example.test/",
            "https://app.example.test:8443/",
            "https://app.example.test:443/",
            "http://localhost:3001/",
            "https://localhost:3000/",
            "ftp://app.example.test/",
            "javascript://app.example.test/%0aalert(1)",
            "https://app.example.test\\@evil.example/",
            "https://app.example.test/\tx",
            "https:app.example.test/",
            "//app.example.test/",
        ] {
            assert_eq!(ok(evil), None, "{evil}");
        }
    }

    #[test]
    fn domains_and_public_suffixes() {
        assert!(host_in_domain("auth.example.com", "example.com"));
        assert!(host_in_domain("example.com", "example.com"));
        assert!(host_in_domain("A.Example.COM.", "example.com"));
        assert!(!host_in_domain("badexample.com", "example.com"));
        assert!(!host_in_domain("example.com.evil", "example.com"));
        assert!(is_public_suffix("co.uk") && is_public_suffix(".com") && is_public_suffix("github.io"));
        assert!(!is_public_suffix("example.com"));
    }
}
