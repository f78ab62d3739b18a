//! Shared test fixtures: real SQLite files, the real migrator, the real binary (run with
//! `assert_cmd`), and an HTTP client (`reqwest`) for servers on real sockets.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rocket::figment::Figment;
use rocket::figment::providers::Serialized;
use rocket::http::{ContentType, Cookie, Header, Method, Status};
use rocket::local::asynchronous::Client;
use tempfile::TempDir;
use userauth::config::{self, Loaded, Settings};
use userauth::service::AuthService;
use userauth::service::db::{connect, migrate};

pub use crate::prereq::{Prereq, require};
pub use crate::waiting::{Started, eventually, secs};
use crate::waiting::{listening_port, on_a_free_port, says_port_taken};

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
/// `persistent: …` lists tests that need a database outliving its connections (restarts, other
/// instances): they run on the SQLite file and PostgreSQL only, rather than passing vacuously.
/// The PostgreSQL ones skip (or fail under `CI=true`) where PostgreSQL is missing: `require`.
#[macro_export]
macro_rules! backend_tests {
    (persistent: $($name:ident),* $(,)?) => {
        $crate::backend_mod!(sqlite_file_only, SqliteFile, $($name),*);
        $crate::backend_mod!(postgres_only, Postgres, $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::backend_mod!(sqlite_file, SqliteFile, $($name),*);
        $crate::backend_mod!(sqlite_memory, SqliteMemory, $($name),*);
        $crate::backend_mod!(postgres, Postgres, $($name),*);
    };
}

/// One module of tests on one backend.
#[macro_export]
macro_rules! backend_mod {
    ($module:ident, $backend:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::common::Backend::$backend.available() {
                        super::$name($crate::common::Backend::$backend).await
                    }
                }
            )*
        }
    };
}

impl Backend {
    /// Whether this machine has the backend (see `require`).
    pub fn available(self) -> bool {
        self != Backend::Postgres || require(Prereq::Postgres)
    }
}

/// The cells of the README configuration table's row for `key` (`| \`key\` | default | range | …`).
pub fn readme_row<'a>(readme: &'a str, key: &str) -> Vec<&'a str> {
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| `{key}`")))
        .unwrap_or_else(|| panic!("README has no row for {key}"));
    row.split('|').map(str::trim).collect()
}

/// The URL of a SQLite file, created on first use.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
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
        let url = sqlite_url(&dir.path().join("test.db"));
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

/// The server key of in-process test services (base64, for `ROCKET_KEY` when the real binary
/// must open the same database).
pub const TEST_KEY_B64: &str = "dGVzdCBzZXJ2ZXIga2V5IGZvciB1c2VyYXV0aCB0c3Q=";

pub fn test_key() -> std::sync::Arc<userauth::service::key::ServerKey> {
    std::sync::Arc::new(userauth::service::key::ServerKey::from_base64(TEST_KEY_B64).expect("a 32-byte test key"))
}

pub async fn service_for(loaded: &Loaded) -> AuthService {
    let db = connect(&loaded.db).await.expect("connect");
    migrate(&db).await.expect("migrate");
    let key = test_key();
    userauth::service::key_store::bind(&db, &key, chrono::Utc::now()).await.expect("bind the test key");
    AuthService::new(db, loaded.settings.policy())
        .with_key(key)
        .with_fast_session_reads(&loaded.db.url)
        .with_metrics(loaded.settings.metrics.then(userauth::service::metrics::Metrics::new))
        .with_mailer(
            loaded
                .settings
                .mail_settings()
                .expect("mail settings")
                .map(|m| userauth::service::mail::Mailer::new(m).expect("mailer")),
        )
}

/// The SQL a service runs, recorded only while `during` runs an operation.
pub struct SqlRecorder {
    recording: std::sync::Arc<std::sync::atomic::AtomicBool>,
    statements: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _mail_server_down: crate::waiting::ClosedPort,
}

impl SqlRecorder {
    /// The operation's result and the statements it ran, in order.
    pub async fn during<T>(&self, operation: impl std::future::Future<Output = T>) -> (T, Vec<String>) {
        use std::sync::atomic::Ordering;
        self.statements.lock().expect("statements").clear();
        self.recording.store(true, Ordering::SeqCst);
        let out = operation.await;
        self.recording.store(false, Ordering::SeqCst);
        (out, self.statements.lock().expect("statements").clone())
    }
}

