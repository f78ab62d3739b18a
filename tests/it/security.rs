//! Security properties (issue: secure by default), each with a test that fails without it.

use std::sync::Arc;

use futures_util::future::join_all;
use rocket::http::{ContentType, Cookie, Status};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use serde_json::json;
use userauth::entity::user;
use userauth::service::AuthError;

use crate::common::{
    Backend, PASSWORD, Server, TestDb, client, client_with, eventually, form_body, insert_user, secs, service,
    service_for, settings, sqlite_url,
};

// ------------------------------------------------------------------ 1. tokens

/// Only SHA-256 digests reach the database: neither raw token is anywhere in the file or its WAL.
#[tokio::test]
async fn raw_tokens_never_reach_the_sqlite_file() {
    let db = TestDb::sqlite_file();
    let svc = service(&db.url).await;
    svc.register("vault@example.com", PASSWORD).await.unwrap();
    let session = svc.login("vault@example.com", PASSWORD).await.unwrap();
    let reset = svc.request_reset("vault@example.com").await.unwrap();
    let path = db.path().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(haystack.contains("vault@example.com"), "sanity: the data is in these files");
    assert!(haystack.contains(&session.token.digest()), "sanity: digests are stored");
    assert!(!haystack.contains(session.token.expose()), "raw session token stored");
    assert!(!haystack.contains(reset.token.expose()), "raw reset token stored");
    assert!(!haystack.contains(PASSWORD), "raw password stored");
}

async fn planted_cookie_is_never_adopted(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = client(&db.url).await;
    svc.register("plant@example.com", PASSWORD).await.unwrap();
    let planted = "a".repeat(64);
    let resp = c
        .post("/api/v1/session")
        .header(ContentType::Form)
        .cookie(Cookie::new("session_id", planted.clone()))
        .body(form_body(&[("email", "plant@example.com"), ("password", PASSWORD)]))
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::Ok);
    let issued = resp.cookies().get("session_id").unwrap().value().to_owned();
    assert_ne!(issued, planted);
    assert_eq!(issued.len(), 64);
    assert!(svc.authenticate(&planted).await.is_err());
    assert!(svc.authenticate(&issued).await.is_ok());
    // And every login issues a new token.
    let again = svc.login("plant@example.com", PASSWORD).await.unwrap();
    assert_ne!(again.token.expose(), issued);
}

// ------------------------------------------------------------------ 4. passwords

/// bcrypt only reads 72 bytes: a 73-byte password must not log in as its 72-byte prefix.
async fn no_truncation_at_72_bytes(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service(&db.url).await;
    let p72 = "x".repeat(72);
    svc.register("long@example.com", &p72).await.unwrap();
    assert!(svc.login("long@example.com", &p72).await.is_ok());
    for extra in ["y", "x", "é"] {
        let p73 = format!("{p72}{extra}");
        assert!(matches!(svc.login("long@example.com", &p73).await, Err(AuthError::InvalidCredentials)));
        assert!(matches!(svc.register("long2@example.com", &p73).await, Err(AuthError::InvalidPassword(_))));
    }
}

/// Hashes from other bcrypt implementations verify (PHP's documented example, in every prefix).
async fn foreign_bcrypt_hashes_verify(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service(&db.url).await;
    let body = "10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";
    for (i, prefix) in ["$2y$", "$2a$", "$2b$"].iter().enumerate() {
        let email = format!("php{i}@example.com");
        insert_user(&svc, &email, format!("{prefix}{body}")).await;
        assert!(svc.login(&email, "rasmuslerdorf").await.is_ok(), "{prefix} hash verifies");
        assert!(svc.login(&email, "rasmuslerdorF").await.is_err());
    }
}

#[test]
fn stored_hashes_use_the_configured_cost() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = TestDb::sqlite_file();
        let loaded = settings(&db.url, &[("bcrypt_cost", json!(5))]);
        let svc = service_for(&loaded).await;
        svc.register("cost@example.com", PASSWORD).await.unwrap();
        let row = user::Entity::find().one(svc.db()).await.unwrap().unwrap();
        assert!(row.password_hash.starts_with("$2b$05$"), "{}", row.password_hash);
    });
}

