//! `doctor --url`'s checks of a running server over HTTP(S): health, security headers and
//! whether `/metrics` is readable without a token.

use super::{Check, Level, check};

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

pub(super) async fn server(base: &str) -> Vec<Check> {
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
