//! Issue 16, part B: races, oracles and hardening (api.md §14). No false 401 during hash upgrades,
//! one `login_locked` event per account per window, keyed and session-bound CSRF tokens, the own
//! origin warning, bounded configuration, PostgreSQL with one connection, and pages that fail as
//! pages.

use std::time::Duration;

use futures_util::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use userauth::entity::throttle;
use userauth::service::AuthError;
use userauth::service::audit::{AuditFilter, Verified};

use crate::backend_tests;
use crate::common::*;
use crate::prereq::{Prereq, require};

/// The stored hash's bcrypt cost.
async fn stored_cost(svc: &userauth::service::AuthService, email: &str) -> u32 {
    let user = userauth::entity::user::Entity::find()
        .filter(userauth::entity::user::Column::Email.eq(email))
        .one(svc.db())
        .await
        .unwrap()
        .expect("user");
    userauth::service::hashing::parse_stored_hash(&user.password_hash).expect("a bcrypt hash")
}

/// A second service on the same database (the same connection pool, so SQLite in memory works
/// too) with another `bcrypt_cost`: another instance, as far as the users table can tell.
fn sibling(svc: &userauth::service::AuthService, url: &str, cost: u32) -> userauth::service::AuthService {
    let loaded = settings(url, &[("bcrypt_cost", json!(cost)), ("hash_concurrency", json!(8))]);
    userauth::service::AuthService::new(svc.db().clone(), loaded.settings.policy())
}

async fn count_events(svc: &userauth::service::AuthService, kind: &str) -> usize {
    let filter = AuditFilter { kind: Some(kind.into()), ..Default::default() };
    svc.list_audit(&filter).await.unwrap().collect::<Vec<_>>().await.len()
}

// ------------------------------------------------------------------ 5. no false 401

/// A user stored at cost 4, served at cost 5: eight correct logins at once all open a session
/// (before the credential version, the first upgrade made the other seven 401).
async fn concurrent_logins_during_an_upgrade_all_succeed(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[])).await;
    insert_user(&svc, "upgrade@example.com", bcrypt::hash(PASSWORD, 4).unwrap()).await;
    let served = sibling(&svc, &db.url, 5);
    let results = futures_util::future::join_all((0..8).map(|_| served.login("upgrade@example.com", PASSWORD))).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).map(|e| e.to_string()).collect();
    assert!(failed.is_empty(), "every correct login opens a session: {failed:?}");
    assert_eq!(stored_cost(&served, "upgrade@example.com").await, 5, "the hash was upgraded");
    for r in results {
        assert!(served.authenticate(r.unwrap().token.expose()).await.is_ok());
    }
}

