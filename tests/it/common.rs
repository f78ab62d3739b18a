//! Shared test fixtures: real SQLite files, the real migrator, the real binary, a raw HTTP client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::local::asynchronous::Client;
use tempfile::TempDir;
use userauth::config::{self, Loaded, Settings};
use userauth::service::AuthService;
use userauth::service::db::{connect, migrate};

pub const PASSWORD: &str = "correct horse battery";

/// A database for one test: a SQLite file in a temp dir (removed on drop).
pub struct TestDb {
    pub url: String,
    pub dir: Option<TempDir>,
}

/// Which database a parameterised test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    SqliteFile,
    SqliteMemory,
    Postgres,
}

/// Generates one test per backend for each named `async fn(Backend)` in the calling module.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite_file {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Backend::SqliteFile).await } )*
        }
        mod sqlite_memory {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Backend::SqliteMemory).await } )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(postgres_tests), ignore = "PostgreSQL is not installed here: the PostgreSQL half of the suite was skipped")]
                async fn $name() { super::$name($crate::common::Backend::Postgres).await }
            )*
        }
    };
}

impl TestDb {
    pub fn new(backend: Backend) -> Self {
        match backend {
            Backend::SqliteFile => Self::sqlite_file(),
            Backend::SqliteMemory => Self::sqlite_memory(),
            Backend::Postgres => Self { url: crate::pg::fresh_database(), dir: None },
        }
    }

    pub fn sqlite_file() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Self { url, dir: Some(dir) }
    }

    pub fn sqlite_memory() -> Self {
        Self { url: "sqlite::memory:".into(), dir: None }
    }

    pub fn path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("test.db"))
    }
}

/// Test configuration: the built-in defaults with a fast bcrypt cost.
pub fn settings(url: &str, extra: &[(&str, serde_json::Value)]) -> Loaded {
    let mut f = Figment::from(rocket::Config::debug_default())
        .merge(Serialized::defaults(Settings::default()))
        .merge(("bcrypt_cost", 4))
        .merge(("allow_weak_bcrypt_cost", true))
        .merge(("database_url", url))
        .merge(("log_level", "off"));
    for (k, v) in extra {
        f = f.merge((*k, v.clone()));
    }
    config::from_figment(f).expect("valid test configuration")
}

pub async fn service_for(loaded: &Loaded) -> AuthService {
    let db = connect(&loaded.db).await.expect("connect");
    migrate(&db).await.expect("migrate");
    AuthService::new(db, loaded.settings.policy()).with_fast_session_reads(&loaded.db.url)
}

/// A clock for the service under test that the test moves forward instead of sleeping.
#[derive(Clone, Default)]
pub struct TestClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl TestClock {
    pub fn clock(&self) -> userauth::service::Clock {
        let offset = self.0.clone();
        userauth::service::Clock::from_fn(move || {
            chrono::Utc::now() + chrono::Duration::milliseconds(offset.load(std::sync::atomic::Ordering::SeqCst))
        })
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).expect("a test-sized duration");
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A migrated service whose clock the test moves.
pub async fn service_with_clock(loaded: &Loaded) -> (AuthService, TestClock) {
    let clock = TestClock::default();
    (service_for(loaded).await.with_clock(clock.clock()), clock)
}

pub async fn service(url: &str) -> AuthService {
    service_for(&settings(url, &[])).await
}

/// Rocket's local client over a migrated database.
pub async fn client_with(url: &str, extra: &[(&str, serde_json::Value)]) -> (Client, AuthService) {
    let loaded = settings(url, extra);
    let svc = service_for(&loaded).await;
    let client = Client::tracked(userauth::api::build(svc.clone(), &loaded)).await.expect("rocket client");
    (client, svc)
}

pub async fn client(url: &str) -> (Client, AuthService) {
    client_with(url, &[]).await
}

// ---------------------------------------------------------------- the real binary

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_userauth"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ROCKET_") || k == "DATABASE_URL" || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.env("ROCKET_BCRYPT_COST", "4").env("ROCKET_ALLOW_WEAK_BCRYPT_COST", "true");
    c
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary in `cwd` with `stdin` as its standard input.
pub fn run(cwd: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.current_dir(cwd).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn userauth");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `userauth serve` on a free loopback port; killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    pub fn start(cwd: &Path, database_url: &str, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = cwd.join(format!("serve-{port}.log"));
        let logfile = std::fs::File::create(&log).expect("log file");
        let mut cmd = bin();
        let port_arg = port.to_string();
        let mut args = vec!["--database-url", database_url, "serve", "--port", &port_arg];
        // Tests of the address configuration set ROCKET_ADDRESS themselves.
        if !env.iter().any(|(k, _)| *k == "USERAUTH_TEST_NO_ADDRESS_FLAG") {
            args.extend(["--address", "127.0.0.1"]);
        }
        cmd.current_dir(cwd)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(logfile.try_clone().expect("clone"))
            .stderr(logfile);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn serve");
        let mut server = Server { child, port, log };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("serve exited early ({status}): {}", self.log_text());
            }
            if let Ok(r) = try_http(self.port, "GET", "/health", &[], b"")
                && r.status == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("serve did not become ready: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        http(self.port, method, path, headers, body)
    }

    pub fn form(&self, method: &str, path: &str, body: &str, cookie: Option<&str>) -> Resp {
        let cookie_header = cookie.map(|c| format!("session_id={c}"));
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(c) = &cookie_header {
            headers.push(("Cookie", c));
        }
        self.request(method, path, &headers, body.as_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read off a real socket.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The `session_id` value set by this response, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers_named("set-cookie").iter().find_map(|c| {
            let v = c.strip_prefix("session_id=")?;
            Some(v.split(';').next().unwrap_or("").to_owned())
        })
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    try_http(port, method, path, headers, body).expect("HTTP request")
}

pub fn try_http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Resp> {
    try_http_from(None, port, method, path, headers, body)
}

/// A client at another loopback address (127.0.0.2, …): the socket is bound to `from` before it
/// connects, so the server sees that peer address.
pub fn http_from(from: &str, port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let ip: std::net::IpAddr = from.parse().expect("source address");
    try_http_from(Some(ip), port, method, path, headers, body).expect("HTTP request")
}

fn connect_from(from: Option<std::net::IpAddr>, port: u16) -> std::io::Result<TcpStream> {
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Some(ip) = from else { return TcpStream::connect(server) };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::new(ip, 0).into())?;
    socket.connect(&server.into())?;
    Ok(socket.into())
}

pub fn try_http_from(
    from: Option<std::net::IpAddr>,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = connect_from(from, port)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head: bool) -> std::io::Result<Resp> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head_text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("bad status"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked && !head {
        body = dechunk(&body);
    }
    Ok(Resp { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

pub fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
