//! Per-client limits (api.md §6): `client_rate_per_minute` per client address on the routes that
//! cost a bcrypt computation, with bounded memory.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use super::ClientAddr;
use crate::api::error::{ApiError, ErrorCode, remember};
use crate::service::hashing::client_key;

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
                    && let Some(m) = req.rocket().state::<crate::service::AuthService>().and_then(|s| s.metrics())
                {
                    m.login(crate::service::metrics::LoginResult::Throttled);
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

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
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
}
