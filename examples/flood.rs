//! The benchmark's flood phase (bench/run.sh): 64 keep-alive clients (reqwest) from 127.0.0.2 post wrong-password
//! logins for random emails as fast as they can, while one client on 127.0.0.1 logs in 20 times in
//! a row with the right password and another requests `/health` every 10 ms. Bounded: it stops
//! after the legitimate logins (or `--seconds`), and only talks to loopback.
//!
//! `cargo run --release --example flood -- PORT EMAIL PASSWORD [SECONDS]`
//! Prints `flood_login_ok=N flood_login_p99_ms=X flood_health_p99_ms=Y flood_requests=N flood_statuses=…`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

const FLOOD_CONNECTIONS: usize = 64;
const LEGIT_LOGINS: usize = 20;

/// One client per simulated connection: HTTP/1.1 keep-alive from `from`, one pooled connection
/// (reconnected by the client when the server closes it).
fn client(from: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(from))
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// One request; its status, or `None` when it failed (refused, reset, timed out).
async fn request(client: &reqwest::Client, req: reqwest::RequestBuilder) -> Option<u16> {
    let resp = client.execute(req.build().ok()?).await.ok()?;
    let status = resp.status().as_u16();
    // The whole body, so that the connection can carry the next request.
    resp.bytes().await.ok()?;
    Some(status)
}

fn p99(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.99).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(email), Some(password)) =
        (args.get(1).and_then(|p| p.parse::<u16>().ok()), args.get(2), args.get(3))
    else {
        eprintln!("usage: flood PORT EMAIL PASSWORD [SECONDS]");
        std::process::exit(2);
    };
    let limit = Duration::from_secs(args.get(4).and_then(|s| s.parse().ok()).unwrap_or(120));
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));

    let base = format!("http://127.0.0.1:{port}");
    let mut flooders = Vec::new();
    for c in 0..FLOOD_CONNECTIONS {
        let (stop, statuses, login) = (stop.clone(), statuses.clone(), format!("{base}/api/v1/session"));
        flooders.push(tokio::spawn(async move {
            let mut local = BTreeMap::<u16, u64>::new();
            let flooder = client([127, 0, 0, 2]);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (email, password) = (format!("flood{c}x{i}@example.com"), format!("wrong password {i}"));
                let req = flooder.post(&login).form(&[("email", email), ("password", password)]);
                match request(&flooder, req).await {
                    Some(s) => *local.entry(s).or_default() += 1,
                    // The server is not reachable (yet, or any more): do not spin.
                    None => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            let mut all = statuses.lock().await;
            for (s, n) in local {
                *all.entry(s).or_default() += n;
            }
        }));
    }

    let (health_stop, health_url) = (stop.clone(), format!("{base}/health"));
    let health = tokio::spawn(async move {
        let mut lat = Vec::new();
        let checker = client([127, 0, 0, 1]);
        while !health_stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            match request(&checker, checker.get(&health_url)).await {
                Some(200) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                Some(_) => lat.push(f64::INFINITY),
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        lat
    });

    // Let the flood build up before the legitimate user arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let (mut ok, mut login_lat) = (0usize, Vec::new());
    let user = client([127, 0, 0, 1]);
    for _ in 0..LEGIT_LOGINS {
        if started.elapsed() > limit {
            break;
        }
        let t = Instant::now();
        let req = user.post(format!("{base}/api/v1/session")).form(&[("email", email), ("password", password)]);
        if request(&user, req).await == Some(200) {
            ok += 1;
        }
        login_lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.await;
    }
    let health_lat = health.await.unwrap_or_default();
    let statuses = statuses.lock().await;
    let total: u64 = statuses.values().sum();
    let by_status: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    println!(
        "flood_login_ok={ok} flood_login_p99_ms={:.1} flood_health_p99_ms={:.2} flood_requests={total} flood_statuses={}",
        p99(login_lat),
        p99(health_lat),
        by_status.join(",")
    );
}
