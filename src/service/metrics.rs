//! Metrics (api.md §9) through the `metrics` facade, rendered in Prometheus' text format.
//!
//! Each service owns its recorder (a local one, not the process-global): two services in one
//! process (tests, or a CLI command beside a server) count separately. Counting happens where the
//! event happens: account events in the service, HTTP requests in the request-log fairing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::names::names;

names! {
    /// `userauth_logins_total{result=…}`.
    pub enum LoginResult { Success => "success", Invalid => "invalid", Locked => "locked", Throttled => "throttled", Busy => "busy" }
}

names! {
    /// `userauth_password_resets_total{stage=…}`.
    pub enum ResetStage { Issued => "issued", Completed => "completed" }
}

names! {
    /// `userauth_second_factor_total{method=…}`.
    pub enum SecondFactorMethod { Totp => "totp", RecoveryCode => "recovery_code", Passkey => "passkey" }
}

names! {
    /// `userauth_second_factor_total{result=…}`.
    pub enum SecondFactorResult { Success => "success", Invalid => "invalid", Locked => "locked" }
}

/// Histogram buckets for request latencies (seconds).
const HTTP_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Buckets for one bcrypt computation (seconds): cost 4 is ~1 ms, cost 17 several seconds.
const HASH_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Handles of the HTTP series, by route, method and status (a bounded set: routes are fixed).
    http: RwLock<HashMap<HttpKey, (Counter, Histogram)>>,
    /// The process_* series, read at each scrape.
    process: metrics_process::Collector,
}

/// Which HTTP series a request belongs to: the matched route (its address in the router, stable
/// while the server runs; 0 when no route matched), the method and the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpKey {
    pub route: usize,
    pub method: &'static str,
    pub status: u16,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("userauth_http_request_duration_seconds".into()), HTTP_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("userauth_hash_seconds".into()), HASH_BUCKETS));
        // The bucket lists are constants and non-empty: this cannot fail; plain defaults otherwise.
        let recorder = builder.unwrap_or_else(|_| PrometheusBuilder::new()).build_recorder();
        let handle = recorder.handle();
        let process = metrics_process::Collector::default();
        let m = Arc::new(Self { recorder, handle, http: RwLock::new(HashMap::new()), process });
        // Every account series exists from the start, at zero: a rate over a series that appears
        // only on its first event would miss that event.
        m.with(|| {
            describe_counter!("userauth_http_requests_total", "HTTP requests by route pattern, method and status");
            describe_histogram!(
                "userauth_http_request_duration_seconds",
                Unit::Seconds,
                "HTTP request latency by route pattern"
            );
            describe_counter!("userauth_logins_total", "Login attempts by result");
            describe_counter!("userauth_registrations_total", "Accounts created");
            describe_counter!("userauth_password_resets_total", "Reset tokens issued and used");
            describe_counter!("userauth_password_changes_total", "Passwords changed by their owner");
            describe_gauge!("userauth_hash_queue_depth", "Requests running or waiting for a bcrypt slot");
            describe_histogram!("userauth_hash_seconds", Unit::Seconds, "Time of one bcrypt computation");
            describe_counter!("userauth_emails_total", "Reset emails sent, and failed or dropped");
            for result in LoginResult::ALL {
                counter!("userauth_logins_total", "result" => result.as_str()).absolute(0);
            }
            counter!("userauth_registrations_total").absolute(0);
            for stage in ResetStage::ALL {
                counter!("userauth_password_resets_total", "stage" => stage.as_str()).absolute(0);
            }
            counter!("userauth_password_changes_total").absolute(0);
            for result in ["sent", "failed"] {
                counter!("userauth_emails_total", "result" => result).absolute(0);
            }
            gauge!("userauth_hash_queue_depth").set(0.0);
            describe_counter!("userauth_second_factor_total", "Second-factor attempts by method and result");
            // Passkey series appear with their first event (as before the labels were typed).
            for method in [SecondFactorMethod::Totp, SecondFactorMethod::RecoveryCode] {
                for result in SecondFactorResult::ALL {
                    counter!("userauth_second_factor_total", "method" => method.as_str(), "result" => result.as_str())
                        .absolute(0);
                }
            }
            describe_gauge!("userauth_build_info", "Always 1; the version of the running binary in its label");
            gauge!("userauth_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            m.process.describe();
        });
        m
    }

    fn with(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f);
    }

    pub fn login(&self, result: LoginResult) {
        self.with(|| counter!("userauth_logins_total", "result" => result.as_str()).increment(1));
    }

    pub fn registration(&self) {
        self.with(|| counter!("userauth_registrations_total").increment(1));
    }

    pub fn password_reset(&self, stage: ResetStage) {
        self.with(|| counter!("userauth_password_resets_total", "stage" => stage.as_str()).increment(1));
    }

    pub fn second_factor(&self, method: SecondFactorMethod, result: SecondFactorResult) {
        self.with(|| {
            counter!("userauth_second_factor_total", "method" => method.as_str(), "result" => result.as_str())
                .increment(1);
        });
    }

    pub fn password_change(&self) {
        self.with(|| counter!("userauth_password_changes_total").increment(1));
    }

    pub fn hash_time(&self, took: Duration) {
        self.with(|| histogram!("userauth_hash_seconds").record(took.as_secs_f64()));
    }

    /// One HTTP request. `key` identifies the (route, method, status) triple cheaply; `labels`
    /// gives the route pattern (never the raw path) and method the first time that triple is seen.
    /// The series' handles are cached, so a request costs a map lookup and two atomic updates
    /// rather than building label sets (the hot path serves tens of thousands a second).
    pub fn http_request(&self, key: HttpKey, labels: impl FnOnce() -> (String, String), took: Duration) {
        let cached = self.http.read().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let (count, latency) = match cached {
            Some(handles) => handles,
            None => {
                let (route, method) = labels();
                let status = key.status.to_string();
                let mut handles = None;
                self.with(|| {
                    handles = Some((
                        counter!("userauth_http_requests_total", "route" => route.clone(), "method" => method, "status" => status),
                        histogram!("userauth_http_request_duration_seconds", "route" => route),
                    ));
                });
                let Some(handles) = handles else { return };
                self.http.write().unwrap_or_else(|p| p.into_inner()).insert(key, handles.clone());
                handles
            }
        };
        count.increment(1);
        latency.record(took.as_secs_f64());
    }

    /// Folds recorded histogram samples into their buckets. The exporter keeps raw samples until
    /// then, so without it memory would grow with every request between scrapes (or forever, with
    /// no scraper): `serve` runs it every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The exposition, with the gauges and mail counts read now.
    pub fn render(&self, queue_depth: usize, emails: Option<(u64, u64)>) -> String {
        self.with(|| {
            self.process.collect();
            gauge!("userauth_hash_queue_depth").set(queue_depth as f64);
            if let Some((sent, failed)) = emails {
                counter!("userauth_emails_total", "result" => "sent").absolute(sent);
                counter!("userauth_emails_total", "result" => "failed").absolute(failed);
            }
        });
        self.handle.render()
    }
}
