//! Standing up to attack at the HTTP edge (api.md §6): the client's address (believing
//! `X-Forwarded-For` only from trusted proxies), per-client limits on bcrypt-costing routes,
//! cross-site refusal, and the security headers every response carries.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use rocket::Response;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Header, Method, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use super::ApiSettings;
use super::error::{ApiError, ErrorCode, remember};
use crate::service::hashing::client_key;

// ---------------------------------------------------------------- the client's address

/// The address a request is from: the socket's peer or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not a trusted proxy itself. Entries further left
/// were written by the client and prove nothing.
pub fn client_address<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Several headers count as one list, in order.
    let entries: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).map(str::trim).collect();
    let mut nearest_trusted = peer;
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip.to_canonical()) => nearest_trusted = ip.to_canonical(),
            Ok(ip) => return Some(ip.to_canonical()),
            // Garbage where an address should be: believe nothing further left.
            Err(_) => return Some(nearest_trusted),
        }
    }
    Some(nearest_trusted)
}

/// The requesting client's address, resolved once per request.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    pub fn of(req: &Request<'_>) -> ClientAddr {
        *req.local_cache(|| {
            let trusted = req.rocket().state::<ApiSettings>().map(|s| s.trusted_proxies.as_slice()).unwrap_or(&[]);
            ClientAddr(client_address(req.remote().map(|r| r.ip()), req.headers().get("X-Forwarded-For"), trusted))
        })
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientAddr {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        Outcome::Success(ClientAddr::of(req))
    }
}

/// The shared service, and this request's context (its client, recorded in the audit log, whose
/// share of the hashing queue is bounded; its `User-Agent`, recorded with the sessions it opens).
pub struct Svc<'r> {
    svc: &'r crate::service::AuthService,
    pub ctx: crate::service::RequestContext,
}

impl std::ops::Deref for Svc<'_> {
    type Target = crate::service::AuthService;
    fn deref(&self) -> &Self::Target {
        self.svc
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Svc<'r> {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let client = ClientAddr::of(req).0;
        let user_agent = req.headers().get_one("User-Agent");
        match req.rocket().state::<crate::service::AuthService>() {
            Some(svc) => Outcome::Success(Svc { svc, ctx: crate::service::RequestContext::http(client, user_agent) }),
            None => Outcome::Error(remember(req, ApiError::for_status(Status::InternalServerError))),
        }
    }
}

// ---------------------------------------------------------------- per-client limits

