//! Waiting for a condition instead of sleeping, and ports without races: servers bind port 0 and
//! report what they got; the few programs that must be told a port up front go through
//! `on_a_free_port`, which retries when another process took the port in between.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(50);

/// Checks `check` until it yields `Some`, at most for `timeout`; panics naming `what` otherwise.
/// The timeout only bounds a failing test: a passing one waits exactly as long as it must.
pub fn eventually<T>(timeout: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    within(timeout, check).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// The same for a check that awaits (a browser, an async database query).
pub async fn eventually_async<T, F>(timeout: Duration, what: &str, check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    within_async(timeout, check).await.unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// What `check` yields first, or `None` after `timeout` (for a caller that explains the failure).
pub fn within<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// `within` for a check that awaits.
pub async fn within_async<T, F>(timeout: Duration, mut check: impl FnMut() -> F) -> Option<T>
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `secs` seconds, for the timeouts above.
pub const fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// What a program started on a chosen port came to.
pub enum Started<T> {
    Up(T),
    /// It could not bind the port (another process took it after we chose it).
    PortTaken,
}

/// For programs that must be told their port before they start (nginx and caddy read it from
/// their configuration; a server whose `public_url` names its own port): chooses a free port and
/// starts `start` on it, again on another port while `start` reports the port taken.
pub fn on_a_free_port<T>(mut start: impl FnMut(u16) -> Started<T>) -> T {
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        if let Started::Up(v) = start(port) {
            return v;
        }
    }
    panic!("five free ports in a row were taken before the program could bind them");
}

/// Whether a program's log says it could not bind its port.
pub fn says_port_taken(log: &str) -> bool {
    let log = log.to_lowercase();
    log.contains("address already in use") || log.contains("port is in use")
}

/// A loopback port that refuses connections for as long as this value lives: the socket is bound
/// (so no other process can take the port) but never listens.
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl ClosedPort {
    pub fn bind() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let port = socket.local_addr().expect("local address").port();
        ClosedPort { _socket: socket, port }
    }

    /// `smtp://127.0.0.1:PORT`: a mail server that is down.
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

/// The port in a log line `… listening on http://ADDRESS:PORT …` (userauth) or
/// `listening on ADDRESS:PORT` (the SMTP sink), if the log has one yet.
pub fn listening_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("listening on "))?;
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let addr = rest.split(|c: char| c.is_whitespace() || c == '"').next()?;
    addr.rsplit_once(':')?.1.parse().ok()
}