/// A migrated service with email set up (to a mail server that is down: the worker is not
/// running anyway) whose SQL statements can be recorded.
pub async fn recording_service(url: &str, extra: &[(&str, serde_json::Value)]) -> (AuthService, SqlRecorder) {
    let down = crate::waiting::ClosedPort::bind();
    let mut all = vec![
        ("smtp_url", serde_json::json!(down.smtp_url())),
        ("mail_from", serde_json::json!("Accounts <no-reply@example.com>")),
    ];
    all.extend(extra.iter().cloned());
    let loaded = settings(url, &all);
    let mut conn = connect(&loaded.db).await.expect("connect");
    let recorder =
        SqlRecorder { recording: Default::default(), statements: Default::default(), _mail_server_down: down };
    let (recording, statements) = (recorder.recording.clone(), recorder.statements.clone());
    conn.set_metric_callback(move |info| {
        if recording.load(std::sync::atomic::Ordering::SeqCst) {
            statements.lock().expect("statements").push(info.statement.sql.clone());
        }
    });
    migrate(&conn).await.expect("migrate");
    let key = test_key();
    userauth::service::key_store::bind(&conn, &key, chrono::Utc::now()).await.expect("bind the test key");
    let mail = loaded.settings.mail_settings().expect("mail settings").expect("mail is set up");
    let mailer = userauth::service::mail::Mailer::new(mail).expect("mailer");
    (AuthService::new(conn, loaded.settings.policy()).with_key(key).with_mailer(Some(mailer)), recorder)
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

/// A user row written directly, as another system (or an import) would leave it.
pub async fn insert_user(svc: &AuthService, email: &str, hash: String) {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let at = chrono::Utc::now();
    userauth::entity::user::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        email: Set(email.to_owned()),
        password_hash: Set(hash),
        created_at: Set(at),
        updated_at: Set(at),
        last_login_at: Set(None),
        email_confirmed_at: Set(Some(at)),
        credential_version: Set(0),
    }
    .insert(svc.db())
    .await
    .expect("insert user");
}

pub async fn service(url: &str) -> AuthService {
    service_for(&settings(url, &[])).await
}

/// Rocket's local client over a migrated database.
pub async fn client_with(url: &str, extra: &[(&str, serde_json::Value)]) -> (Client, AuthService) {
    local_client(url, extra, true).await
}

/// The same, without a cookie jar: each request carries exactly the cookies the test gives it.
pub async fn untracked_client_with(url: &str, extra: &[(&str, serde_json::Value)]) -> (Client, AuthService) {
    local_client(url, extra, false).await
}

async fn local_client(url: &str, extra: &[(&str, serde_json::Value)], tracked: bool) -> (Client, AuthService) {
    let loaded = settings(url, extra);
    let svc = service_for(&loaded).await;
    let rocket = userauth::api::build(svc.clone(), &loaded);
    let client = if tracked { Client::tracked(rocket).await } else { Client::untracked(rocket).await };
    (client.expect("rocket client"), svc)
}

pub async fn client(url: &str) -> (Client, AuthService) {
    client_with(url, &[]).await
}

/// Logs in through the API (with `agent` as User-Agent, if given) and returns the session cookie
/// value; a tracked client also keeps it.
pub async fn api_login(c: &Client, email: &str, password: &str, agent: Option<&str>) -> String {
    let mut req = c.post("/api/v1/session").header(ContentType::Form);
    if let Some(agent) = agent {
        req = req.header(Header::new("User-Agent", agent.to_owned()));
    }
    let resp = req.body(form_body(&[("email", email), ("password", password)])).dispatch().await;
    assert_eq!(resp.status(), Status::Ok);
    resp.cookies().get("session_id").expect("session cookie").value().to_owned()
}

/// One JSON request with an optional session cookie: the status, the JSON body (null if none) and
/// the new `session_id` cookie, if one was set.
pub async fn call_json(
    c: &Client,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: Option<serde_json::Value>,
) -> (Status, serde_json::Value, Option<String>) {
    let mut req = c.req(method, path.to_owned());
    if let Some(v) = cookie {
        req = req.cookie(Cookie::new("session_id", v.to_owned()));
    }
    if let Some(b) = body {
        req = req.header(ContentType::JSON).body(b.to_string());
    }
    let resp = req.dispatch().await;
    let status = resp.status();
    let set = resp.cookies().get("session_id").map(|c| c.value().to_owned()).filter(|v| !v.is_empty());
    let text = resp.into_string().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null), set)
}

/// A migrated service with a clock the test moves, and an untracked local client over it (each
/// request carries exactly the session cookie the test gives it).
pub struct ApiEnv {
    pub c: Client,
    pub svc: AuthService,
    pub clock: TestClock,
    pub db: TestDb,
}

/// Declares `struct $name(ApiEnv)`, dereferencing to the shared environment, for a module to add
/// its own steps to as methods.
#[macro_export]
macro_rules! api_env_with_steps {
    ($name:ident) => {
        struct $name($crate::common::ApiEnv);

        impl std::ops::Deref for $name {
            type Target = $crate::common::ApiEnv;
            fn deref(&self) -> &$crate::common::ApiEnv {
                &self.0
            }
        }
    };
}

impl ApiEnv {
    pub async fn new(backend: Backend, extra: &[(&str, serde_json::Value)]) -> ApiEnv {
        let db = TestDb::new(backend);
        let loaded = settings(&db.url, extra);
        let (svc, clock) = service_with_clock(&loaded).await;
        // `build` gives the managed service the relying party of http://localhost:5000.
        let c = Client::untracked(userauth::api::build(svc.clone(), &loaded)).await.expect("rocket client");
        ApiEnv { c, svc, clock, db }
    }

