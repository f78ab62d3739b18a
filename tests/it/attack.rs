//! Standing up to attack (api.md §6): each defence tried as an attacker would, with a test that
//! fails without it.

use futures_util::future::join_all;
use rocket::http::{ContentType, Header, Method, Status};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use userauth::entity::user;
use userauth::service::{AuthError, AuthService};

use crate::common::{
    Backend, PASSWORD, Server, TestDb, client_with, form_body, http_from, insert_user, run, service_for, settings,
    sqlite_url,
};
use crate::prereq::{Prereq, require};

// ------------------------------------------------------------------ 1. lockout reservation

/// 60 wrong passwords for one account at the same moment, limit 5: at most 5 bcrypt
/// verifications, the rest 429, and then the right password is refused too.
async fn lockout_holds_under_concurrency(backend: Backend) {
    let db = TestDb::new(backend);
    let cfg = settings(&db.url, &[("login_max_failures", json!(5))]);
    let svc = service_for(&cfg).await;
    svc.register("target@example.com", PASSWORD).await.unwrap();
    let before = svc.hasher().verifications();
    let attempts = (0..60).map(|i| {
        let svc = svc.clone();
        tokio::spawn(async move { svc.login("Target@Example.com", &format!("guess number {i}")).await })
    });
    let results: Vec<_> = join_all(attempts).await.into_iter().map(|r| r.unwrap()).collect();
    let invalid = results.iter().filter(|r| matches!(r, Err(AuthError::InvalidCredentials))).count();
    let locked = results.iter().filter(|r| matches!(r, Err(AuthError::AccountLocked { .. }))).count();
    assert_eq!((invalid, locked), (5, 55), "{results:?}");
    assert_eq!(svc.hasher().verifications() - before, 5, "bcrypt ran only for the reserved attempts");
    let right = svc.login("target@example.com", PASSWORD).await;
    assert!(matches!(right, Err(AuthError::AccountLocked { retry_after_secs }) if retry_after_secs > 0), "{right:?}");
    assert_eq!(svc.hasher().verifications() - before, 5, "a locked login costs no bcrypt");
}

/// Reset requests are reserved the same way: 20 at once, limit 3 → 3 tokens.
async fn reset_limit_holds_under_concurrency(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[("reset_max_requests", json!(3))])).await;
    svc.register("resets@example.com", PASSWORD).await.unwrap();
    let attempts = (0..20).map(|_| {
        let svc = svc.clone();
        tokio::spawn(async move { svc.request_reset("resets@example.com").await })
    });
    let results: Vec<_> = join_all(attempts).await.into_iter().map(|r| r.unwrap()).collect();
    let issued = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.iter().filter(|r| matches!(r, Err(AuthError::TooManyResetRequests { .. }))).count();
    assert_eq!((issued, refused), (3, 17), "{results:?}");
}

