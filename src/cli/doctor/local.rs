//! `doctor`'s checks of this machine's configuration: bcrypt cost, cookies, reset exposure,
//! client limits, own origin, metrics, password blocklist, passkeys and cookie domain.

use super::{Check, Level, check};
use crate::config::{Loaded, MIN_BCRYPT_COST, ResetDelivery};

pub(super) fn configuration(loaded: &Loaded) -> Vec<Check> {
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