/// Two costs flipping the hash back and forth (two instances configured differently), with a
/// password change by the right current password in the middle: the change succeeds and every
/// login with the password in force when it read the account is either 200 or, after the change,
/// refused; the new password works afterwards and the old one does not.
async fn password_change_during_upgrades_succeeds(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[])).await;
    insert_user(&svc, "flip@example.com", bcrypt::hash(PASSWORD, 4).unwrap()).await;
    let (four, five) = (sibling(&svc, &db.url, 4), sibling(&svc, &db.url, 5));
    let session = four.login("flip@example.com", PASSWORD).await.unwrap();
    let new_password = "a new password entirely";
    let logins = futures_util::future::join_all((0..6).map(|i| {
        let s = if i % 2 == 0 { &five } else { &four };
        s.login("flip@example.com", PASSWORD)
    }));
    let change = four.change_password(session.token.expose(), PASSWORD, new_password);
    let (logins, change) = tokio::join!(logins, change);
    assert!(change.is_ok(), "the right current password changes it: {change:?}");
    for r in &logins {
        assert!(matches!(r, Ok(_) | Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    assert!(five.login("flip@example.com", new_password).await.is_ok());
    assert!(matches!(four.login("flip@example.com", PASSWORD).await, Err(AuthError::InvalidCredentials)));
    // Sessions opened with the old password before the change ended with it (all but the changer's).
    for r in logins.into_iter().flatten() {
        assert!(svc.authenticate(r.token.expose()).await.is_err(), "an old-password session survived the change");
    }
}

/// Waits until the login for `email` has counted its attempt (its throttle row exists): from then
/// on it has read the account, and is verifying or re-hashing.
async fn wait_for_attempt(svc: &userauth::service::AuthService, email: &str) {
    for _ in 0..20_000 {
        let row = throttle::Entity::find()
            .filter(throttle::Column::Kind.eq("login"))
            .filter(throttle::Column::Subject.eq(email))
            .one(svc.db())
            .await
            .unwrap();
        if row.is_some() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the login never counted its attempt");
}

/// A password change (and a reset) that commits while a login with the old password is between
/// its read and its write wins: the login gets 401 and no session with the old password survives.
/// The login's re-hash at cost 12 (the stored hash is at 4) holds it between read and write.
async fn a_change_or_reset_committed_during_a_login_wins(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[])).await;
    for (i, via_reset) in [false, true].into_iter().enumerate() {
        let email = format!("race{i}@example.com");
        insert_user(&svc, &email, bcrypt::hash(PASSWORD, 4).unwrap()).await;
        let fast = sibling(&svc, &db.url, 4);
        let slow = sibling(&svc, &db.url, 12);
        let changer = fast.login(&email, PASSWORD).await.unwrap();
        let reset = fast.operator_reset(&email).await.unwrap();
        let login = tokio::spawn({
            let (slow, email) = (slow.clone(), email.clone());
            async move { slow.login(&email, PASSWORD).await }
        });
        wait_for_attempt(&svc, &email).await;
        let new_password = "the password after the race";
        if via_reset {
            fast.update_password(reset.token.expose(), new_password, None).await.unwrap();
        } else {
            fast.change_password(changer.token.expose(), PASSWORD, new_password).await.unwrap();
        }
        match login.await.unwrap() {
            Err(AuthError::InvalidCredentials) => {}
            Ok(s) => panic!(
                "the old password opened a session after the change committed (reset: {via_reset}; still valid: {})",
                svc.authenticate(s.token.expose()).await.is_ok()
            ),
            Err(e) => panic!("unexpected {e}"),
        }
        assert_eq!(stored_cost(&svc, &email).await, 4, "the losing login's upgrade was not written");
        assert!(fast.login(&email, new_password).await.is_ok());
    }
}

backend_tests!(
    concurrent_logins_during_an_upgrade_all_succeed,
    password_change_during_upgrades_succeeds,
    a_change_or_reset_committed_during_a_login_wins,
    one_locked_event_per_window,
    csrf_tokens_are_keyed_and_bound_to_the_session,
    page_errors_are_pages_and_api_errors_stay_json,
    page_429_and_503_are_pages,
);

/// Two real `serve` processes on one PostgreSQL, one at cost 4 and one at cost 5, so each login
/// on the other flips the stored hash: every correct login answers 200.
#[test]
fn two_instances_with_different_costs_never_401_a_correct_password() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = crate::pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    // Attempts are counted before verification (a success clears the count): more concurrent
    // logins than login_max_failures would be 429 by design, so the maximum is raised.
    let env = [("ROCKET_CLIENT_RATE_PER_MINUTE", "0"), ("ROCKET_LOGIN_MAX_FAILURES", "100")];
    let a = Server::start(dir.path(), &url, &env);
    let b = Server::start(dir.path(), &url, &[env[0], env[1], ("ROCKET_BCRYPT_COST", "5")]);
    let creds = form_body(&[("email", "flip@example.com"), ("password", PASSWORD)]);
    assert_eq!(a.form("POST", "/api/v1/register", &creds, None).status, 201);
    for round in 0..4 {
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..12)
                .map(|i| {
                    let server = if (i + round) % 2 == 0 { &a } else { &b };
                    let creds = &creds;
                    s.spawn(move || server.form("POST", "/api/v1/session", creds, None).status)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(statuses.iter().all(|s| *s == 200), "round {round}: {statuses:?}");
    }
}

// ------------------------------------------------------------------ 6. one login_locked event

/// 1,000 refused attempts on a locked account write one `login_locked` event; the metrics count
/// all of them; the next window gets its own event.
async fn one_locked_event_per_window(backend: Backend) {
    let db = TestDb::new(backend);
    let loaded = settings(&db.url, &[("login_max_failures", json!(3))]);
    let (svc, clock) = service_with_clock(&loaded).await;
    svc.register("locked@example.com", PASSWORD).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(svc.login("locked@example.com", "wrong password").await, Err(AuthError::InvalidCredentials)));
    }
    let mut refused = 0;
    for chunk in 0..50 {
        let results = futures_util::future::join_all((0..20).map(|_| svc.login("locked@example.com", PASSWORD))).await;
        for r in results {
            assert!(matches!(r, Err(AuthError::AccountLocked { .. })), "chunk {chunk}: {r:?}");
            refused += 1;
        }
    }
    assert_eq!(refused, 1000);
    assert_eq!(count_events(&svc, "login_locked").await, 1, "one event for the whole window");
    let metrics = svc.render_metrics().expect("metrics are on");
    assert!(metrics.contains("userauth_logins_total{result=\"locked\"} 1000"), "{metrics}");
    // A new window: three more failures lock it again, and that lock is noted once more.
    clock.advance(Duration::from_secs(901));
    for _ in 0..3 {
        assert!(svc.login("locked@example.com", "wrong again").await.is_err());
    }
    for _ in 0..10 {
        assert!(matches!(svc.login("locked@example.com", PASSWORD).await, Err(AuthError::AccountLocked { .. })));
    }
    assert_eq!(count_events(&svc, "login_locked").await, 2);
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Intact(_)));
}