/// Two real servers on one PostgreSQL, 30 wrong logins sent to each at once: at most 5 answered
/// 401 (each 401 is one verification; a 429 is decided before bcrypt), the rest 429.
#[test]
fn lockout_holds_across_two_instances() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = crate::pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    // All 60 come from one loopback address: per-client limits off, so that each reaches the
    // reservation (one address otherwise holds at most `hash_concurrency` queue places).
    let env = [("ROCKET_LOGIN_MAX_FAILURES", "5"), ("ROCKET_CLIENT_RATE_PER_MINUTE", "0")];
    let a = Server::start(dir.path(), &url, &env);
    let b = Server::start(dir.path(), &url, &env);
    let creds = form_body(&[("email", "both@example.com"), ("password", PASSWORD)]);
    assert_eq!(a.form("POST", "/api/v1/register", &creds, None).status, 201);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..60)
            .map(|i| {
                let server = if i % 2 == 0 { &a } else { &b };
                s.spawn(move || {
                    let body = form_body(&[("email", "both@example.com"), ("password", &format!("guess {i}"))]);
                    server.form("POST", "/api/v1/session", &body, None).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((unauthorized, locked), (5, 55), "{statuses:?}");
    assert_eq!(a.form("POST", "/api/v1/session", &creds, None).status, 429);
    assert_eq!(b.form("POST", "/api/v1/session", &creds, None).status, 429);
}

// ------------------------------------------------------------------ 2. back-pressure

/// With the queue full, every bcrypt-costing call is refused at once and hashes nothing:
/// logins (well-formed or not), registrations and password updates alike.
async fn full_hashing_queue_refuses_without_hashing(backend: Backend) {
    let db = TestDb::new(backend);
    let cfg = settings(&db.url, &[("hash_concurrency", json!(1)), ("hash_queue_max", json!(2))]);
    let svc = service_for(&cfg).await;
    svc.register("queued@example.com", PASSWORD).await.unwrap();
    let token = svc.request_reset("queued@example.com").await.unwrap().token;
    let held: Vec<_> = (0..3).map(|_| svc.hasher().admit(None).unwrap()).collect();
    let before = svc.hasher().verifications();
    assert!(matches!(svc.login("queued@example.com", PASSWORD).await, Err(AuthError::Busy)));
    assert!(matches!(svc.login("not an email", PASSWORD).await, Err(AuthError::Busy)));
    assert!(matches!(svc.register("new@example.com", PASSWORD).await, Err(AuthError::Busy)));
    assert!(matches!(svc.update_password(token.expose(), "a brand new password", None).await, Err(AuthError::Busy)));
    assert_eq!(svc.hasher().verifications(), before, "nothing was hashed");
    drop(held);
    assert!(svc.login("queued@example.com", PASSWORD).await.is_ok(), "a busy answer counted no failure");
    assert!(svc.update_password(token.expose(), "a brand new password", None).await.is_ok(), "token not used up");
}

/// Over HTTP: 503 `busy` with `Retry-After: 1`, on the v1 and classic routes.
#[tokio::test]
async fn busy_is_a_503_with_retry_after() {
    let db = TestDb::sqlite_file();
    let (c, svc) = client_with(&db.url, &[("hash_concurrency", json!(1)), ("hash_queue_max", json!(0))]).await;
    let _held = svc.hasher().admit(None).unwrap();
    for path in ["/api/v1/session", "/api/v1/register", "/sessions", "/users"] {
        let resp = c
            .post(path)
            .header(ContentType::Form)
            .body(form_body(&[("email", "x@example.com"), ("password", PASSWORD)]))
            .dispatch()
            .await;
        assert_eq!(resp.status(), Status::ServiceUnavailable, "{path}");
        assert_eq!(resp.headers().get_one("Retry-After"), Some("1"), "{path}");
        let body: Value = serde_json::from_str(&resp.into_string().await.unwrap()).unwrap();
        assert_eq!(body["error"], "busy", "{path}");
    }
}

/// A flood of 40 logins at once with room for 1 running + 4 waiting: some are refused with
/// Busy, and exactly the admitted ones were verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_shed_not_queued() {
    let db = TestDb::sqlite_file();
    let cfg =
        settings(&db.url, &[("bcrypt_cost", json!(8)), ("hash_concurrency", json!(1)), ("hash_queue_max", json!(4))]);
    let svc = service_for(&cfg).await;
    svc.hasher().warm_up().await.unwrap();
    let before = svc.hasher().verifications();
    let flood = (0..40).map(|i| {
        let svc = svc.clone();
        tokio::spawn(async move { svc.login(&format!("nobody{i}@example.com"), "whatever it is").await })
    });
    let results: Vec<_> = join_all(flood).await.into_iter().map(|r| r.unwrap()).collect();
    let busy = results.iter().filter(|r| matches!(r, Err(AuthError::Busy))).count();
    let verified = results.iter().filter(|r| matches!(r, Err(AuthError::InvalidCredentials))).count();
    assert_eq!(busy + verified, 40, "{results:?}");
    assert!(busy >= 20, "most of a burst is shed ({busy} busy)");
    assert_eq!(svc.hasher().verifications() - before, verified as u64);
}

// ------------------------------------------------------------------ 3. per-client limits

/// Real sockets from two loopback addresses: the flooding one gets 429 while the other still
/// logs in; a spoofed `X-Forwarded-For` from an untrusted peer changes nothing.
#[test]
fn per_client_limit_by_peer_address() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("rate.db"));
    let server = Server::start(dir.path(), &url, &[("ROCKET_CLIENT_RATE_PER_MINUTE", "5")]);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let post = |from: &str, path: &str, body: &str, extra: &[(&str, &str)]| {
        let mut headers = form.to_vec();
        headers.extend_from_slice(extra);
        http_from(from, server.port, "POST", path, &headers, body.as_bytes())
    };
    let creds = form_body(&[("email", "legit@example.com"), ("password", PASSWORD)]);
    assert_eq!(post("127.0.0.1", "/api/v1/register", &creds, &[]).status, 201);
    for i in 0..5 {
        let body = form_body(&[("email", &format!("victim{i}@example.com")), ("password", "some guess here")]);
        assert_eq!(post("127.0.0.2", "/api/v1/session", &body, &[]).status, 401, "attempt {i}");
    }
    let body = form_body(&[("email", "victim9@example.com"), ("password", "some guess here")]);
    let limited = post("127.0.0.2", "/api/v1/session", &body, &[]);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"], "too_many_requests");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Every bcrypt-costing route shares the budget.
    assert_eq!(post("127.0.0.2", "/api/v1/register", &body, &[]).status, 429);
    assert_eq!(post("127.0.0.2", "/users", &body, &[]).status, 429);
    // Claiming to be someone else does not help an untrusted peer.
    assert_eq!(post("127.0.0.2", "/api/v1/session", &body, &[("X-Forwarded-For", "198.51.100.9")]).status, 429);
    // Routes that cost no bcrypt are not limited.
    assert_eq!(http_from("127.0.0.2", server.port, "GET", "/health", &[], b"").status, 200);
    // The other address is unaffected.
    let ok = post("127.0.0.1", "/api/v1/session", &creds, &[]);
    assert_eq!(ok.status, 200, "{:?}", ok.json());
}

