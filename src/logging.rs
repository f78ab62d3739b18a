//! tracing set-up. Rocket's own `log` records are routed into the same subscriber.

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` wins; otherwise `level` for us and warnings only from the noisy libraries.
pub fn init(level: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{level},rocket=warn,_=warn,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,hyper=warn"))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // Failing here only means a subscriber is already installed (tests); keep that one.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
