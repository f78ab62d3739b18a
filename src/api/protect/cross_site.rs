//! Cross-site refusal (api.md §6): state-changing requests sent by a browser from another site
//! are refused before any other guard or the body runs.

use rocket::http::{Method, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use crate::api::ApiSettings;
use crate::api::error::{ApiError, ErrorCode, remember};

/// Whether a state-changing request comes from another site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` that is neither ours nor allowed. Requests with neither header (scripts, servers)
/// pass. `own` is our origin from `public_url`; without it, the `Host` header's, over either scheme.
pub fn is_cross_site(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
    own: Option<&str>,
    allowed: &[String],
) -> bool {
    if sec_fetch_site.is_some_and(|v| v.trim().eq_ignore_ascii_case("cross-site")) {
        return true;
    }
    let Some(origin) = origin else { return false };
    // Browsers send `Origin: null` on a same-origin form post when the page's referrer policy is
    // `no-referrer` (which every response of ours has): then the browser's own `Sec-Fetch-Site`
    // (which pages cannot set) decides. Otherwise "null" and anything unparseable are foreign.
    if origin.trim() == "null" {
        return !sec_fetch_site.is_some_and(|v| v.trim().eq_ignore_ascii_case("same-origin"));
    }
    let Some(origin) = crate::config::origin_of(origin.trim()) else { return true };
    if allowed.contains(&origin) {
        return false;
    }
    match own {
        Some(own) => origin != own,
        None => match host {
            Some(host) => !["http", "https"]
                .iter()
                .any(|scheme| crate::config::origin_of(&format!("{scheme}://{host}")).as_deref() == Some(&origin)),
            None => true,
        },
    }
}

/// A request guard on every `POST`, `PUT` and `DELETE` route, listed first so that it runs before
/// any other guard or the body: 403 `cross_site_request` for requests from another site.
pub struct NotCrossSite;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for NotCrossSite {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let settings = req.rocket().state::<ApiSettings>();
        let h = req.headers();
        let cross = is_cross_site(
            h.get_one("Sec-Fetch-Site"),
            h.get_one("Origin"),
            h.get_one("Host"),
            settings.and_then(|s| s.own_origin.as_deref()),
            settings.map_or(&[], |s| s.allowed_origins.as_slice()),
        );
        if cross && matches!(req.method(), Method::Post | Method::Put | Method::Delete) {
            let err = ApiError::new(
                Status::Forbidden,
                ErrorCode::CrossSiteRequest,
                "Requests from other sites are not accepted.",
            );
            return Outcome::Error(remember(req, err));
        }
        Outcome::Success(NotCrossSite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_rules() {
        let own = Some("https://auth.example.com");
        let allowed = vec!["https://app.example.com".to_owned()];
        let cs = |sfs, origin, host| is_cross_site(sfs, origin, host, own, &allowed);
        assert!(!cs(None, None, None), "scripts send neither header");
        assert!(cs(Some("cross-site"), None, None));
        assert!(!cs(Some("same-origin"), Some("https://auth.example.com"), None));
        assert!(cs(None, Some("https://evil.example"), None));
        assert!(cs(None, Some("https://sub.auth.example.com"), None), "sibling subdomains are other origins");
        assert!(cs(None, Some("http://auth.example.com"), None), "scheme counts");
        assert!(cs(None, Some("null"), None));
        // A same-origin form post from a no-referrer page: `Origin: null`, and the browser says so.
        assert!(!cs(Some("same-origin"), Some("null"), None));
        assert!(cs(Some("same-site"), Some("null"), None), "a sibling subdomain");
        assert!(!cs(None, Some("https://app.example.com"), None), "allowed");
        // Without public_url: the Host header decides.
        let by_host = |origin, host| is_cross_site(None, origin, host, None, &[]);
        assert!(!by_host(Some("http://127.0.0.1:5000"), Some("127.0.0.1:5000")));
        assert!(!by_host(Some("https://auth.example.com"), Some("auth.example.com")));
        assert!(by_host(Some("http://127.0.0.1:5001"), Some("127.0.0.1:5000")));
        assert!(by_host(Some("http://a.example"), None));
    }
}