// ------------------------------------------------------------------ 8. CSRF

use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};

struct Got {
    status: Status,
    cookies: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: String,
}

async fn got(resp: LocalResponse<'_>) -> Got {
    let status = resp.status();
    let headers: Vec<(String, String)> =
        resp.headers().iter().map(|h| (h.name().to_string(), h.value().to_string())).collect();
    let cookies = resp.cookies().iter().map(|c| (c.name().to_owned(), c.value().to_owned())).collect();
    let body = resp.into_string().await.unwrap_or_default();
    Got { status, cookies, headers, body }
}

impl Got {
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn csrf(&self) -> String {
        let marker = r#"name="csrf_token" value=""#;
        let at = self.body.find(marker).expect("a CSRF field") + marker.len();
        let end = self.body[at..].find('"').unwrap();
        self.body[at..at + end].to_owned()
    }
    /// An HTML page in the site's layout.
    fn is_page(&self) -> bool {
        self.header("Content-Type").is_some_and(|c| c.starts_with("text/html"))
            && self.body.contains(r#"<a class="brand" href="/account">userauth</a>"#)
    }
    fn is_json_error(&self, code: &str) -> bool {
        self.header("Content-Type").is_some_and(|c| c.starts_with("application/json"))
            && serde_json::from_str::<serde_json::Value>(&self.body).is_ok_and(|v| v["error"] == code)
    }
}

/// `a=b; c=d` as cookies (a local request's jar is not read from a raw `Cookie` header).
fn cookies(header: &str) -> Vec<rocket::http::Cookie<'static>> {
    header
        .split("; ")
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(n, v)| rocket::http::Cookie::new(n.to_owned(), v.to_owned()))
        .collect()
}

async fn get_with(c: &Client, path: &str, cookie: &str) -> Got {
    got(c.get(path.to_owned()).cookies(cookies(cookie)).dispatch().await).await
}

