//! `userauth doctor`: the deployment checked against its own security advice (api.md §9). Each
//! check prints one line, `PASS`, `WARN` or `FAIL` and why; any FAIL makes the exit code 1.

use std::io::Write;

use anyhow::bail;

use super::mailer;
use crate::config::{Loaded, MIN_BCRYPT_COST, ResetDelivery};
use crate::service::AuthService;
use crate::service::audit::Verified;
use crate::service::db::{connect, pending};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum Level {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, serde::Serialize)]
struct Check {
    check: &'static str,
    status: Level,
    detail: String,
}

fn check(check: &'static str, status: Level, detail: impl Into<String>) -> Check {
    Check { check, status, detail: detail.into() }
}

pub async fn run(loaded: &Loaded, url: Option<&str>, json: bool) -> anyhow::Result<()> {
    let mut checks = configuration(loaded);
    checks.extend(database(loaded).await);
    checks.extend(mail(loaded).await);
    if let Some(url) = url {
        checks.extend(server(url.trim_end_matches('/')).await);
    }
    let mut out = std::io::stdout().lock();
    for c in &checks {
        if json {
            writeln!(out, "{}", serde_json::to_string(c)?)?;
        } else {
            let level = match c.status {
                Level::Pass => "PASS",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            writeln!(out, "{level}  {:<18} {}", c.check, c.detail)?;
        }
    }
    let failed = checks.iter().filter(|c| c.status == Level::Fail).count();
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

fn configuration(loaded: &Loaded) -> Vec<Check> {
    let s = &loaded.settings;
    let loopback = s.address.is_loopback();
    let mut out = Vec::new();
    out.push(match s.bcrypt_cost {
        c if c < MIN_BCRYPT_COST => {
            check("bcrypt_cost", Level::Fail, format!("{c}: far too cheap to slow down a stolen database"))
        }
        c if c < 12 => check("bcrypt_cost", Level::Warn, format!("{c}: below the default of 12")),
        c => check("bcrypt_cost", Level::Pass, format!("{c}")),
    });
    let https = s.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    out.push(match (https, s.cookie_secure) {
        (true, false) => check(
            "cookie_secure",
            Level::Fail,
            "public_url is https but cookie_secure = false: session cookies may travel over plain HTTP",
        ),
        (_, true) => check("cookie_secure", Level::Pass, "session cookies are Secure (and HSTS is sent)"),
        (false, false) if s.public_url.is_none() && !loopback => check(
            "cookie_secure",
            Level::Warn,
            "public_url is unset: behind HTTPS, set public_url and cookie_secure = true",
        ),
        (false, false) => check("cookie_secure", Level::Pass, "plain HTTP deployment (no https public_url)"),
    });
    let exposed = s.reset_endpoint && s.reset_delivery == ResetDelivery::Response;
    out.push(match (exposed, loopback) {
        (true, false) => check(
            "reset_exposure",
            Level::Fail,
            format!(
                "the reset endpoint hands tokens to anyone who can reach {}: set reset_delivery = \"email\" or reset_endpoint = false",
                s.address
            ),
        ),
        (true, true) => check("reset_exposure", Level::Warn, "the reset endpoint hands out tokens; safe only while the port stays private"),
        (false, _) if s.reset_endpoint => check("reset_exposure", Level::Pass, "reset links go by email"),
        (false, _) => check("reset_exposure", Level::Pass, "the reset endpoint is not mounted"),
    });
    out.push(if s.client_rate_per_minute == 0 {
        check(
            "client_limits",
            Level::Warn,
            "client_rate_per_minute = 0: one address can use all of the hashing capacity",
        )
    } else {
        check(
            "client_limits",
            Level::Pass,
            format!("{} bcrypt-costing requests per address per minute", s.client_rate_per_minute),
        )
    });
    out.push(match (s.metrics, s.metrics_token.is_some(), loopback) {
        (true, false, false) => check(
            "metrics_exposure",
            Level::Warn,
            "GET /metrics is readable by anyone who reaches the port: set metrics_token",
        ),
        (true, true, _) => check("metrics_exposure", Level::Pass, "GET /metrics needs the metrics token"),
        (true, false, true) => check("metrics_exposure", Level::Pass, "GET /metrics is served on a loopback address"),
        (false, _, _) => check("metrics_exposure", Level::Pass, "metrics are off"),
    });
    out.push(passkeys(&s.public_base_url()));
    out
}

/// Passkeys (api.md §11) need a relying-party id that is a domain: browsers refuse IP addresses.
fn passkeys(public_url: &str) -> Check {
    match crate::service::passkeys::RelyingParty::from_public_url(public_url) {
        Ok(rp) => check("passkeys", Level::Pass, format!("relying party {} at {}", rp.id(), rp.origin())),
        Err(e) => {
            check("passkeys", Level::Warn, format!("passkeys are unavailable: {e}; set public_url to a domain name"))
        }
    }
}

async fn database(loaded: &Loaded) -> Vec<Check> {
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
    let svc = AuthService::new(db, loaded.settings.policy());
    out.push(match svc.verify_audit().await {
        Ok(Verified::Intact(n)) => check("audit_chain", Level::Pass, format!("{n} events, chain intact")),
        Ok(Verified::Broken { seq, reason }) => {
            check("audit_chain", Level::Fail, format!("broken at event {seq}: {reason}"))
        }
        Err(e) => check("audit_chain", Level::Fail, format!("cannot be read: {e}")),
    });
    out
}

async fn mail(loaded: &Loaded) -> Vec<Check> {
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

async fn server(base: &str) -> Vec<Check> {
    let client = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => return vec![check("server", Level::Fail, e.to_string())],
    };
    let health = match client.get(format!("{base}/health")).send().await {
        Ok(r) => r,
        Err(e) => return vec![check("server_health", Level::Fail, format!("{base}/health: {e}"))],
    };
    let mut out = vec![if health.status() == reqwest::StatusCode::OK {
        check("server_health", Level::Pass, format!("{base}/health answers 200"))
    } else {
        check("server_health", Level::Fail, format!("{base}/health answers {}", health.status()))
    }];
    let h = health.headers();
    let mut missing = Vec::new();
    for (name, value) in [("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer")] {
        if h.get(name).and_then(|v| v.to_str().ok()) != Some(value) {
            missing.push(format!("{name}: {value}"));
        }
    }
    if base.starts_with("https://") && h.get("strict-transport-security").is_none() {
        missing.push("strict-transport-security (set cookie_secure = true)".into());
    }
    out.push(if missing.is_empty() {
        check("security_headers", Level::Pass, "present")
    } else {
        check("security_headers", Level::Fail, format!("missing {}", missing.join(", ")))
    });
    let remote = !reqwest::Url::parse(base).ok().and_then(|u| u.host_str().map(str::to_owned)).is_some_and(|h| {
        h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || h == "[::1]"
    });
    out.push(match client.get(format!("{base}/metrics")).send().await.map(|r| r.status().as_u16()) {
        Ok(200) if remote => check("metrics_exposed", Level::Fail, "GET /metrics is readable without a token"),
        Ok(200) => check("metrics_exposed", Level::Warn, "GET /metrics is readable without a token (loopback)"),
        Ok(401) => check("metrics_exposed", Level::Pass, "GET /metrics needs a token"),
        Ok(404) => check("metrics_exposed", Level::Pass, "metrics are not served"),
        Ok(code) => check("metrics_exposed", Level::Warn, format!("GET /metrics answered {code}")),
        Err(e) => check("metrics_exposed", Level::Warn, format!("GET /metrics: {e}")),
    });
    out
}
