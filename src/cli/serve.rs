//! `userauth serve`: migrations applied, then the HTTP API served until a shutdown signal.

use std::net::IpAddr;

use anyhow::Context;
use clap::Args;

use crate::api;
use crate::config::Loaded;
use crate::service::AuthService;
use crate::service::db::{connect_or_create, migrate};

#[derive(Debug, Args)]
pub struct Serve {
    /// Address to listen on (default from the configuration: 0.0.0.0)
    #[arg(long, value_name = "A")]
    pub address: Option<IpAddr>,
    /// Port to listen on (default from the configuration: 5000)
    #[arg(long, value_name = "P")]
    pub port: Option<u16>,
}

impl Serve {
    /// `--address` and `--port` are in `loaded` already (they override the configuration).
    pub async fn run(self, loaded: Loaded) -> anyhow::Result<()> {
        serve(loaded).await
    }
}

async fn serve(loaded: Loaded) -> anyhow::Result<()> {
    let url = loaded.db.url.redacted();
    let (db, created) = connect_or_create(&loaded.db).await.map_err(|e| super::db::db_error(&url, e))?;
    if created {
        tracing::info!("created database {url}");
    }
    let applied = migrate(&db).await.context("applying migrations failed")?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied pending migrations");
    }
    let key = super::key::bind(&db, &loaded.settings).await?;
    let svc = AuthService::new(db, loaded.settings.policy())
        .with_key(key)
        .with_fast_session_reads(&loaded.db.url)
        .with_mailer(super::mailer(&loaded)?)
        .with_metrics(loaded.settings.metrics.then(crate::service::metrics::Metrics::new));
    svc.hasher().warm_up().await?;
    let shutdown = rocket::fairing::AdHoc::on_shutdown("shutdown log", |_| {
        Box::pin(async { tracing::info!("shutting down: finishing the requests in flight") })
    });
    let (address, port) = (loaded.settings.address, loaded.settings.port);
    api::build(svc, &loaded).attach(shutdown).launch().await.map_err(|e| match e.kind() {
        // Rocket's own words name neither the address nor what to do.
        rocket::error::ErrorKind::Bind(io) if io.kind() == std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot listen on {address}:{port}: the port is in use by another program (choose another with --port or port)"
        ),
        rocket::error::ErrorKind::Bind(io) => anyhow::anyhow!("cannot listen on {address}:{port}: {io}"),
        _ => anyhow::anyhow!("server failed: {e}"),
    })?;
    tracing::info!("userauth stopped");
    Ok(())
}
