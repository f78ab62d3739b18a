//! Where the service reads the time ([`Clock`]), and the conversion of configured durations to
//! the ones timestamps are compared with.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Where the service reads the time: the system clock, or one a test moves forward instead of
/// sleeping through timeouts.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    pub fn from_fn(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// A configured duration as a timestamp offset; one too large for chrono saturates (never panics).
pub(crate) fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
