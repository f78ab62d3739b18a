//! The benchmark's flood phase (bench/run.sh): 64 connections from 127.0.0.2 post wrong-password
//! logins for random emails as fast as they can, while one client on 127.0.0.1 logs in 20 times in
//! a row with the right password and another requests `/health` every 10 ms. Bounded: it stops
//! after the legitimate logins (or `--seconds`), and only talks to loopback.
//!
//! `cargo run --release --example flood -- PORT EMAIL PASSWORD [SECONDS]`
//! Prints `flood_login_ok=N flood_login_p99_ms=X flood_health_p99_ms=Y flood_requests=N flood_statuses=…`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;

const FLOOD_CONNECTIONS: usize = 64;
const LEGIT_LOGINS: usize = 20;

async fn connect(from: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    let stream = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One request on a keep-alive connection; returns the status. Reads exactly one response
/// (our server always sends Content-Length).
async fn request(conn: &mut TcpStream, method: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Ok(status);
    }
}

fn p99(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.99).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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

    let mut flooders = Vec::new();
    for c in 0..FLOOD_CONNECTIONS {
        let (stop, statuses) = (stop.clone(), statuses.clone());
        flooders.push(tokio::spawn(async move {
            let mut local = BTreeMap::<u16, u64>::new();
            let mut conn = None;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() {
                    conn = connect([127, 0, 0, 2], port).await.ok();
                }
                let Some(stream) = conn.as_mut() else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                i += 1;
                let body = format!("email=flood{c}x{i}%40example.com&password=wrong%20password%20{i}");
                match request(stream, "POST", "/api/v1/session", &body).await {
                    Ok(s) => *local.entry(s).or_default() += 1,
                    Err(_) => conn = None,
                }
            }
            let mut all = statuses.lock().await;
            for (s, n) in local {
                *all.entry(s).or_default() += n;
            }
        }));
    }

    let health_stop = stop.clone();
    let health = tokio::spawn(async move {
        let mut lat = Vec::new();
        let mut conn = connect([127, 0, 0, 1], port).await.ok();
        while !health_stop.load(Ordering::Relaxed) {
            if conn.is_none() {
                conn = connect([127, 0, 0, 1], port).await.ok();
            }
            if let Some(stream) = conn.as_mut() {
                let t = Instant::now();
                match request(stream, "GET", "/health", "").await {
                    Ok(200) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                    Ok(_) => lat.push(f64::INFINITY),
                    Err(_) => conn = None,
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        lat
    });

    // Let the flood build up before the legitimate user arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let body = format!("email={}&password={}", encode(email), encode(password));
    let (mut ok, mut login_lat) = (0usize, Vec::new());
    let mut conn = connect([127, 0, 0, 1], port).await.ok();
    for _ in 0..LEGIT_LOGINS {
        if started.elapsed() > limit {
            break;
        }
        if conn.is_none() {
            conn = connect([127, 0, 0, 1], port).await.ok();
        }
        let Some(stream) = conn.as_mut() else { continue };
        let t = Instant::now();
        match request(stream, "POST", "/api/v1/session", &body).await {
            Ok(200) => ok += 1,
            Ok(_) => {}
            Err(_) => conn = None,
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