    /// Status, JSON body and the new `session_id` cookie, if one was set.
    pub async fn call_full(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (Status, serde_json::Value, Option<String>) {
        call_json(&self.c, method, path, cookie, body).await
    }
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

/// A database set up with `userauth db-setup`, as an operator would: the SQLite file `file` in `dir`.
pub fn set_up_database(dir: &Path, file: &str) -> String {
    let url = sqlite_url(&dir.join(file));
    let out = run(dir, &["--database-url", &url, "db-setup"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    url
}

/// `run` from an async test: on a blocking thread, with `--database-url url` before `args`.
pub async fn run_async(dir: &Path, url: &str, args: &[&str]) -> Output {
    let dir = dir.to_owned();
    let all: Vec<String> = ["--database-url", url].iter().chain(args).map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&dir, &all, "", &[])
    })
    .await
    .expect("the binary ran")
}

/// Runs the binary in `cwd` with `stdin` as its standard input.
pub fn run(cwd: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = assert_cmd::Command::from_std(bin());
    cmd.current_dir(cwd).args(args).write_stdin(stdin);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run userauth");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `userauth serve` on loopback port 0, reading the bound port from its log; killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    /// Where a browser reaches it: `http://127.0.0.1:PORT`, or its `public_url`.
    pub origin: String,
}

impl Server {
    pub fn start(cwd: &Path, database_url: &str, env: &[(&str, &str)]) -> Server {
        match Self::start_on(cwd, database_url, 0, env) {
            Started::Up(server) => server,
            Started::PortTaken => unreachable!("port 0 is never taken"),
        }
    }

    /// For pages whose links and passkeys name the server's own origin: `public_url` is
    /// `http://HOST:PORT`, and another port is tried if the chosen one was taken meanwhile.
    pub fn start_with_public_url(cwd: &Path, database_url: &str, host: &str, env: &[(&str, &str)]) -> Server {
        on_a_free_port(|port| {
            let public_url = format!("http://{host}:{port}");
            let mut env = env.to_vec();
            env.push(("ROCKET_PUBLIC_URL", &public_url));
            match Self::start_on(cwd, database_url, port, &env) {
                Started::Up(mut server) => {
                    server.origin = public_url.clone();
                    Started::Up(server)
                }
                Started::PortTaken => Started::PortTaken,
            }
        })
    }

    fn start_on(cwd: &Path, database_url: &str, port: u16, env: &[(&str, &str)]) -> Started<Server> {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let log = cwd.join(format!("serve-{}.log", STARTED.fetch_add(1, Ordering::Relaxed)));
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
        let mut server = Server { child, port, log, origin: String::new() };
        let ready = eventually(secs(60), "serve to listen and answer /health", || {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = server.log_text();
                if port != 0 && says_port_taken(&log) {
                    return Some(false);
                }
                panic!("serve exited early ({status}): {log}");
            }
            server.port = listening_port(&server.log_text())?;
            server.origin = format!("http://127.0.0.1:{}", server.port);
            let health = try_http(server.port, "GET", "/health", &[], b"");
            health.is_ok_and(|r| r.status == 200).then_some(true)
        });
        if ready { Started::Up(server) } else { Started::PortTaken }
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

/// One request to a server on this machine.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    try_http(port, method, path, headers, body).expect("HTTP request")
}

pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Resp, reqwest::Error> {
    try_http_from(None, port, method, path, headers, body)
}

/// A client at another loopback address (127.0.0.2, …): the socket is bound to `from` before it
/// connects, so the server sees that peer address.
pub fn http_from(from: &str, port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let ip: IpAddr = from.parse().expect("source address");
    try_http_from(Some(ip), port, method, path, headers, body).expect("HTTP request")
}

/// One client per source address; no redirects followed (tests look at them) and no pooled
/// connections (a later server may reuse a port).
fn http_client(from: Option<IpAddr>) -> reqwest::blocking::Client {
    static CLIENTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<Option<IpAddr>, reqwest::blocking::Client>>,
    > = std::sync::OnceLock::new();
    let mut clients = CLIENTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    clients
        .entry(from)
        .or_insert_with(|| {
            reqwest::blocking::Client::builder()
                .local_address(from)
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client")
        })
        .clone()
}

pub fn try_http_from(
    from: Option<IpAddr>,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Resp, reqwest::Error> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let mut req = http_client(from).request(method, format!("http://127.0.0.1:{port}{path}")).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send()?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = resp.bytes()?.to_vec();
    Ok(Resp { status, headers, body })
}

/// An `application/x-www-form-urlencoded` body.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes all but RFC 3986's unreserved characters: safe in a query or a form.
pub fn urlencode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    utf8_percent_encode(s, UNRESERVED).to_string()
}