async fn post_form(c: &Client, path: &str, cookie: &str, pairs: &[(&str, &str)]) -> Got {
    got(c
        .post(path.to_owned())
        .header(ContentType::Form)
        .cookies(cookies(cookie))
        .body(form_body(pairs))
        .dispatch()
        .await)
    .await
}

/// Once logged in only the session-bound token passes: not the pre-session one, not one made
/// for an attacker's planted `csrf` cookie, not an empty cookie; and tokens are keyed (another
/// server key refuses them).
async fn csrf_tokens_are_keyed_and_bound_to_the_session(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = untracked_client_with(&db.url, &[]).await;
    svc.register("csrf@example.com", PASSWORD).await.unwrap();
    // The attacker's own pre-session pair, fetched from the real server.
    let attacker = get_with(&c, "/login", "").await;
    let (att_cookie, att_token) = (attacker.cookie("csrf").expect("a pre-session cookie"), attacker.csrf());
    // The victim logs in with their own pre-session pair.
    let form = get_with(&c, "/login", "").await;
    let pre = form.cookie("csrf").unwrap();
    let pre_cookie = format!("csrf={pre}");
    let creds = [("email", "csrf@example.com"), ("password", PASSWORD)];
    let login = post_form(&c, "/login", &pre_cookie, &[&creds[..], &[("csrf_token", &form.csrf())]].concat()).await;
    assert_eq!(login.status, Status::SeeOther, "{}", login.body);
    let session = login.cookie("session_id").expect("a session");
    let logged_in = format!("session_id={session}");
    let account = get_with(&c, "/account", &logged_in).await;
    assert_eq!(account.status, Status::Ok);
    let bound = account.csrf();
    assert_ne!(bound, form.csrf());
    // The attack of issue 16: a real session beside a planted csrf cookie and its token.
    let planted = format!("session_id={session}; csrf={att_cookie}");
    let r = post_form(&c, "/account/sessions/end-others", &planted, &[("csrf_token", &att_token)]).await;
    assert_eq!(r.status, Status::Forbidden, "a planted pre-session token is refused once logged in");
    assert!(r.is_page());
    // The victim's own pre-session token is no longer accepted either.
    let both = format!("session_id={session}; {pre_cookie}");
    let r = post_form(&c, "/logout", &both, &[("csrf_token", &form.csrf())]).await;
    assert_eq!(r.status, Status::Forbidden);
    // An empty csrf cookie, with an empty token or the old unkeyed digest of "", never passes.
    let unkeyed_empty = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"userauth csrf\0"))
    };
    // Nor does the token the server would show for an empty cookie: it mints a fresh cookie instead.
    let empty = get_with(&c, "/login", "csrf=").await;
    assert!(empty.cookie("csrf").is_some_and(|v| v.len() == 64), "a fresh pre-session cookie replaces an empty one");
    let shown = empty.csrf();
    for token in ["", unkeyed_empty.as_str(), shown.as_str()] {
        let r = post_form(&c, "/login", "csrf=", &[&creds[..], &[("csrf_token", token)]].concat()).await;
        assert_eq!(r.status, Status::Forbidden, "empty cookie, token {token:?}");
    }
    // Keyed: the same cookie and token against an instance with another server key is refused.
    let other = {
        let loaded = settings(&db.url, &[]);
        let key = std::sync::Arc::new(userauth::service::key::ServerKey::from_bytes([9; 32]));
        let svc = service_for(&loaded).await.with_key(key);
        rocket::local::asynchronous::Client::untracked(userauth::api::build(svc, &loaded)).await.expect("rocket client")
    };
    let r = post_form(&other, "/account/sessions/end-others", &logged_in, &[("csrf_token", &bound)]).await;
    assert_eq!(r.status, Status::Forbidden, "a token made with another key");
    // The right one works.
    let r = post_form(&c, "/account/sessions/end-others", &logged_in, &[("csrf_token", &bound)]).await;
    assert_eq!(r.status, Status::SeeOther, "{}", r.body);
    assert!(svc.authenticate(&session).await.is_ok());
}

