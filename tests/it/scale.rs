//! Scale-out: several `userauth serve` processes on one PostgreSQL hold no state of their own.

use crate::common::{PASSWORD, Server, eventually, form_body, secs};
use crate::pg::{PrivateCluster, fresh_database};
use crate::prereq::{Prereq, require};

#[test]
fn two_instances_share_sessions_revocations_and_lockouts() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let env = [("ROCKET_LOGIN_MAX_FAILURES", "4")];
    // Both start at the same moment on an empty database: migrations must not collide.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start(dir.path(), &url, &env));
        let b = s.spawn(|| Server::start(dir.path(), &url, &env));
        (a.join().unwrap(), b.join().unwrap())
    });

    let creds = form_body(&[("email", "scale@example.com"), ("password", PASSWORD)]);
    assert_eq!(a.form("POST", "/api/v1/register", &creds, None).status, 201);
    assert_eq!(b.form("POST", "/api/v1/register", &creds, None).status, 400, "B sees A's user");
    let cookie = a.form("POST", "/api/v1/session", &creds, None).session_cookie().unwrap();
    assert_eq!(b.form("GET", "/api/v1/profile", "", Some(&cookie)).status, 200, "session made on A works on B");

    // Logout on B ends the session on A.
    assert_eq!(b.form("POST", "/api/v1/logout", "", Some(&cookie)).status, 200);
    assert_eq!(a.form("GET", "/api/v1/profile", "", Some(&cookie)).status, 401);

    // A password update through B revokes the session used on A.
    let cookie = a.form("POST", "/api/v1/session", &creds, None).session_cookie().unwrap();
    assert_eq!(a.form("GET", "/api/v1/profile", "", Some(&cookie)).status, 200);
    let token = b.form("POST", "/api/v1/reset_password", "email=scale%40example.com", None).json()["reset_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let upd = form_body(&[("reset_token", &token), ("new_password", "the second password")]);
    assert_eq!(b.form("POST", "/api/v1/update_password", &upd, None).status, 200);
    assert_eq!(a.form("GET", "/api/v1/profile", "", Some(&cookie)).status, 401);
    assert_eq!(a.form("POST", "/api/v1/update_password", &upd, None).status, 400, "the token was used on B");

    // Login failures split across instances share one count.
    let wrong = form_body(&[("email", "scale@example.com"), ("password", "wrong password!!")]);
    for server in [&a, &b, &a, &b] {
        assert_eq!(server.form("POST", "/api/v1/session", &wrong, None).status, 401);
    }
    let good = form_body(&[("email", "scale@example.com"), ("password", "the second password")]);
    let locked = a.form("POST", "/api/v1/session", &good, None);
    assert_eq!(locked.status, 429);
    assert!(locked.header("retry-after").is_some());
    assert_eq!(b.form("POST", "/api/v1/session", &good, None).status, 429);
}

#[test]
fn health_follows_postgres_down_and_back() {
    if !require(Prereq::Postgres) {
        return;
    }
    let cluster = PrivateCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &cluster.url(), &[("ROCKET_DATABASE_CONNECT_TIMEOUT_SECS", "2")]);
    let creds = form_body(&[("email", "down@example.com"), ("password", PASSWORD)]);
    assert_eq!(server.form("POST", "/api/v1/register", &creds, None).status, 201);

    cluster.stop();
    let r = health_becomes(&server, 503);
    assert_eq!(r.json()["error"], "unavailable");
    // Other routes fail cleanly too: a JSON 5xx, and the server keeps running.
    let r = server.form("POST", "/api/v1/session", &creds, None);
    assert!(r.status >= 500, "{}", r.status);
    assert!(r.json()["error"].is_string());

    cluster.restart();
    health_becomes(&server, 200);
    assert_eq!(server.form("POST", "/api/v1/session", &creds, None).status, 200, "recovered by itself");
}

fn health_becomes(server: &Server, status: u16) -> crate::common::Resp {
    let health = || Some(server.request("GET", "/health", &[], b"")).filter(|r| r.status == status);
    eventually(secs(30), &format!("/health to answer {status}"), health)
}

#[test]
fn db_setup_creates_a_missing_postgres_database() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = crate::pg::cluster().url_for(&format!("created_by_db_setup_{}", std::process::id()));
    let dir = tempfile::tempdir().unwrap();
    let out = crate::common::run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("created database"), "{}", out.stdout);
    let applied = format!("applied {} migration", userauth::service::db::known_migrations().len());
    assert!(out.stdout.contains(&applied), "{}", out.stdout);
    let again = crate::common::run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stdout.contains("created database") && again.stdout.contains("up to date"), "{}", again.stdout);
}
