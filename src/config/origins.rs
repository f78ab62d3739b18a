//! Origins and cookie domains in the configuration: `public_url`, `allowed_origins`,
//! `cookie_domain` and `allowed_redirect_origins`, each parsed once and named when invalid.

use std::net::IpAddr;

use super::{ConfigError, Settings};

impl Settings {
    /// `public_url`'s origin and the `allowed_origins`, each parsed; an unparseable one names its key.
    pub fn origins(&self) -> Result<(Option<String>, Vec<String>), ConfigError> {
        let own = optional(self.public_url.as_deref(), origin_of, ConfigError::PublicUrl)?;
        Ok((own, origin_list("allowed_origins", &self.allowed_origins)?))
    }

    /// `cookie_domain` (lower-cased, without a leading dot) and `allowed_redirect_origins`, each
    /// checked; an invalid one names its key.
    pub fn forward_auth(&self) -> Result<(Option<String>, Vec<String>), ConfigError> {
        let domain = optional(self.cookie_domain.as_deref(), cookie_domain_of, ConfigError::CookieDomain)?;
        Ok((domain, origin_list("allowed_redirect_origins", &self.allowed_redirect_origins)?))
    }
}

/// An optional key's value as `parse` reads it; `invalid` names the key when it does not parse.
fn optional(
    value: Option<&str>,
    parse: fn(&str) -> Option<String>,
    invalid: fn(String) -> ConfigError,
) -> Result<Option<String>, ConfigError> {
    value.map(|v| parse(v).ok_or_else(|| invalid(v.to_owned()))).transpose()
}

/// Each entry of the list `key` as an origin; the first that is not one names the key.
fn origin_list(key: &'static str, list: &[String]) -> Result<Vec<String>, ConfigError> {
    list.iter().map(|o| origin_of(o).ok_or_else(|| ConfigError::NotAnOrigin { key, value: o.clone() })).collect()
}

/// The ASCII serialisation of a URL's origin (`https://host[:port]`), for http(s) URLs only.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return None;
    }
    Some(parsed.origin().ascii_serialization())
}

/// A cookie `Domain`: a DNS name (letters, digits, `-`, dots between labels), lower-cased, a
/// leading dot dropped (browsers ignore it). No IP address, port, scheme or path.
pub fn cookie_domain_of(value: &str) -> Option<String> {
    let d = value.trim().trim_start_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let ok = !d.is_empty() && d.len() <= 253 && d.split('.').all(label_ok) && d.parse::<IpAddr>().is_err()
        // The last label of a DNS name is never all digits (that would be an IPv4 address).
        && !d.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some(d)
}