/// One address cannot take more of the hashing queue than there are hashing threads: a burst
/// from 127.0.0.2 is shed with 503 while 127.0.0.1 still logs in.
#[test]
fn one_address_cannot_fill_the_hashing_queue() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("share.db"));
    let env = [
        ("ROCKET_CLIENT_RATE_PER_MINUTE", "1000"),
        ("ROCKET_HASH_CONCURRENCY", "1"),
        ("ROCKET_HASH_QUEUE_MAX", "64"),
        ("ROCKET_BCRYPT_COST", "10"),
    ];
    let server = Server::start(dir.path(), &url, &env);
    let creds = form_body(&[("email", "fair@example.com"), ("password", PASSWORD)]);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(http_from("127.0.0.1", server.port, "POST", "/api/v1/register", &form, creds.as_bytes()).status, 201);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let burst: Vec<_> = (0..12)
            .map(|i| {
                s.spawn(move || {
                    let body = form_body(&[("email", &format!("x{i}@example.com")), ("password", "a wrong guess!")]);
                    http_from("127.0.0.2", server.port, "POST", "/api/v1/session", &form, body.as_bytes()).status
                })
            })
            .collect();
        burst.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 401 || *s == 503), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 503).count() >= 6, "most of the burst is shed: {statuses:?}");
    assert_eq!(http_from("127.0.0.1", server.port, "POST", "/api/v1/session", &form, creds.as_bytes()).status, 200);
}

/// Behind a trusted proxy the right-most untrusted `X-Forwarded-For` entry is the client.
#[test]
fn per_client_limit_behind_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("proxy.db"));
    let server = Server::start(
        dir.path(),
        &url,
        &[("ROCKET_CLIENT_RATE_PER_MINUTE", "3"), ("ROCKET_TRUSTED_PROXIES", "[\"127.0.0.3/32\"]")],
    );
    let attempt = |from: &str, xff: &str| {
        let body = form_body(&[("email", "nobody@example.com"), ("password", "some guess here")]);
        let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("X-Forwarded-For", xff)];
        http_from(from, server.port, "POST", "/api/v1/session", &headers, body.as_bytes()).status
    };
    // The client (198.51.100.1) forges a left-most entry each time; the proxy appends the truth.
    for i in 0..3 {
        assert_eq!(attempt("127.0.0.3", &format!("10.{i}.0.1, 198.51.100.1")), 401);
    }
    assert_eq!(attempt("127.0.0.3", "10.9.0.1, 198.51.100.1"), 429, "limited by the forwarded address");
    assert_eq!(attempt("127.0.0.3", "198.51.100.2"), 401, "another client behind the same proxy");
}

// ------------------------------------------------------------------ 4. cross-site refusal

async fn status_and_error(resp: rocket::local::asynchronous::LocalResponse<'_>) -> (Status, String) {
    let status = resp.status();
    let body = resp.into_string().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
    // A page route answers the same refusal as a page (api.md §14) carrying the API's sentence.
    let code = code.or_else(|| {
        body.contains("Requests from other sites are not accepted.").then(|| "cross_site_request".to_owned())
    });
    (status, code.unwrap_or_default())
}

