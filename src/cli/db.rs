//! `userauth db-setup`: the database created if needed, its migrations applied, the server key
//! bound; and how every command words a database it cannot open.

use anyhow::Context;
use clap::Args;

use crate::config::Loaded;
use crate::service::db::{DbOptions, connect_or_create, known_migrations, migrate};

/// A connection error as one sentence: our own explanations stand alone, the driver's are prefixed.
pub(crate) fn db_error(url: &str, e: sea_orm::DbErr) -> anyhow::Error {
    match e {
        sea_orm::DbErr::Custom(m) => anyhow::anyhow!(m),
        e => anyhow::Error::new(e).context(format!("cannot open database {url}")),
    }
}

#[derive(Debug, Args)]
pub struct DbSetup {}

impl DbSetup {
    pub async fn run(self, loaded: &Loaded) -> anyhow::Result<()> {
        let url = loaded.db.url.redacted();
        // db-setup is the one command that creates a SQLite file whatever the URL's mode.
        let opts = DbOptions { url: loaded.db.url.creating(), ..loaded.db.clone() };
        let (db, created) = connect_or_create(&opts).await.map_err(|e| db_error(&url, e))?;
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
}
