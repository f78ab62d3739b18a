//! `doctor`'s checks of the database (reachable, migrated, keyed with this key, audit chain
//! intact) and, when reset links go by email, of the mail server.

use super::{Check, Level, check};
use crate::cli::{key, mailer};
use crate::config::{Loaded, ResetDelivery};
use crate::service::AuthService;
use crate::service::audit::Verified;
use crate::service::db::{connect, pending};

pub(super) async fn database(loaded: &Loaded) -> Vec<Check> {
    let url = loaded.db.url.redacted();
    let db = match connect(&loaded.db).await {
        Ok(db) => db,
        Err(e) => return vec![check("database", Level::Fail, format!("{url} cannot be reached: {e}"))],
    };
    let mut out = vec![check("database", Level::Pass, format!("{url} answers"))];
    match pending(&db).await {
        Ok(p) if p.is_empty() => out.push(check("migrations", Level::Pass, "up to date")),
        Ok(p) => {
            out.push(check("migrations", Level::Fail, format!("{} pending: run `userauth db-setup`", p.len())));
            return out;
        }
        Err(e) => {
            out.push(check("migrations", Level::Fail, format!("cannot be read: {e}")));
            return out;
        }
    }
    let stored = crate::service::key_store::stored_fingerprint(&db).await.ok().flatten();
    let key = match key::configured(&loaded.settings) {
        Err(e) => {
            out.push(check("server_key", Level::Fail, e.to_string()));
            return out;
        }
        Ok(key::Configured::Missing(path)) => {
            out.push(match &stored {
                Some(fp) => check(
                    "server_key",
                    Level::Fail,
                    format!(
                        "key file {} is missing; the database expects the key with fingerprint {fp}",
                        path.display()
                    ),
                ),
                None => check(
                    "server_key",
                    Level::Warn,
                    format!("key file {} does not exist yet; `userauth db-setup` creates it", path.display()),
                ),
            });
            return out;
        }
        Ok(key::Configured::Key { key, source }) => {
            let ours = key.fingerprint();
            out.push(match &stored {
                Some(fp) if *fp == ours => {
                    check("server_key", Level::Pass, format!("{source}: fingerprint {ours} matches the database"))
                }
                Some(fp) => check(
                    "server_key",
                    Level::Fail,
                    format!("{source} has fingerprint {ours}, the database was set up with {fp}"),
                ),
                None => check(
                    "server_key",
                    Level::Warn,
                    format!(
                        "{source} (fingerprint {ours}) is not recorded in the database yet; run `userauth db-setup`"
                    ),
                ),
            });
            if stored.as_ref().is_some_and(|fp| *fp != ours) {
                return out;
            }
            key
        }
    };
    let svc = AuthService::new(db, loaded.settings.policy()).with_key(std::sync::Arc::new(key));
    out.push(match svc.verify_audit().await {
        Ok(Verified::Intact(n)) => check("audit_chain", Level::Pass, format!("{n} events, chain intact")),
        Ok(Verified::Broken { seq, reason }) => {
            check("audit_chain", Level::Fail, format!("broken at event {seq}: {reason}"))
        }
        Err(e) => check("audit_chain", Level::Fail, format!("cannot be read: {e}")),
    });
    out
}

pub(super) async fn mail(loaded: &Loaded) -> Vec<Check> {
    if loaded.settings.reset_delivery != ResetDelivery::Email {
        return Vec::new();
    }
    let mailer = match mailer(loaded) {
        Ok(Some(m)) => m,
        Ok(None) => return vec![check("mail_server", Level::Fail, "smtp_url and mail_from are not set")],
        Err(e) => return vec![check("mail_server", Level::Fail, e.to_string())],
    };
    let server = mailer.settings().server();
    vec![match mailer.check_server().await {
        Ok(()) => check("mail_server", Level::Pass, format!("{server} answers")),
        Err(e) => check("mail_server", Level::Fail, format!("{server}: {e}")),
    }]
}