/// Every mounted POST/PUT/DELETE route × each header combination.
async fn cross_site_requests_are_refused(backend: Backend) {
    let db = TestDb::new(backend);
    let extra =
        [("public_url", json!("https://auth.example.com")), ("allowed_origins", json!(["https://app.example.com"]))];
    let (c, _svc) = client_with(&db.url, &extra).await;
    let routes: Vec<(Method, String)> = c
        .rocket()
        .routes()
        .filter(|r| matches!(r.method, Method::Post | Method::Put | Method::Delete))
        // Dynamic segments (`<id>`) get a value of the right shape.
        .map(|r| (r.method, r.uri.to_string().replace("<id>", "00000000-0000-4000-8000-000000000000")))
        .collect();
    assert!(routes.len() >= 10, "{routes:?}");
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[("Sec-Fetch-Site", "cross-site")], true),
        (&[("Origin", "https://evil.example")], true),
        (&[("Origin", "https://sub.auth.example.com")], true),
        (&[("Origin", "http://auth.example.com")], true),
        (&[("Origin", "null")], true),
        (&[("Origin", "https://auth.example.com"), ("Sec-Fetch-Site", "cross-site")], true),
        (&[("Origin", "https://auth.example.com"), ("Sec-Fetch-Site", "same-origin")], false),
        (&[("Origin", "https://app.example.com")], false),
        (&[("Sec-Fetch-Site", "none")], false),
        (&[], false),
    ];
    for (method, uri) in &routes {
        for (headers, refused) in cases {
            let mut req = c.req(*method, uri.as_str()).header(ContentType::Form).body("email=a%40b.c");
            for (k, v) in *headers {
                req = req.header(Header::new(*k, *v));
            }
            let (status, code) = status_and_error(req.dispatch().await).await;
            if *refused {
                assert_eq!(
                    (status, code.as_str()),
                    (Status::Forbidden, "cross_site_request"),
                    "{method} {uri} {headers:?}"
                );
            } else {
                assert_ne!(code, "cross_site_request", "{method} {uri} {headers:?}");
            }
        }
    }
    // Refused before anything else: an oversized cross-site body is a 403, not a 413.
    let (status, code) = status_and_error(
        c.post("/api/v1/session")
            .header(ContentType::Form)
            .header(Header::new("Origin", "https://evil.example"))
            .body(vec![b'a'; 100_000])
            .dispatch()
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (Status::Forbidden, "cross_site_request"));
}

/// Without `public_url`, the origin comes from the `Host` header.
#[tokio::test]
async fn own_origin_from_the_host_header() {
    let db = TestDb::sqlite_file();
    let (c, svc) = client_with(&db.url, &[]).await;
    svc.register("host@example.com", PASSWORD).await.unwrap();
    let creds = form_body(&[("email", "host@example.com"), ("password", PASSWORD)]);
    let send = |origin: &'static str| {
        c.post("/api/v1/session")
            .header(ContentType::Form)
            .header(Header::new("Host", "auth.local:5000"))
            .header(Header::new("Origin", origin))
            .body(creds.clone())
            .dispatch()
    };
    assert_eq!(send("http://auth.local:5000").await.status(), Status::Ok);
    assert_eq!(send("https://auth.local:5000").await.status(), Status::Ok);
    assert_eq!(send("http://auth.local:5001").await.status(), Status::Forbidden);
    assert_eq!(send("http://evil.local:5000").await.status(), Status::Forbidden);
}

// ------------------------------------------------------------------ 5. headers