// ------------------------------------------------------------------ 12. pages fail as pages

/// Every error on a page route is a page in the layout with the API's status; the same errors on
/// API routes stay JSON.
async fn page_errors_are_pages_and_api_errors_stay_json(backend: Backend) {
    let db = TestDb::new(backend);
    let extra =
        [("max_body_bytes", json!(256)), ("login_max_failures", json!(1)), ("client_rate_per_minute", json!(0))];
    let (c, svc) = untracked_client_with(&db.url, &extra).await;
    svc.register("pages@example.com", PASSWORD).await.unwrap();
    // 403 cross-site.
    for (path, page) in [("/login", true), ("/api/v1/session", false)] {
        let r = got(c
            .post(path)
            .header(ContentType::Form)
            .header(Header::new("Origin", "http://evil.example"))
            .body("email=a%40b.example&password=x")
            .dispatch()
            .await)
        .await;
        assert_eq!(r.status, Status::Forbidden, "{path}");
        assert!(if page { r.is_page() } else { r.is_json_error("cross_site_request") }, "{path}: {}", r.body);
    }
    // 404: a browser asking for an unknown page, and an API client.
    let r = got(c.get("/no-such-page").header(Header::new("Accept", "text/html")).dispatch().await).await;
    assert!(r.status == Status::NotFound && r.is_page(), "{}", r.body);
    let r = got(c.get("/api/v1/no-such-route").header(Header::new("Accept", "text/html")).dispatch().await).await;
    assert!(r.status == Status::NotFound && r.is_json_error("not_found"), "{}", r.body);
    // 413, 415, 400 (not UTF-8).
    let big = format!("email={}", "a".repeat(1000));
    let bodies: [(ContentType, Vec<u8>, Status, &str); 3] = [
        (ContentType::Form, big.into_bytes(), Status::PayloadTooLarge, "payload_too_large"),
        (ContentType::Plain, b"email=x".to_vec(), Status::UnsupportedMediaType, "unsupported_media_type"),
        (ContentType::Form, b"email=\xff\xfe&password=x".to_vec(), Status::BadRequest, ""),
    ];
    for (ct, body, status, code) in bodies {
        let r = got(c.post("/login").header(ct.clone()).body(body.clone()).dispatch().await).await;
        assert!(r.status == status && r.is_page(), "page {status}: {} {}", r.status, r.body);
        let r = got(c.post("/api/v1/session").header(ct).body(body).dispatch().await).await;
        assert_eq!(r.status, status);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        assert!(code.is_empty() || v["error"] == code, "{}", r.body);
    }
    // The locked-account 429 page carries Retry-After.
    let form = get_with(&c, "/login", "").await;
    let cookie = format!("csrf={}", form.cookie("csrf").unwrap());
    let token = form.csrf();
    let wrong = post_form(
        &c,
        "/login",
        &cookie,
        &[("email", "pages@example.com"), ("password", "wrong password here"), ("csrf_token", &token)],
    )
    .await;
    assert_eq!(wrong.status, Status::Unauthorized);
    let locked = post_form(
        &c,
        "/login",
        &cookie,
        &[("email", "pages@example.com"), ("password", PASSWORD), ("csrf_token", &token)],
    )
    .await;
    assert_eq!(locked.status, Status::TooManyRequests);
    assert!(locked.is_page());
    let secs: u64 = locked.header("Retry-After").expect("Retry-After on the locked page").parse().unwrap();
    assert!((1..=900).contains(&secs), "{secs}");
    // 500: the audit log's table is gone, so a registration cannot commit (and commits nothing).
    use sea_orm::ConnectionTrait;
    svc.db().execute_unprepared("DROP TABLE audit_events").await.unwrap();
    let form = get_with(&c, "/register", "").await;
    let cookie = format!("csrf={}", form.cookie("csrf").unwrap());
    let pairs = [("email", "broken@example.com"), ("password", PASSWORD), ("csrf_token", &form.csrf())];
    let r = post_form(&c, "/register", &cookie, &pairs).await;
    assert!(r.status == Status::InternalServerError && r.is_page(), "{} {}", r.status, r.body);
    let r =
        got(c.post("/api/v1/register").header(ContentType::Form).body(form_body(&pairs[..2])).dispatch().await).await;
    assert!(r.status == Status::InternalServerError && r.is_json_error("internal_error"), "{}", r.body);
    assert!(svc.get_user("broken@example.com").await.is_err(), "nothing was stored");
}

