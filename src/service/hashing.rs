//! bcrypt, kept off the async workers and bounded twice: at most `concurrency` hashes run at once,
//! and at most `queue_max` requests wait for one. A request that finds the queue full is refused
//! at once ([`AuthError::Busy`]) instead of queueing for as long as a flood lasts.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use super::domain::{PASSWORD_MAX_BYTES, Password};
use super::{AuthError, InternalError};

/// The bcrypt costs we store, accept in configuration and accept on import (api.md §6). Above 17
/// one verification takes many seconds on today's machines; a hash of cost 31 would take days.
pub const COST_MIN: u32 = 4;
pub const COST_MAX: u32 = 17;

/// A stored hash we are willing to verify against: bcrypt's own parser accepts it, with a
/// `$2a$`/`$2b$`/`$2y$` prefix and a cost in [`COST_MIN`]..=[`COST_MAX`]. Returns its cost.
pub fn parse_stored_hash(hash: &str) -> Option<u32> {
    let parts = bcrypt::HashParts::from_str(hash).ok()?;
    let prefix_ok = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    (prefix_ok && (COST_MIN..=COST_MAX).contains(&parts.get_cost())).then(|| parts.get_cost())
}

#[derive(Clone)]
pub struct Hasher {
    cost: u32,
    /// One permit per running hash.
    workers: Arc<Semaphore>,
    /// One permit per request that runs or waits: `concurrency + queue_max` in all.
    admission: Arc<Semaphore>,
    capacity: usize,
    /// A hash of a throw-away password at the configured cost: logins for unknown emails verify
    /// against it so they take as long as logins with a wrong password.
    dummy: Arc<OnceCell<String>>,
    verifications: Arc<AtomicU64>,
    /// Places held per client address: one address never holds more places than there are
    /// hashing threads, so a flood from one client cannot queue ahead of everyone else.
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_client_max: usize,
    metrics: Option<Arc<super::metrics::Metrics>>,
}

/// A place in the hashing queue, taken before any other work of a request that needs bcrypt.
pub struct HashTicket {
    hasher: Hasher,
    client: Option<IpAddr>,
    _place: OwnedSemaphorePermit,
}

impl Drop for HashTicket {
    fn drop(&mut self) {
        if let Some(client) = self.client {
            let mut map = self.hasher.per_client.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&client) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&client);
                }
            }
        }
    }
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64 (the block one
/// subscriber usually holds; otherwise one host could take a fresh address for every request).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

impl Hasher {
    pub fn new(cost: u32, concurrency: usize, queue_max: usize) -> Self {
        let concurrency = concurrency.max(1);
        let capacity = concurrency + queue_max;
        Self {
            cost,
            workers: Arc::new(Semaphore::new(concurrency)),
            admission: Arc::new(Semaphore::new(capacity)),
            capacity,
            dummy: Arc::new(OnceCell::new()),
            verifications: Arc::new(AtomicU64::new(0)),
            per_client: Arc::new(Mutex::new(HashMap::new())),
            per_client_max: concurrency,
            metrics: None,
        }
    }

    /// Times every bcrypt computation into `userauth_hash_seconds`.
    pub fn set_metrics(&mut self, metrics: Option<Arc<super::metrics::Metrics>>) {
        self.metrics = metrics;
    }

    /// How many bcrypt verifications ran (real or dummy): lets tests prove both login paths do
    /// the same work.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Requests holding a place in the queue (running or waiting).
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// A place in the queue for a request from `client`, or [`AuthError::Busy`] at once when the
    /// queue is full or this client already holds its share of it.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<HashTicket, AuthError> {
        let place = self.admission.clone().try_acquire_owned().map_err(|_| AuthError::Busy)?;
        let client = client.map(client_key);
        if let Some(c) = client {
            let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            let held = map.entry(c).or_insert(0);
            if *held >= self.per_client_max {
                return Err(AuthError::Busy);
            }
            *held += 1;
        }
        Ok(HashTicket { hasher: self.clone(), client, _place: place })
    }

    /// A place in the queue, waiting for one: for operator commands (imports), never for requests.
    pub async fn admit_waiting(&self) -> Result<HashTicket, AuthError> {
        let place = self.admission.clone().acquire_owned().await.map_err(InternalError::from)?;
        Ok(HashTicket { hasher: self.clone(), client: None, _place: place })
    }

    /// Whether a verified hash should be replaced by one at the configured cost and `$2b$` prefix.
    pub fn needs_upgrade(&self, stored: &str) -> bool {
        parse_stored_hash(stored) != Some(self.cost) || !stored.starts_with("$2b$")
    }

    /// Computes the dummy hash now rather than on the first unknown-email login, whose extra
    /// hashing time would otherwise stand out.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        self.dummy_hash().await.map(|_| ())
    }

    async fn dummy_hash(&self) -> Result<&str, AuthError> {
        let cost = self.cost;
        self.dummy
            .get_or_try_init(|| async move {
                let mut seed = [0u8; 16];
                getrandom::fill(&mut seed).map_err(InternalError::from)?;
                self.run(move || bcrypt::hash(hex::encode(seed), cost)).await
            })
            .await
            .map(String::as_str)
    }

    async fn run<T, F>(&self, work: F) -> Result<T, AuthError>
    where
        F: FnOnce() -> Result<T, bcrypt::BcryptError> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self.workers.acquire().await.map_err(InternalError::from)?;
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(InternalError::from)?
            .map_err(|e| InternalError::from(e).into());
        if let Some(m) = &self.metrics {
            m.hash_time(started.elapsed());
        }
        result
    }
}

