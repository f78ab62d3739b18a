//! One log line per request (method, path, status, latency, request id) and the id echoed back as
//! `X-Request-Id`. Only the path is logged: never the query, headers, cookies or body. It also
//! counts each request into the metrics (api.md §9).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Data, Request, Response};

pub struct RequestLog {
    prefix: u32,
    counter: AtomicU64,
}

impl RequestLog {
    pub fn new() -> Self {
        let mut seed = [0u8; 4];
        // A process-random prefix keeps ids unique across instances; failure only makes it 0.
        let _ = getrandom::fill(&mut seed);
        Self { prefix: u32::from_le_bytes(seed), counter: AtomicU64::new(0) }
    }
}

impl Default for RequestLog {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone)]
struct Started {
    at: Instant,
    id: String,
}

#[rocket::async_trait]
impl Fairing for RequestLog {
    fn info(&self) -> Info {
        Info { name: "request log", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}{:08x}", self.prefix, n);
        req.local_cache(|| Some(Started { at: Instant::now(), id }));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let Some(started) = req.local_cache(|| None::<Started>).clone() else { return };
        let took = started.at.elapsed();
        let micros = took.as_micros();
        // Labelled by the matched route's pattern, never the raw path: a bounded set of values.
        if let Some(m) = req.rocket().state::<crate::service::AuthService>().and_then(|s| s.metrics()) {
            let route = req.route();
            let key = crate::service::metrics::HttpKey {
                route: route.map_or(0, |r| std::ptr::from_ref(r) as usize),
                method: req.method().as_str(),
                status: res.status().code,
            };
            let labels = || {
                // The path pattern alone: the query part (`?<next>&<reset>`) is not a different route.
                let pattern = route.map_or_else(|| "unmatched".to_owned(), |r| r.uri.path().to_owned());
                (pattern, req.method().as_str().to_owned())
            };
            m.http_request(key, labels, took);
        }
        tracing::info!(
            target: "userauth::request",
            method = %req.method(),
            path = %req.uri().path(),
            status = res.status().code,
            // A number (in JSON logs too), in milliseconds to the microsecond.
            latency_ms = micros as f64 / 1000.0,
            request_id = %started.id,
        );
        res.set_header(Header::new("X-Request-Id", started.id));
    }
}
