//! bcrypt, kept off the async workers and bounded so a login flood cannot starve other requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OnceCell, Semaphore};

use super::AuthError;
use super::domain::{PASSWORD_MAX_BYTES, Password};

#[derive(Clone)]
pub struct Hasher {
    cost: u32,
    permits: Arc<Semaphore>,
    /// A hash of a throw-away password at the configured cost: logins for unknown emails verify
    /// against it so they take as long as logins with a wrong password.
    dummy: Arc<OnceCell<String>>,
    verifications: Arc<AtomicU64>,
}

impl Hasher {
    pub fn new(cost: u32, concurrency: usize) -> Self {
        Self {
            cost,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(OnceCell::new()),
            verifications: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many bcrypt verifications ran (real or dummy): lets tests prove both login paths do
    /// the same work.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AuthError> {
        let secret = password.expose().to_owned();
        let cost = self.cost;
        self.run(move || bcrypt::hash(secret, cost)).await
    }

    /// Verify `candidate` against `stored`, or against the dummy hash when there is no stored
    /// hash, so that both cases cost one bcrypt verification.
    pub async fn verify(&self, candidate: &str, stored: Option<&str>) -> Result<bool, AuthError> {
        let stored = match stored {
            Some(h) => h.to_owned(),
            None => self.dummy_hash().await?.to_owned(),
        };
        // bcrypt would silently ignore bytes past 72: such a password can never match.
        let too_long = candidate.len() > PASSWORD_MAX_BYTES;
        let candidate = candidate.to_owned();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = self
            .run(move || match bcrypt::verify(candidate, &stored) {
                Ok(ok) => Ok(ok),
                // A malformed stored hash matches nothing; it must not become a 500.
                Err(bcrypt::BcryptError::InvalidHash(_)) | Err(bcrypt::BcryptError::CostNotAllowed(_)) => Ok(false),
                Err(e) => Err(e),
            })
            .await?;
        Ok(matched && !too_long)
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
                getrandom::fill(&mut seed).map_err(|e| AuthError::Internal(e.to_string()))?;
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
        let _permit = self.permits.acquire().await.map_err(|e| AuthError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))?
            .map_err(|e| AuthError::Internal(format!("bcrypt: {e}")))
    }
}