impl HashTicket {
    pub async fn hash(&self, password: &Password) -> Result<String, AuthError> {
        self.hash_secret(password.expose()).await
    }

    /// Hashes a password already verified against a stored hash (the upgrade on login), which
    /// may predate the current length policy.
    pub(super) async fn hash_secret(&self, secret: &str) -> Result<String, AuthError> {
        // `non_truncating_hash` would refuse exactly 72 bytes, which the policy allows; longer
        // secrets never get here (they are refused, or never verify).
        if secret.len() > PASSWORD_MAX_BYTES {
            return Err(InternalError::SecretTooLong.into());
        }
        let (secret, cost) = (secret.to_owned(), self.hasher.cost);
        self.hasher.run(move || bcrypt::hash(secret, cost)).await
    }

    /// Verify `candidate` against `stored`, or against the dummy hash when there is no stored
    /// hash we would verify against (none, malformed, or a cost out of range), so that every
    /// case costs one bcrypt verification at the configured cost.
    pub async fn verify(&self, candidate: &str, stored: Option<&str>) -> Result<bool, AuthError> {
        let usable = stored.filter(|h| parse_stored_hash(h).is_some());
        let real = usable.is_some();
        let stored = match usable {
            Some(h) => h.to_owned(),
            None => self.hasher.dummy_hash().await?.to_owned(),
        };
        // bcrypt would silently ignore bytes past 72: such a password can never match.
        let too_long = candidate.len() > PASSWORD_MAX_BYTES;
        let candidate = candidate.to_owned();
        self.hasher.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = self
            .hasher
            .run(move || match bcrypt::verify(candidate, &stored) {
                Ok(ok) => Ok(ok),
                // A stored hash bcrypt cannot read matches nothing; it must not become a 500.
                Err(bcrypt::BcryptError::InvalidHash(_)) | Err(bcrypt::BcryptError::CostNotAllowed(_)) => Ok(false),
                Err(e) => Err(e),
            })
            .await?;
        Ok(real && matched && !too_long)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHP: &str = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";

    #[test]
    fn stored_hashes_are_parsed_by_bcrypt() {
        assert_eq!(parse_stored_hash(PHP), Some(10));
        assert_eq!(parse_stored_hash(&PHP.replacen("$2y$", "$2a$", 1)), Some(10));
        assert_eq!(parse_stored_hash(&PHP.replacen("$2y$", "$2x$", 1)), None);
        assert_eq!(parse_stored_hash(&PHP.replacen("$10$", "$03$", 1)), None);
        assert_eq!(parse_stored_hash(&PHP.replacen("$10$", "$18$", 1)), None);
        assert_eq!(parse_stored_hash(&PHP.replacen("$10$", "$31$", 1)), None);
        assert_eq!(parse_stored_hash(&PHP.replacen("$10$", "$17$", 1)), Some(17));
        assert_eq!(parse_stored_hash(&PHP[..59]), None);
        assert_eq!(parse_stored_hash(&format!("{}!", &PHP[..59])), None);
        assert_eq!(parse_stored_hash("plain text"), None);
    }

    #[test]
    fn upgrade_when_cost_or_prefix_differ() {
        let h = Hasher::new(10, 1, 0);
        assert!(h.needs_upgrade(PHP), "$2y$ prefix");
        assert!(!h.needs_upgrade(&PHP.replacen("$2y$", "$2b$", 1)));
        assert!(Hasher::new(12, 1, 0).needs_upgrade(&PHP.replacen("$2y$", "$2b$", 1)), "cost 10 < 12");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let h = Hasher::new(4, 1, 2);
        let tickets: Vec<_> = (0..3).map(|_| h.admit(None).expect("room for 1 running + 2 waiting")).collect();
        assert_eq!(h.queue_depth(), 3);
        assert!(matches!(h.admit(None), Err(AuthError::Busy)));
        drop(tickets);
        assert_eq!(h.queue_depth(), 0);
        assert!(h.admit(None).is_ok());
    }

    #[tokio::test]
    async fn one_client_holds_at_most_its_share() {
        let h = Hasher::new(4, 2, 10);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let held: Vec<_> = (0..2).map(|_| h.admit(Some(a)).unwrap()).collect();
        assert!(matches!(h.admit(Some(a)), Err(AuthError::Busy)), "a third place for the same client");
        assert_eq!(h.queue_depth(), 2, "the refused request gave its place back");
        let other = h.admit(Some(b)).expect("another client still gets in");
        drop(held);
        assert!(h.admit(Some(a)).is_ok(), "places come back when requests end");
        drop(other);
        assert!(h.per_client.lock().unwrap().len() <= 1, "no entries left behind for finished clients");
        // IPv6 clients share their /64.
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let _x = (h.admit(Some(v6)).unwrap(), h.admit(Some("2001:db8::2".parse().unwrap())).unwrap());
        assert!(matches!(h.admit(Some("2001:db8::3".parse().unwrap())), Err(AuthError::Busy)));
    }
}
