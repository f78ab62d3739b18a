//! Values clap parses for us: event kinds, times and server URLs. A bad one is reported as before
//! these were typed: one `error: …` line and exit code 1 (not clap's usage error and code 2), so
//! each parser's error is a [`BadValue`] that `main` recognises with [`bad_value`].

use clap::builder::{PossibleValue, TypedValueParser};

use crate::service::audit::EventKind;

/// A value a typed argument refused, with the whole sentence to print.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadValue(String);

/// The sentence of a [`BadValue`] behind a clap error, if that is what the error is.
pub fn bad_value(e: &clap::Error) -> Option<String> {
    let source = std::error::Error::source(e)?;
    source.downcast_ref::<BadValue>().map(|b| b.0.clone())
}

/// `--kind`: one of the event kinds of api.md §9, listed in `--help` and the completions from
/// [`EventKind::ALL`] (the service's own list; it knows nothing of clap).
#[derive(Debug, Clone, Copy)]
pub struct EventKindParser;

impl TypedValueParser for EventKindParser {
    type Value = EventKind;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<EventKind, clap::Error> {
        // A plain function as the parser: clap keeps its error as the source (see `bad_value`).
        event_kind.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(EventKind::ALL.iter().map(|k| PossibleValue::new(k.as_str()))))
    }
}

fn event_kind(s: &str) -> Result<EventKind, BadValue> {
    EventKind::parse(s).ok_or_else(|| {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        BadValue(format!("unknown event kind {s:?}; one of: {}", known.join(", ")))
    })
}

/// `--since`: RFC 3339, or a plain date meaning that day's midnight UTC.
pub fn since(s: &str) -> Result<chrono::DateTime<chrono::Utc>, BadValue> {
    time("--since", s)
}

/// `--until`: as `--since`.
pub fn until(s: &str) -> Result<chrono::DateTime<chrono::Utc>, BadValue> {
    time("--until", s)
}

fn time(flag: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, BadValue> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(BadValue(format!("{flag} {s:?} is neither an RFC 3339 time (2026-11-29T08:00:00Z) nor a date (2026-11-29)")))
}

/// `doctor --url`: an http(s) URL with a host.
pub fn server_url(s: &str) -> Result<url::Url, BadValue> {
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
        _ => Err(BadValue(format!(
            "--url {s:?} is not an http(s) URL: give the scheme and host, e.g. http://localhost:5000"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_date_at_midnight_utc() {
        let t = since("2026-11-29T08:00:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T07:00:00+00:00");
        assert_eq!(until("2026-11-30").unwrap().to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert_eq!(
            since("yesterday").unwrap_err().to_string(),
            "--since \"yesterday\" is neither an RFC 3339 time (2026-11-29T08:00:00Z) nor a date (2026-11-29)"
        );
    }

    #[test]
    fn server_urls_need_an_http_scheme_and_a_host() {
        assert_eq!(server_url("http://localhost:5000").unwrap().as_str(), "http://localhost:5000/");
        for bad in ["localhost:5000", "ftp://example.com", "https://", "not a url"] {
            let err = server_url(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("--url {bad:?} is not an http(s) URL")), "{err}");
        }
    }

    #[test]
    fn a_bad_value_survives_clap_as_its_own_sentence() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Probe {
            #[arg(long, value_parser = EventKindParser)]
            kind: Option<EventKind>,
        }
        let probe = Probe::try_parse_from(["probe", "--kind", "login_failed"]).unwrap();
        assert_eq!(probe.kind, Some(EventKind::LoginFailed));
        let err = Probe::try_parse_from(["probe", "--kind", "nonsense"]).unwrap_err();
        let sentence = bad_value(&err).expect("our sentence");
        assert!(sentence.starts_with("unknown event kind \"nonsense\"; one of: registered, login_succeeded"));
        let usage = Probe::try_parse_from(["probe", "--colour"]).unwrap_err();
        assert_eq!(bad_value(&usage), None, "clap's own usage errors stay clap's");
    }
}