/// Route × response → the headers of api.md §6.
#[tokio::test]
async fn security_headers_on_every_response() {
    for secure in [false, true] {
        let db = TestDb::sqlite_file();
        let (c, svc) = client_with(&db.url, &[("cookie_secure", json!(secure))]).await;
        svc.register("hdr@example.com", PASSWORD).await.unwrap();
        let creds = form_body(&[("email", "hdr@example.com"), ("password", PASSWORD)]);
        let login = c.post("/api/v1/session").header(ContentType::Form).body(creds.clone()).dispatch().await;
        assert_eq!(login.status(), Status::Ok);
        let cases: Vec<(&str, rocket::local::asynchronous::LocalResponse<'_>)> = vec![
            ("login", c.post("/api/v1/session").header(ContentType::Form).body(creds.clone()).dispatch().await),
            ("profile", c.get("/api/v1/profile").dispatch().await),
            ("classic profile", c.get("/profile").dispatch().await),
            (
                "register",
                c.post("/api/v1/register")
                    .header(ContentType::Form)
                    .body(form_body(&[("email", "hdr2@example.com"), ("password", PASSWORD)]))
                    .dispatch()
                    .await,
            ),
            (
                "reset",
                c.post("/api/v1/reset_password")
                    .header(ContentType::Form)
                    .body("email=hdr%40example.com")
                    .dispatch()
                    .await,
            ),
            ("failed login", c.post("/api/v1/session").header(ContentType::Form).body("email=x").dispatch().await),
            ("unknown route", c.get("/nope").dispatch().await),
            ("health", c.get("/health").dispatch().await),
            ("index", c.get("/").dispatch().await),
            ("logout", c.post("/api/v1/logout").dispatch().await),
        ];
        for (name, resp) in cases {
            let h = resp.headers();
            assert_eq!(h.get_one("X-Content-Type-Options"), Some("nosniff"), "{name}");
            assert_eq!(h.get_one("Referrer-Policy"), Some("no-referrer"), "{name}");
            assert_eq!(h.get_one("Cache-Control"), Some("no-store"), "{name}");
            let hsts = h.get_one("Strict-Transport-Security");
            assert_eq!(hsts.is_some(), secure, "{name}: {hsts:?}");
        }
    }
}

// ------------------------------------------------------------------ 6. hash upgrade and import costs

async fn stored_hash(svc: &AuthService, email: &str) -> String {
    use sea_orm::{ColumnTrait, QueryFilter};
    user::Entity::find().filter(user::Column::Email.eq(email)).one(svc.db()).await.unwrap().unwrap().password_hash
}

/// A successful login re-hashes a hash of another cost or prefix at `bcrypt_cost`.
async fn hashes_are_upgraded_on_login(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[("bcrypt_cost", json!(5))])).await;
    let cost4 = bcrypt::hash("old password here", 4).unwrap();
    insert_user(&svc, "cheap@example.com", cost4.clone()).await;
    insert_user(&svc, "php@example.com", cost4.replacen("$2b$", "$2y$", 1)).await;
    let php5 = bcrypt::hash("old password here", 5).unwrap().replacen("$2b$", "$2y$", 1);
    insert_user(&svc, "php5@example.com", php5).await;
    assert!(svc.login("cheap@example.com", "wrong password here").await.is_err());
    assert_eq!(stored_hash(&svc, "cheap@example.com").await, cost4, "a failed login changes nothing");
    for email in ["cheap@example.com", "php@example.com", "php5@example.com"] {
        svc.login(email, "old password here").await.unwrap();
        let h = stored_hash(&svc, email).await;
        assert!(h.starts_with("$2b$05$"), "{email}: {h}");
        assert!(svc.login(email, "old password here").await.is_ok(), "{email} still logs in");
        assert_eq!(stored_hash(&svc, email).await, h, "{email}: no second upgrade");
    }
}

/// A stored hash with an absurd cost is never verified (it would take days): the login fails
/// like an unknown email's, against the dummy hash.
async fn absurd_stored_costs_are_not_verified(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[])).await;
    let real = bcrypt::hash("the password here", 4).unwrap();
    insert_user(&svc, "slow@example.com", real.replacen("$04$", "$31$", 1)).await;
    let before = svc.hasher().verifications();
    assert!(matches!(svc.login("slow@example.com", "the password here").await, Err(AuthError::InvalidCredentials)));
    assert_eq!(svc.hasher().verifications() - before, 1);
}

#[test]
fn import_accepts_costs_4_to_17_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("imp.db"));
    assert_eq!(run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]).code, 0);
    let h = bcrypt::hash("imported password", 4).unwrap();
    let body = &h[7..];
    for (cost, ok) in [("03", false), ("04", true), ("17", true), ("18", false), ("31", false)] {
        let csv = format!("email,password_hash\nc{cost}@example.com,$2b${cost}${body}\n");
        let out = run(dir.path(), &["--database-url", &url, "user", "import", "-"], &csv, &[]);
        assert_eq!(out.code == 0, ok, "cost {cost}: {}", out.stderr);
        if !ok {
            assert!(out.stderr.contains("row 2"), "{}", out.stderr);
        }
    }
    let out = run(
        dir.path(),
        &["--database-url", &url, "user", "import", "-"],
        &format!("email,password_hash\nx@example.com,$2x$04${body}\n"),
        &[],
    );
    assert_eq!(out.code, 1, "$2x$ is not accepted");
}