/// The per-client 429 and the busy 503 on a page route are pages with `Retry-After`.
async fn page_429_and_503_are_pages(backend: Backend) {
    let db = TestDb::new(backend);
    let extra = [("client_rate_per_minute", json!(1)), ("hash_concurrency", json!(1)), ("hash_queue_max", json!(0))];
    let (c, svc) = untracked_client_with(&db.url, &extra).await;
    let from: std::net::SocketAddr = "127.0.0.7:4000".parse().unwrap();
    let form = get_with(&c, "/login", "").await;
    let cookie = format!("csrf={}", form.cookie("csrf").unwrap());
    let pairs = [("email", "nobody@example.com"), ("password", "whatever it is"), ("csrf_token", &form.csrf())];
    let send = |remote: std::net::SocketAddr| {
        c.post("/login").remote(remote).header(ContentType::Form).cookies(cookies(&cookie)).body(form_body(&pairs))
    };
    // Busy: every hashing place is taken.
    let held = svc.hasher().admit(None).unwrap();
    let busy = got(send(from).dispatch().await).await;
    assert_eq!(busy.status, Status::ServiceUnavailable, "{}", busy.body);
    assert!(busy.is_page() && busy.header("Retry-After") == Some("1"));
    drop(held);
    // The address's one request a minute is used up.
    let limited = got(send(from).dispatch().await).await;
    assert_eq!(limited.status, Status::TooManyRequests, "{}", limited.body);
    assert!(limited.is_page() && limited.header("Retry-After").is_some(), "{}", limited.body);
    let api = got(c
        .post("/api/v1/session")
        .remote(from)
        .header(ContentType::Form)
        .body("email=nobody%40example.com&password=whatever")
        .dispatch()
        .await)
    .await;
    assert!(api.status == Status::TooManyRequests && api.is_json_error("too_many_requests"), "{}", api.body);
}

// ------------------------------------------------------------------ 9. own origin

#[test]
fn serve_and_doctor_warn_without_public_url_on_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("o.db"));
    let wide = [("USERAUTH_TEST_NO_ADDRESS_FLAG", "1"), ("ROCKET_ADDRESS", "0.0.0.0")];
    let warning = "public_url is unset and this server listens on 0.0.0.0";
    {
        let s = Server::start(dir.path(), &url, &wide);
        assert!(s.log_text().contains(warning), "{}", s.log_text());
    }
    {
        let s = Server::start(dir.path(), &url, &[wide[0], wide[1], ("ROCKET_PUBLIC_URL", "https://auth.example.com")]);
        assert!(!s.log_text().contains("public_url is unset"), "{}", s.log_text());
        let s = Server::start(dir.path(), &url, &[]);
        assert!(!s.log_text().contains("public_url is unset"), "loopback: {}", s.log_text());
    }
    let out = run(dir.path(), &["--database-url", &url, "doctor"], "", &[("ROCKET_ADDRESS", "0.0.0.0")]);
    let line = out.stdout.lines().find(|l| l.contains("own_origin")).unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.starts_with("WARN") && line.contains("public_url"), "{line}");
    let out = run(dir.path(), &["--database-url", &url, "doctor"], "", &[("ROCKET_ADDRESS", "127.0.0.1")]);
    assert!(out.stdout.lines().any(|l| l.starts_with("PASS") && l.contains("own_origin")), "{}", out.stdout);
}