// ------------------------------------------------------------------ 6. throttling across instances

/// The failure count lives in the database: a second service (a restart, or another instance)
/// sees the lock the first one set.
async fn lockout_survives_restarts_and_spans_instances(backend: Backend) {
    let db = TestDb::new(backend);
    let cfg = settings(&db.url, &[("login_max_failures", json!(4))]);
    let a = service_for(&cfg).await;
    let b = service_for(&cfg).await;
    a.register("shared@example.com", PASSWORD).await.unwrap();
    for svc in [&a, &b, &a, &b] {
        assert!(matches!(svc.login("shared@example.com", "wrong password").await, Err(AuthError::InvalidCredentials)));
    }
    let restarted = service_for(&cfg).await;
    assert!(matches!(restarted.login("shared@example.com", PASSWORD).await, Err(AuthError::AccountLocked { .. })));
}

// ------------------------------------------------------------------ 8. nothing lost

async fn concurrent_registrations_of_one_email(backend: Backend) {
    let db = TestDb::new(backend);
    // 40 from one address: over the per-client budget, which is not what this test is about.
    let (c, svc) = client_with(&db.url, &[("client_rate_per_minute", json!(0))]).await;
    let c = Arc::new(c);
    let attempts = (0..40).map(|_| {
        let c = c.clone();
        async move {
            c.post("/api/v1/register")
                .header(ContentType::Form)
                .body(form_body(&[("email", "race@example.com"), ("password", PASSWORD)]))
                .dispatch()
                .await
                .status()
        }
    });
    let statuses = join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == Status::Created).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == Status::BadRequest).count(), 39, "{statuses:?}");
    let n = user::Entity::find().all(svc.db()).await.unwrap().len();
    assert_eq!(n, 1);
}

/// Logins, logouts and a password change racing on one user leave no session from before the
/// change alive, and only the new password works afterwards.
async fn concurrent_logins_logouts_and_password_change(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[("login_max_failures", json!(1000))])).await;
    svc.register("busy@example.com", PASSWORD).await.unwrap();
    let reset = svc.request_reset("busy@example.com").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            match svc.login("busy@example.com", PASSWORD).await {
                Ok(s) => {
                    if i % 3 == 0 {
                        svc.logout(s.token.expose()).await.unwrap();
                    }
                    Some(s.token)
                }
                Err(AuthError::InvalidCredentials) => None,
                Err(e) => panic!("unexpected error under concurrency: {e}"),
            }
        }));
    }
    let updater = {
        let svc = svc.clone();
        let token = reset.token.expose().to_owned();
        tokio::spawn(async move { svc.update_password(&token, "the new password!", None).await })
    };
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.extend(t.await.unwrap());
    }
    updater.await.unwrap().unwrap();
    for t in &tokens {
        assert!(svc.authenticate(t.expose()).await.is_err(), "a session from the old password survived");
    }
    assert!(svc.login("busy@example.com", PASSWORD).await.is_err());
    assert!(svc.login("busy@example.com", "the new password!").await.is_ok());
}

/// SIGKILL in the middle of a registration load: every 201 is on disk and the file is intact.
#[test]
fn sigkill_during_registrations_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.db");
    let url = sqlite_url(&path);
    // Six writers from one address: per-client limits off (they would shed most of them).
    let env = [("ROCKET_CLIENT_RATE_PER_MINUTE", "0")];
    let mut server = Server::start(dir.path(), &url, &env);
    let port = server.port;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut created = Vec::new();
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let email = format!("w{w}-{i}@example.com");
                    let body = form_body(&[("email", &email), ("password", PASSWORD)]);
                    match crate::common::try_http(
                        port,
                        "POST",
                        "/api/v1/register",
                        &[("Content-Type", "application/x-www-form-urlencoded")],
                        body.as_bytes(),
                    ) {
                        Ok(r) if r.status == 201 => {
                            created.push(email);
                            answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(r) => assert!(r.status < 500, "status {}", r.status),
                        Err(_) => break, // the server is gone
                    }
                }
                created
            })
        })
        .collect();
    // Killed in the middle of the load, once it is well under way.
    let under_way = || (answered.load(std::sync::atomic::Ordering::Relaxed) > 40).then_some(());
    eventually(secs(60), "the load to run (40 registrations)", under_way);
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let created: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let svc = service(&url).await;
        let check = svc
            .db()
            .query_one_raw(Statement::from_string(svc.db().get_database_backend(), "PRAGMA integrity_check"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(check.try_get_by_index::<String>(0).unwrap(), "ok");
        for email in &created {
            let found = svc.request_reset(email).await;
            assert!(!matches!(found, Err(AuthError::UserNotFound)), "{email} got 201 but is missing");
        }
    });
}

