use anyhow::Context;

use crate::api;
use crate::config::Loaded;
use crate::service::AuthService;
use crate::service::db::{connect_or_create, migrate};

pub async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let url = loaded.db.url.redacted();
    let (db, created) = connect_or_create(&loaded.db).await.with_context(|| format!("cannot open database {url}"))?;
    if created {
        tracing::info!("created database {url}");
    }
    let applied = migrate(&db).await.context("applying migrations failed")?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied pending migrations");
    }
    let svc = AuthService::new(db, loaded.settings.policy())
        .with_fast_session_reads(&loaded.db.url)
        .with_mailer(super::mailer(&loaded)?)
        .with_metrics(loaded.settings.metrics.then(crate::service::metrics::Metrics::new));
    let svc = match loaded.settings.server_key()? {
        Some(key) => svc.with_key(key),
        None => svc,
    };
    svc.hasher().warm_up().await?;
    api::build(svc, &loaded).launch().await.map_err(|e| anyhow::anyhow!("server failed: {e}"))?;
    Ok(())
}