// ------------------------------------------------------------------ 10. bounded configuration

/// Each bad value stops the real binary (db-setup and serve) with exit 1 and one line naming its
/// key, before anything is served: no panic, no 3 GB of worker threads.
#[test]
fn every_rocket_key_is_bounded_and_named_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("c.db"));
    let cases = [
        ("ROCKET_WORKERS", "0", "workers"),
        ("ROCKET_WORKERS", "100000000", "workers"),
        ("ROCKET_MAX_BLOCKING", "0", "max_blocking"),
        ("ROCKET_KEEP_ALIVE", "forever", "keep_alive"),
        ("ROCKET_KEEP_ALIVE", "86400", "keep_alive"),
        ("ROCKET_LOG_LEVEL", "loud", "log_level"),
        ("ROCKET_LIMITS", "{json=\"lots\"}", "limits"),
        ("ROCKET_LIMITS", "{json=\"2 GiB\"}", "limits.json"),
        ("ROCKET_SHUTDOWN", "{grace=99999}", "shutdown.grace"),
        ("ROCKET_IDENT", "7", "ident"),
        ("ROCKET_CLI_COLORS", "sometimes", "cli_colors"),
        ("ROCKET_IP_HEADER", "X Real IP", "ip_header"),
        ("ROCKET_TEMP_DIR", "/nonexistent/userauth", "temp_dir"),
        ("ROCKET_METRICS_TOKEN", "", "metrics_token"),
        ("ROCKET_DATABASE_MAX_CONNECTIONS", "0", "database_max_connections"),
    ];
    for (var, value, key) in cases {
        for cmd in [&["db-setup"][..], &["serve", "--port", "1"][..]] {
            let mut args = vec!["--database-url", url.as_str()];
            args.extend(cmd);
            let out = run(dir.path(), &args, "", &[(var, value)]);
            assert_eq!(out.code, 1, "{var}={value} {cmd:?}: {} {}", out.stdout, out.stderr);
            let lines: Vec<&str> = out.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{var}={value}: {}", out.stderr);
            assert!(lines[0].starts_with("error: ") && lines[0].contains(key), "{var}={value}: {}", out.stderr);
        }
    }
}

/// The README's Configuration table lists Rocket's bounded keys with the ranges the code enforces.
#[test]
fn readme_lists_rockets_ranges() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for &(key, min, max) in userauth::config::ROCKET_RANGES {
        let cells = crate::common::readme_row(&readme, key);
        assert_eq!(cells[3], format!("{min}–{max}"), "range of {key}");
    }
    let pg_row = readme.lines().find(|l| l.starts_with("| `database_max_connections`")).unwrap();
    assert!(
        pg_row.contains(&format!("at least {} on PostgreSQL", userauth::config::MIN_POSTGRES_CONNECTIONS)),
        "{pg_row}"
    );
}

// ------------------------------------------------------------------ 11. PostgreSQL, few connections

/// `database_max_connections = 1` on PostgreSQL is refused with one line naming the key (the
/// migration lock needs its own connection); 2 works: db-setup, serve, a login.
#[test]
fn postgres_with_one_connection_is_refused_and_two_work() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = crate::pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--database-url", &url, "db-setup"], "", &[("ROCKET_DATABASE_MAX_CONNECTIONS", "1")]);
    assert_eq!(out.code, 1, "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("database_max_connections") && out.stderr.contains("at least 2"), "{}", out.stderr);
    let two = [("ROCKET_DATABASE_MAX_CONNECTIONS", "2")];
    let out = run(dir.path(), &["--database-url", &url, "db-setup"], "", &two);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    let s = Server::start(dir.path(), &url, &two);
    let creds = form_body(&[("email", "two@example.com"), ("password", PASSWORD)]);
    assert_eq!(s.form("POST", "/api/v1/register", &creds, None).status, 201);
    assert_eq!(s.form("POST", "/api/v1/session", &creds, None).status, 200);
}
