use anyhow::Context;

use crate::config::Loaded;
use crate::service::db::{connect_or_create, known_migrations, migrate};

pub async fn setup(loaded: &Loaded) -> anyhow::Result<()> {
    let url = loaded.db.url.redacted();
    let (db, created) = connect_or_create(&loaded.db).await.with_context(|| format!("cannot open database {url}"))?;
    if created {
        println!("created database {url}");
    }
    let applied = migrate(&db).await.context("applying migrations failed")?;
    let key = super::key::bind(&db, &loaded.settings).await?;
    if applied.is_empty() {
        println!("database {url} is up to date ({} migrations already applied)", known_migrations().len());
    } else {
        println!("database {url}: applied {} migration(s):", applied.len());
        for name in applied {
            println!("  {name}");
        }
    }
    println!("server key fingerprint {}", key.fingerprint());
    Ok(())
}
