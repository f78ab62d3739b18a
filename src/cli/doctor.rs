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

/// What a line describes: this machine's configuration and database, or the server at `--url`
/// (which may run with another configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Scope {
    Local,
    Server,
}

#[derive(Debug, serde::Serialize)]
struct Check {
    check: &'static str,
    status: Level,
    detail: String,
    scope: Scope,
}

fn check(check: &'static str, status: Level, detail: impl Into<String>) -> Check {
    Check { check, status, detail: detail.into(), scope: Scope::Local }
}

pub async fn run(loaded: &Loaded, url: Option<&str>, json: bool) -> anyhow::Result<()> {
    let mut checks = configuration(loaded);
    checks.extend(database(loaded).await);
    checks.extend(mail(loaded).await);
    if let Some(url) = url {
        let base = server_base(url)?;
        checks.extend(server(&base).await.into_iter().map(|c| Check { scope: Scope::Server, ..c }));
    }
    let mut out = std::io::stdout().lock();
    let mut scope = None;
    for c in &checks {
        // With --url, say which lines are about this machine and which about the server there.
        if let (false, Some(url)) = (json, url)
            && scope != Some(c.scope)
        {
            scope = Some(c.scope);
            match c.scope {
                Scope::Local => {
                    writeln!(out, "This machine's configuration (Rocket.toml, ROCKET_*, DATABASE_URL) and database:")?
                }
                Scope::Server => writeln!(
                    out,
                    "The server at {} (checked over HTTP; it may run with another configuration):",
                    url.trim_end_matches('/')
                )?,
            }
        }
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
        // The contract's default (api.md §1): advice, not a failure of a fresh install.
        (true, false) => check(
            "reset_exposure",
            Level::Warn,
            format!(
                "the reset endpoint hands tokens to anyone who can reach {} (the original service's behaviour, \
                 the default): set reset_delivery = \"email\" or reset_endpoint = false, or keep the port private",
                s.address
            ),
        ),
        (true, true) => check(
            "reset_exposure",
            Level::Warn,
            "the reset endpoint hands out tokens; safe only while the port stays private",
        ),
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
    // DNS rebinding (api.md §14): without public_url the own origin comes from the Host header.
    out.push(match (&s.public_url, loopback) {
        (None, false) => check(
            "own_origin",
            Level::Warn,
            format!(
                "public_url is unset and serve binds {}: the own origin then comes from the Host header, \
                 which a DNS-rebinding attacker chooses; set public_url",
                s.address
            ),
        ),
        (None, true) => check("own_origin", Level::Pass, "loopback address; the own origin comes from Host"),
        (Some(u), _) => check("own_origin", Level::Pass, format!("own origin from public_url {u}")),
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
    // api.md §13: the sizes of both common-password lists.
    let built_in = crate::service::password_policy::built_in_len();
    out.push(match &s.password_blocklist_file {
        Some(path) => check(
            "password_blocklist",
            Level::Pass,
            format!("{built_in} built-in common passwords + {} from {}", s.blocklist.operator_len(), path.display()),
        ),
        None => check(
            "password_blocklist",
            Level::Pass,
            format!("{built_in} built-in common passwords (no password_blocklist_file)"),
        ),
    });
    out.push(passkeys(&s.public_base_url()));
    out.extend(cookie_domain(s));
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

/// `cookie_domain` (api.md §12): `public_url`'s host must be inside it (browsers drop a cookie
/// whose domain does not match the host that sets it), and a public suffix would hand the session
/// to every site under it. The suffix list is a small built-in one, not the full Public Suffix List.
fn cookie_domain(s: &crate::config::Settings) -> Option<Check> {
    use crate::api::forward::{host_in_domain, is_public_suffix};
    let domain = crate::config::cookie_domain_of(s.cookie_domain.as_deref()?)?;
    if is_public_suffix(&domain) {
        return Some(check(
            "cookie_domain",
            Level::Warn,
            format!(
                "{domain} is a public suffix: every site under it would receive the session cookie (and browsers refuse it)"
            ),
        ));
    }
    let host =
        s.public_url.as_deref().and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_owned));
    Some(match host {
        Some(host) if host_in_domain(&host, &domain) => check(
            "cookie_domain",
            Level::Pass,
            format!("cookies for {domain} and its subdomains; public_url's host {host} is inside it"),
        ),
        Some(host) => check(
            "cookie_domain",
            Level::Fail,
            format!(
                "public_url's host {host} is not inside cookie_domain {domain}: browsers would refuse the session cookie"
            ),
        ),
        None => check(
            "cookie_domain",
            Level::Pass,
            format!("cookies for {domain} and its subdomains (public_url is unset)"),
        ),
    })
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
    let stored = crate::service::key_store::stored_fingerprint(&db).await.ok().flatten();
    let key = match super::key::configured(&loaded.settings) {
        Err(e) => {
            out.push(check("server_key", Level::Fail, e.to_string()));
            return out;
        }
        Ok(super::key::Configured::Missing(path)) => {
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
        Ok(super::key::Configured::Key { key, source }) => {
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

/// `--url` as an http(s) base URL, or one line saying what to give instead.
fn server_base(url: &str) -> anyhow::Result<String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(url.trim_end_matches('/').to_owned())
        }
        _ => bail!("--url {url:?} is not an http(s) URL: give the scheme and host, e.g. http://localhost:5000"),
    }
}

/// Why a request to the server failed, in words: refused, timed out, or TLS.
fn unreachable(base: &str, e: &reqwest::Error) -> String {
    let host = reqwest::Url::parse(base)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| base.to_owned());
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    format!("nothing answers at {host}: connection refused (is the server running?)")
                }
                _ => format!("cannot reach {host}: {io}"),
            };
        }
        source = err.source();
    }
    if e.is_timeout() {
        format!("{host} did not answer within 10 seconds")
    } else {
        format!("cannot reach {host}: {}", e.to_string().trim_end_matches(&format!(" for url ({base}/health)")))
    }
}

async fn server(base: &str) -> Vec<Check> {
    let client = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => return vec![check("server", Level::Fail, e.to_string())],
    };
    let health = match client.get(format!("{base}/health")).send().await {
        Ok(r) => r,
        Err(e) => return vec![check("server_health", Level::Fail, unreachable(base, &e))],
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
        Err(e) => check("metrics_exposed", Level::Warn, format!("GET /metrics: {}", unreachable(base, &e))),
    });
    out
}