// ------------------------------------------------------------------ 9. secrets stay secret

#[test]
fn logs_of_a_full_flow_hold_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("log.db"));
    // The most verbose level we have: even debug and trace lines must not carry secrets.
    let server = Server::start(dir.path(), &url, &[("RUST_LOG", "trace")]);
    let r = server.form(
        "POST",
        "/api/v1/register",
        &form_body(&[("email", "log@example.com"), ("password", PASSWORD)]),
        None,
    );
    assert_eq!(r.status, 201);
    let r = server.form(
        "POST",
        "/api/v1/session",
        &form_body(&[("email", "log@example.com"), ("password", PASSWORD)]),
        None,
    );
    let cookie = r.session_cookie().unwrap();
    server.form("GET", "/api/v1/profile", "", Some(&cookie));
    let r = server.form("POST", "/api/v1/reset_password", "email=log%40example.com", None);
    let token = r.json()["reset_token"].as_str().unwrap().to_owned();
    let r = server.form(
        "POST",
        "/api/v1/update_password",
        &form_body(&[("reset_token", &token), ("new_password", "the second password")]),
        None,
    );
    assert_eq!(r.status, 200);
    server.form(
        "POST",
        "/api/v1/session",
        &form_body(&[("email", "log@example.com"), ("password", "wrong wrong wrong")]),
        None,
    );
    server.form("POST", "/api/v1/logout", "", Some(&cookie));
    let log = server.log_text();
    assert!(log.contains("/api/v1/update_password"), "the log was captured: {log}");
    for secret in [PASSWORD, "the second password", "wrong wrong wrong", cookie.as_str(), token.as_str(), "$2b$"] {
        assert!(!log.contains(secret), "log contains a secret ({secret})");
    }
}

// ------------------------------------------------------------------ 10. reset endpoint exposure

#[test]
fn warns_when_the_reset_endpoint_is_exposed() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("w.db"));
    let loopback = Server::start(dir.path(), &url, &[]);
    assert!(!loopback.log_text().contains("returns reset tokens to any caller"));
    drop(loopback);
    // Listening on every interface (still only ever contacted over loopback here).
    let exposed =
        Server::start(dir.path(), &url, &[("ROCKET_ADDRESS", "0.0.0.0"), ("USERAUTH_TEST_NO_ADDRESS_FLAG", "1")]);
    let log = exposed.log_text();
    assert_eq!(log.matches("returns reset tokens to any caller").count(), 1, "{log}");
    drop(exposed);
    let off = Server::start(
        dir.path(),
        &url,
        &[("ROCKET_ADDRESS", "0.0.0.0"), ("USERAUTH_TEST_NO_ADDRESS_FLAG", "1"), ("ROCKET_RESET_ENDPOINT", "false")],
    );
    assert!(!off.log_text().contains("returns reset tokens to any caller"));
}

crate::backend_tests!(
    planted_cookie_is_never_adopted,
    no_truncation_at_72_bytes,
    foreign_bcrypt_hashes_verify,
    concurrent_registrations_of_one_email,
    concurrent_logins_logouts_and_password_change,
);

crate::backend_tests!(persistent: lockout_survives_restarts_and_spans_instances);