// ------------------------------------------------------------------ 7. bounded configuration

#[test]
fn out_of_range_values_stop_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("cfg.db"));
    let commands: &[&[&str]] =
        &[&["db-setup"], &["serve", "--port", "1"], &["user", "list"], &["user", "reset", "a@b.c"]];
    let bad = [
        ("ROCKET_SESSION_IDLE_TIMEOUT_SECS", "99999999999999", "session_idle_timeout_secs"),
        ("ROCKET_BCRYPT_COST", "31", "bcrypt_cost"),
        ("ROCKET_HASH_QUEUE_MAX", "100000000", "hash_queue_max"),
        ("ROCKET_LOGIN_MAX_FAILURES", "0", "login_max_failures"),
        ("ROCKET_RESET_WINDOW_SECS", "-5", "reset_window_secs"),
        ("ROCKET_TRUSTED_PROXIES", "[\"not a cidr\"]", "trusted_proxies"),
        ("ROCKET_PUBLIC_URL", "auth.example.com", "public_url"),
    ];
    for args in commands {
        for (var, value, key) in bad {
            let mut full = vec!["--database-url", url.as_str()];
            full.extend_from_slice(args);
            let out = run(dir.path(), &full, "", &[(var, value)]);
            assert_eq!(out.code, 1, "{args:?} {var}={value}: {}", out.stderr);
            assert!(
                out.stderr.starts_with("error: ") && out.stderr.to_lowercase().contains(key),
                "{args:?} {var}: {}",
                out.stderr
            );
            assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        }
    }
}

/// The largest allowed values make no request panic (date arithmetic stays in range).
async fn largest_allowed_values_work(backend: Backend) {
    let db = TestDb::new(backend);
    let big = [
        ("session_idle_timeout_secs", json!(31_536_000)),
        ("session_absolute_timeout_secs", json!(31_536_000)),
        ("reset_token_ttl_secs", json!(604_800)),
        ("login_failure_window_secs", json!(604_800)),
        ("reset_window_secs", json!(604_800)),
    ];
    let (c, svc) = client_with(&db.url, &big).await;
    svc.register("big@example.com", PASSWORD).await.unwrap();
    let resp = c
        .post("/api/v1/session")
        .header(ContentType::Form)
        .body(form_body(&[("email", "big@example.com"), ("password", PASSWORD)]))
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::Ok);
    assert_eq!(c.get("/api/v1/profile").dispatch().await.status(), Status::Ok);
    assert!(svc.login("big@example.com", "wrong password!!").await.is_err());
    let token = svc.request_reset("big@example.com").await.unwrap().token;
    svc.update_password(token.expose(), "another long password", None).await.unwrap();
    svc.purge_expired().await.unwrap();
}

// ------------------------------------------------------------------ 9. input

#[tokio::test]
async fn invisible_characters_in_emails_are_refused() {
    let db = TestDb::sqlite_file();
    let (c, _svc) = client_with(&db.url, &[]).await;
    for email in ["ali\u{200B}ce@example.com", "alice@exam\u{202E}elp.com", "\u{FEFF}alice@example.com"] {
        let resp = c
            .post("/api/v1/register")
            .header(ContentType::JSON)
            .body(json!({"email": email, "password": PASSWORD}).to_string())
            .dispatch()
            .await;
        assert_eq!(resp.status(), Status::BadRequest, "{email:?}");
        let body: Value = serde_json::from_str(&resp.into_string().await.unwrap()).unwrap();
        assert_eq!(body["error"], "invalid_email", "{email:?}");
    }
}

#[tokio::test]
async fn csv_import_keeps_plain_passwords_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("exact.db"));
    assert_eq!(run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]).code, 0);
    let csv = "email,password\n  spaced@example.com ,  padded password  \n";
    let out = run(dir.path(), &["--database-url", &url, "user", "import", "-"], csv, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let svc = crate::common::service(&url).await;
    assert!(svc.login("spaced@example.com", "  padded password  ").await.is_ok(), "spaces kept");
    assert!(svc.login("spaced@example.com", "padded password").await.is_err(), "not trimmed");
}

crate::backend_tests!(
    lockout_holds_under_concurrency,
    reset_limit_holds_under_concurrency,
    full_hashing_queue_refuses_without_hashing,
    cross_site_requests_are_refused,
    hashes_are_upgraded_on_login,
    absurd_stored_costs_are_not_verified,
    largest_allowed_values_work,
);