/// At most this many addresses are tracked; past it, stale ones are dropped, and if every one is
/// recent the table starts afresh (a wide attack then meets the hashing queue's bound instead).
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// `client_rate_per_minute` per client address, for routes that cost a bcrypt computation.
pub struct ClientLimiter {
    quota: Option<Quota>,
    /// Replaced whole when it is full of recent addresses (governor has no `clear`).
    limiter: RwLock<Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl ClientLimiter {
    pub fn new(per_minute: u32) -> Self {
        let quota = NonZeroU32::new(per_minute).map(Quota::per_minute);
        let limiter = RwLock::new(quota.map(|q| Arc::new(DefaultKeyedRateLimiter::keyed(q))));
        Self { quota, limiter, clock: DefaultClock::default(), checks: AtomicU64::new(0) }
    }

    fn current(&self) -> Option<Arc<DefaultKeyedRateLimiter<IpAddr>>> {
        self.limiter.read().map(|l| l.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// `Err(wait)` when the client has used its budget.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let Some(limiter) = self.current() else { return Ok(()) };
        // No address (a local test client): one shared budget.
        let key = client_key(client.unwrap_or(IpAddr::from([0, 0, 0, 0])));
        if self.checks.fetch_add(1, Ordering::Relaxed).is_multiple_of(1024) && limiter.len() > MAX_TRACKED_CLIENTS {
            self.prune();
        }
        limiter.check_key(&key).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops addresses whose budget is full again; called once a minute, and when the table is large.
    pub fn prune(&self) {
        let (Some(limiter), Some(quota)) = (self.current(), self.quota) else { return };
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() > MAX_TRACKED_CLIENTS {
            tracing::warn!(tracked = limiter.len(), "per-client rate table full of recent addresses; starting afresh");
            let fresh = Some(Arc::new(DefaultKeyedRateLimiter::keyed(quota)));
            match self.limiter.write() {
                Ok(mut l) => *l = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
        }
    }

    /// How many addresses are tracked now.
    pub fn tracked(&self) -> usize {
        self.current().map_or(0, |l| l.len())
    }
}

/// A request guard for routes that cost a bcrypt computation: 429 `too_many_requests` with
/// `Retry-After` once the client's address has used `client_rate_per_minute`.
pub struct ClientBudget;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientBudget {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let Some(limiter) = req.rocket().state::<Arc<ClientLimiter>>() else { return Outcome::Success(ClientBudget) };
        match limiter.check(ClientAddr::of(req).0) {
            Ok(()) => Outcome::Success(ClientBudget),
            Err(wait) => {
                if req.route().is_some_and(|r| r.name.as_deref() == Some("login"))
                    && let Some(svc) = req.rocket().state::<crate::service::AuthService>()
                {
                    svc.count_throttled_login();
                }
                let secs = wait.as_millis().div_ceil(1000).max(1);
                let err = ApiError {
                    retry_after: Some(u64::try_from(secs).unwrap_or(u64::MAX)),
                    ..ApiError::new(
                        Status::TooManyRequests,
                        ErrorCode::TooManyRequests,
                        "Too many requests from this address; try again later.",
                    )
                };
                Outcome::Error(remember(req, err))
            }
        }
    }
}

// ---------------------------------------------------------------- cross-site refusal

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

// ---------------------------------------------------------------- headers

/// The headers of api.md §6 on every response, set only where a route has not set its own:
/// `Cache-Control: no-store` (our responses carry tokens, sessions or personal data unless a
/// route says otherwise), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
/// `X-Frame-Options: DENY`, and `Strict-Transport-Security` when cookies are `Secure`.
pub struct SecurityHeaders {
    pub hsts: bool,
}

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info { name: "security headers", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, _: &'r Request<'_>, res: &mut Response<'r>) {
        let mut defaults = vec![
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
        ];
        if self.hsts {
            defaults.push(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"));
        }
        for (name, value) in defaults {
            if !res.headers().contains(name) {
                res.set_header(Header::new(name, value));
            }
        }
    }
}

/// Clears the per-client table of addresses that are within budget again, once a minute.
pub async fn prune_clients(limiter: &ClientLimiter) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        limiter.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(client_address(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &trusted), ip("203.0.113.9"));
        // Trusted peer: the right-most untrusted entry; the client's own left part is ignored.
        assert_eq!(
            client_address(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.7, 10.1.1.1"].into_iter(), &trusted),
            ip("198.51.100.7")
        );
        // Two headers form one list.
        assert_eq!(
            client_address(ip("10.0.0.2"), ["6.6.6.6", "198.51.100.7"].into_iter(), &trusted),
            ip("198.51.100.7")
        );
        // No header: the proxy itself. Only trusted entries: the furthest of them.
        assert_eq!(client_address(ip("10.0.0.2"), std::iter::empty(), &trusted), ip("10.0.0.2"));
        assert_eq!(client_address(ip("10.0.0.2"), ["10.9.9.9"].into_iter(), &trusted), ip("10.9.9.9"));
        // Garbage stops the walk.
        assert_eq!(client_address(ip("10.0.0.2"), ["1.1.1.1, junk"].into_iter(), &trusted), ip("10.0.0.2"));
        // IPv4-mapped IPv6 peers are their IPv4 address.
        assert_eq!(client_address(ip("::ffff:127.0.0.1"), ["5.5.5.5"].into_iter(), &trusted), ip("5.5.5.5"));
        assert_eq!(client_address(None, std::iter::empty(), &trusted), None);
    }

    #[test]
    fn ipv6_clients_share_a_64() {
        assert_eq!(client_key("2001:db8:1:2:aaaa::1".parse().unwrap()), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(client_key("192.0.2.1".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn limiter_counts_per_address() {
        let l = ClientLimiter::new(3);
        let (a, b) = (ip("127.0.0.2"), ip("127.0.0.1"));
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).unwrap_err();
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(l.check(b).is_ok());
        assert!(ClientLimiter::new(0).check(a).is_ok());
    }

    #[test]
    fn limiter_memory_is_bounded() {
        let l = ClientLimiter::new(1);
        for n in 0..(MAX_TRACKED_CLIENTS as u32 + 5_000) {
            let _ = l.check(Some(IpAddr::from((0x0a00_0000 + n).to_be_bytes())));
        }
        assert!(l.tracked() <= MAX_TRACKED_CLIENTS + 1024, "{} addresses tracked", l.tracked());
    }

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
