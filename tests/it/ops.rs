//! Operations (api.md §9): metrics, the audit log and `userauth doctor`.

use std::collections::BTreeMap;

use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::Client;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use userauth::service::audit::{AuditFilter, Verified};
use userauth::service::{AuthService, ListFilter};

use crate::common::{
    Backend, PASSWORD, Server, TestDb, client_with, form_body, run, service_with_clock, settings, sqlite_url,
};
use crate::prereq::{Prereq, require};

async fn post(c: &Client, path: &str, pairs: &[(&str, &str)]) -> Status {
    c.post(path).header(ContentType::Form).body(form_body(pairs)).dispatch().await.status()
}

/// register, a good login, three bad ones (the third locks: limit 3), a locked one, a reset and its
/// use, a logout: the sequence every metrics and audit test below replays.
async fn scripted_sequence(c: &Client) {
    let creds = [("email", "ops@example.com"), ("password", PASSWORD)];
    let wrong = [("email", "ops@example.com"), ("password", "not the password")];
    assert_eq!(post(c, "/api/v1/register", &creds).await, Status::Created);
    assert_eq!(post(c, "/api/v1/session", &creds).await, Status::Ok);
    for _ in 0..3 {
        assert_eq!(post(c, "/api/v1/session", &wrong).await, Status::Unauthorized);
    }
    assert_eq!(post(c, "/api/v1/session", &creds).await, Status::TooManyRequests);
    let resp =
        c.post("/api/v1/reset_password").header(ContentType::Form).body("email=ops%40example.com").dispatch().await;
    let token: Value = serde_json::from_str(&resp.into_string().await.unwrap()).unwrap();
    let token = token["reset_token"].as_str().unwrap().to_owned();
    let upd = [("reset_token", token.as_str()), ("new_password", "the replaced password")];
    assert_eq!(post(c, "/api/v1/update_password", &upd).await, Status::Ok);
    assert_eq!(c.post("/api/v1/logout").dispatch().await.status(), Status::Ok);
}

fn sequence_settings() -> Vec<(&'static str, Value)> {
    vec![("login_max_failures", json!(3)), ("client_rate_per_minute", json!(0))]
}

/// `name{labels} value` lines of an exposition, keyed by everything before the value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN))))
        .collect()
}

async fn metrics_text(c: &Client) -> String {
    let resp = c.get("/metrics").dispatch().await;
    assert_eq!(resp.status(), Status::Ok);
    assert!(resp.content_type().is_some_and(|ct| ct.to_string().starts_with("text/plain")));
    resp.into_string().await.unwrap()
}

#[tokio::test]
async fn metrics_count_exactly_what_happened() {
    let db = TestDb::sqlite_file();
    let (c, _svc) = client_with(&db.url, &sequence_settings()).await;
    scripted_sequence(&c).await;
    let text = metrics_text(&c).await;
    let m = samples(&text);
    let expect = [
        (r#"userauth_logins_total{result="success"}"#, 1.0),
        (r#"userauth_logins_total{result="invalid"}"#, 3.0),
        (r#"userauth_logins_total{result="locked"}"#, 1.0),
        (r#"userauth_logins_total{result="throttled"}"#, 0.0),
        (r#"userauth_logins_total{result="busy"}"#, 0.0),
        ("userauth_registrations_total", 1.0),
        (r#"userauth_password_resets_total{stage="issued"}"#, 1.0),
        (r#"userauth_password_resets_total{stage="completed"}"#, 1.0),
        ("userauth_password_changes_total", 0.0),
        ("userauth_hash_queue_depth", 0.0),
        (r#"userauth_http_requests_total{route="/api/v1/session",method="POST",status="401"}"#, 3.0),
        (r#"userauth_http_requests_total{route="/api/v1/session",method="POST",status="429"}"#, 1.0),
        (r#"userauth_http_requests_total{route="/api/v1/register",method="POST",status="201"}"#, 1.0),
        (r#"userauth_http_requests_total{route="/api/v1/logout",method="POST",status="200"}"#, 1.0),
    ];
    for (series, value) in expect {
        assert_eq!(m.get(series), Some(&value), "{series} in:\n{text}");
    }
    // Registration, one good and three bad logins, the new password: five hashes timed.
    assert_eq!(m.get("userauth_hash_seconds_count"), Some(&6.0), "{text}");
    assert!(m.keys().any(|k| k.starts_with("userauth_http_request_duration_seconds_bucket{route=\"/api/v1/session\"")));
    // Unknown paths are one label value, never the raw path.
    c.get("/no/such/path/12345").dispatch().await;
    let text = metrics_text(&c).await;
    assert!(!text.contains("12345") && text.contains(r#"route="unmatched""#), "{text}");
}

#[test]
fn promtool_accepts_the_exposition() {
    if !require(Prereq::Promtool) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("prom.db"));
    let server = Server::start(dir.path(), &url, &[]);
    let creds = form_body(&[("email", "prom@example.com"), ("password", PASSWORD)]);
    assert_eq!(server.form("POST", "/api/v1/register", &creds, None).status, 201);
    assert_eq!(server.form("POST", "/api/v1/session", &creds, None).status, 200);
    let exposition = server.request("GET", "/metrics", &[], b"");
    assert_eq!(exposition.status, 200);
    let mut child = std::process::Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&exposition.body).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // promtool exits 0 for a valid exposition (lint remarks are printed but are not errors).
    assert!(out.status.success(), "promtool: {report}");
    assert!(!report.contains("error"), "promtool: {report}");
}

#[tokio::test]
async fn metrics_token_is_enforced_and_metrics_can_be_off() {
    let db = TestDb::sqlite_file();
    let (c, _) = client_with(&db.url, &[("metrics_token", json!("s3cret-scrape"))]).await;
    for auth in [None, Some("Bearer wrong"), Some("s3cret-scrape"), Some("Basic s3cret-scrape")] {
        let mut req = c.get("/metrics");
        if let Some(a) = auth {
            req = req.header(Header::new("Authorization", a));
        }
        let resp = req.dispatch().await;
        assert_eq!(resp.status(), Status::Unauthorized, "{auth:?}");
        let body: Value = serde_json::from_str(&resp.into_string().await.unwrap()).unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    let ok = c.get("/metrics").header(Header::new("Authorization", "Bearer s3cret-scrape")).dispatch().await;
    assert_eq!(ok.status(), Status::Ok);
    let db = TestDb::sqlite_file();
    let (c, _) = client_with(&db.url, &[("metrics", json!(false))]).await;
    assert_eq!(c.get("/metrics").dispatch().await.status(), Status::NotFound);
}

#[tokio::test]
async fn throttled_logins_are_counted() {
    let db = TestDb::sqlite_file();
    let (c, _) = client_with(&db.url, &[("client_rate_per_minute", json!(1))]).await;
    let creds = [("email", "t@example.com"), ("password", PASSWORD)];
    assert_eq!(post(&c, "/api/v1/session", &creds).await, Status::Unauthorized);
    assert_eq!(post(&c, "/api/v1/session", &creds).await, Status::TooManyRequests);
    let m = samples(&metrics_text(&c).await);
    assert_eq!(m.get(r#"userauth_logins_total{result="throttled"}"#), Some(&1.0));
    assert_eq!(m.get(r#"userauth_logins_total{result="invalid"}"#), Some(&1.0));
}

// ------------------------------------------------------------------ audit

async fn kinds(svc: &AuthService) -> Vec<String> {
    use futures_util::StreamExt;
    let events: Vec<_> = svc.list_audit(&AuditFilter::default()).await.unwrap().collect().await;
    events.into_iter().map(|e| e.unwrap().kind).collect()
}

async fn audit_records_the_sequence_in_order(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = client_with(&db.url, &sequence_settings()).await;
    scripted_sequence(&c).await;
    assert_eq!(
        kinds(&svc).await,
        [
            "registered",
            "login_succeeded",
            "login_failed",
            "login_failed",
            "login_failed",
            "login_locked",
            "reset_issued",
            "password_reset",
        ],
        "the logout came after the password reset ended every session, so it ended nothing"
    );
    assert_eq!(svc.verify_audit().await.unwrap(), Verified::Intact(8));
    // The CLI adds its own events, as the operator.
    svc.register("cli@example.com", PASSWORD).await.unwrap();
    svc.logout_everywhere("ops@example.com").await.unwrap();
    svc.delete_user("cli@example.com").await.unwrap();
    let all = kinds(&svc).await;
    assert_eq!(&all[8..], ["user_added", "sessions_revoked", "user_deleted"]);
    use futures_util::StreamExt;
    let events: Vec<_> = svc.list_audit(&AuditFilter::default()).await.unwrap().collect().await;
    let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
    assert_eq!(events[0].actor, "api");
    assert_eq!(events[8].actor, "cli");
    assert!(events.iter().enumerate().all(|(i, e)| e.id == i as i64 + 1), "ids run 1, 2, 3 …");
    assert_eq!(events[0].email.as_deref(), Some("ops@example.com"));
    assert_eq!(svc.verify_audit().await.unwrap(), Verified::Intact(11));
}

/// Nothing secret in any column: no password, token or hash, in the file or its WAL.
#[tokio::test]
async fn audit_rows_hold_no_secret() {
    let db = TestDb::sqlite_file();
    let (c, svc) = client_with(&db.url, &sequence_settings()).await;
    scripted_sequence(&c).await;
    let rows = svc
        .db()
        .query_all_raw(Statement::from_string(svc.db().get_database_backend(), "SELECT * FROM audit_events"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 8);
    let dump = format!("{rows:?}");
    for secret in [PASSWORD, "not the password", "the replaced password", "$2b$"] {
        assert!(!dump.contains(secret), "{secret} in the audit log");
    }
}

async fn tampering_is_detected_and_named(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = client_with(&db.url, &sequence_settings()).await;
    scripted_sequence(&c).await;
    let exec = |sql: &str| {
        let svc = svc.clone();
        let sql = sql.to_owned();
        async move { svc.db().execute_unprepared(&sql).await.unwrap() }
    };
    // Edit one row.
    exec("UPDATE audit_events SET email = 'other@example.com' WHERE seq = 4").await;
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 4, .. }));
    exec("UPDATE audit_events SET email = 'ops@example.com' WHERE seq = 4").await;
    assert_eq!(svc.verify_audit().await.unwrap(), Verified::Intact(8));
    // Reorder two rows (swap their contents).
    exec("UPDATE audit_events SET kind = 'login_locked' WHERE seq = 5").await;
    exec("UPDATE audit_events SET kind = 'login_failed' WHERE seq = 6").await;
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 5, .. }));
    exec("UPDATE audit_events SET kind = 'login_failed' WHERE seq = 5").await;
    exec("UPDATE audit_events SET kind = 'login_locked' WHERE seq = 6").await;
    // Delete one row, then the last one.
    exec("DELETE FROM audit_events WHERE seq = 3").await;
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 3, .. }));
    // And the operator's command says so (a memory database is not reachable from another process).
    if backend != Backend::SqliteMemory {
        let dir = tempfile::tempdir().unwrap();
        let key = [("ROCKET_KEY", crate::common::TEST_KEY_B64)];
        let out = run(dir.path(), &["--database-url", &db.url, "audit", "verify"], "", &key);
        assert_eq!(out.code, 1);
        assert!(out.stderr.contains("event 3"), "{}", out.stderr);
    }
}

#[tokio::test]
async fn deleting_the_newest_events_is_detected() {
    let db = TestDb::sqlite_file();
    let (c, svc) = client_with(&db.url, &sequence_settings()).await;
    scripted_sequence(&c).await;
    svc.db().execute_unprepared("DELETE FROM audit_events WHERE seq >= 7").await.unwrap();
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 8, .. }));
}

/// A rolled-back change leaves no event; a committed one always has its event.
#[tokio::test]
async fn events_share_the_fate_of_their_change() {
    let db = TestDb::sqlite_file();
    let (_c, svc) = client_with(&db.url, &[]).await;
    svc.register("twice@example.com", PASSWORD).await.unwrap();
    // The duplicate's insert fails inside the transaction: no event.
    assert!(svc.register("twice@example.com", PASSWORD).await.is_err());
    assert_eq!(kinds(&svc).await, ["user_added"]);
    let users: Vec<_> = {
        use futures_util::StreamExt;
        svc.list_users(&ListFilter::default()).await.unwrap().collect().await
    };
    assert_eq!(users.len(), 1);
}

/// 40 logins at once: the chain verifies and holds exactly 40 login events.
async fn concurrent_appends_keep_the_chain(backend: Backend) {
    let db = TestDb::new(backend);
    let cfg = settings(&db.url, &[("login_max_failures", json!(1000))]);
    let svc = crate::common::service_for(&cfg).await;
    svc.register("many@example.com", PASSWORD).await.unwrap();
    let logins = (0..40).map(|_| {
        let svc = svc.clone();
        tokio::spawn(async move { svc.login("many@example.com", PASSWORD).await.map(|_| ()) })
    });
    for r in futures_util::future::join_all(logins).await {
        r.unwrap().unwrap();
    }
    assert_eq!(svc.verify_audit().await.unwrap(), Verified::Intact(41));
    assert_eq!(kinds(&svc).await.iter().filter(|k| *k == "login_succeeded").count(), 40);
}

/// Two real servers on one PostgreSQL append to one chain.
#[test]
fn two_instances_keep_one_chain() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = crate::pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let env = [("ROCKET_CLIENT_RATE_PER_MINUTE", "0"), ("ROCKET_LOGIN_MAX_FAILURES", "1000")];
    let a = Server::start(dir.path(), &url, &env);
    let b = Server::start(dir.path(), &url, &env);
    let creds = form_body(&[("email", "chain@example.com"), ("password", PASSWORD)]);
    assert_eq!(a.form("POST", "/api/v1/register", &creds, None).status, 201);
    std::thread::scope(|s| {
        for i in 0..40 {
            let server = if i % 2 == 0 { &a } else { &b };
            let creds = &creds;
            s.spawn(move || assert_eq!(server.form("POST", "/api/v1/session", creds, None).status, 200));
        }
    });
    let out = run(dir.path(), &["--database-url", &url, "audit", "verify"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "41 events, chain intact");
    let list =
        run(dir.path(), &["--database-url", &url, "audit", "list", "--json", "--kind", "login_succeeded"], "", &[]);
    let events: Vec<Value> = list.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 40);
    for e in &events {
        assert_eq!(e["actor"], "api");
        assert_eq!(e["client"], "127.0.0.1");
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["actor", "at", "client", "email", "hash", "id", "kind", "method", "user_id"]);
        assert_eq!(e["method"], "password");
    }
}

async fn pruning_keeps_the_rest_verifiable(backend: Backend) {
    let db = TestDb::new(backend);
    let (svc, clock) = service_with_clock(&settings(&db.url, &[("audit_retention_days", json!(30))])).await;
    svc.register("old@example.com", PASSWORD).await.unwrap();
    svc.login("old@example.com", PASSWORD).await.unwrap();
    clock.advance(std::time::Duration::from_secs(40 * 86_400));
    svc.login("old@example.com", PASSWORD).await.unwrap();
    assert_eq!(svc.prune_audit().await.unwrap(), 2);
    assert_eq!(kinds(&svc).await, ["login_succeeded"]);
    assert_eq!(svc.verify_audit().await.unwrap(), Verified::Intact(1));
    svc.login("old@example.com", PASSWORD).await.unwrap();
    assert_eq!(svc.verify_audit().await.unwrap(), Verified::Intact(2));
    assert_eq!(svc.prune_audit().await.unwrap(), 0);
    // Deleting the first remaining event is still caught after pruning.
    svc.db().execute_unprepared("DELETE FROM audit_events WHERE seq = 3").await.unwrap();
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 3, .. }));
}

#[test]
fn audit_list_filters_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("list.db"));
    assert_eq!(run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]).code, 0);
    for email in ["a@example.com", "b@example.com"] {
        let out = run(dir.path(), &["--database-url", &url, "user", "add", email], &format!("{PASSWORD}\n"), &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let out =
        run(dir.path(), &["--database-url", &url, "audit", "list", "--json", "--email", "B@example.com"], "", &[]);
    let events: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 1, "{}", out.stdout);
    assert_eq!((events[0]["kind"].as_str(), events[0]["actor"].as_str()), (Some("user_added"), Some("cli")));
    assert_eq!(events[0]["client"], Value::Null);
    let out = run(dir.path(), &["--database-url", &url, "audit", "list", "--limit", "1"], "", &[]);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    let out = run(dir.path(), &["--database-url", &url, "audit", "list", "--since", "2999-01-01T00:00:00Z"], "", &[]);
    assert_eq!(out.stdout, "");
    let out = run(dir.path(), &["--database-url", &url, "audit", "list", "--kind", "nonsense"], "", &[]);
    assert_eq!(out.code, 1);
    let out = run(dir.path(), &["--database-url", &url, "audit", "list", "--since", "yesterday"], "", &[]);
    assert_eq!(out.code, 1);
    let out = run(dir.path(), &["--database-url", &url, "audit", "verify"], "", &[]);
    assert_eq!((out.code, out.stdout.trim()), (0, "2 events, chain intact"));
}

// ------------------------------------------------------------------ doctor

#[test]
fn doctor_flags_a_weak_configuration_and_passes_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("doc.db"));
    assert_eq!(run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]).code, 0);
    let weak = [
        ("ROCKET_BCRYPT_COST", "10"),
        ("ROCKET_COOKIE_SECURE", "false"),
        ("ROCKET_PUBLIC_URL", "https://auth.example.com"),
        ("ROCKET_ADDRESS", "0.0.0.0"),
    ];
    let out = run(dir.path(), &["--database-url", &url, "doctor"], "", &weak);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let line = |name: &str| out.stdout.lines().find(|l| l.contains(name)).unwrap_or_default().to_owned();
    assert!(line("bcrypt_cost").starts_with("WARN"), "{}", out.stdout);
    assert!(line("cookie_secure").starts_with("FAIL"), "{}", out.stdout);
    assert!(line("reset_exposure").starts_with("WARN"), "{}", out.stdout);
    assert!(line("migrations").starts_with("PASS"), "{}", out.stdout);
    let good = [
        ("ROCKET_COOKIE_SECURE", "true"),
        ("ROCKET_PUBLIC_URL", "https://auth.example.com"),
        ("ROCKET_ADDRESS", "0.0.0.0"),
        ("ROCKET_RESET_ENDPOINT", "false"),
        ("ROCKET_METRICS_TOKEN", "scrape-token"),
        ("ROCKET_BCRYPT_COST", "12"),
    ];
    let out = run(dir.path(), &["--database-url", &url, "doctor", "--json"], "", &good);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let checks: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(checks.len() >= 8);
    assert!(checks.iter().all(|c| c["status"] == "PASS"), "{}", out.stdout);
    // A database that is not set up fails.
    let fresh = sqlite_url(&dir.path().join("fresh.db"));
    let out = run(dir.path(), &["--database-url", &fresh, "doctor"], "", &good);
    assert_eq!(out.code, 1);
    assert!(out.stdout.lines().any(|l| l.starts_with("FAIL") && l.contains("migrations")), "{}", out.stdout);
}

#[test]
fn doctor_checks_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("srv.db"));
    let server = Server::start(dir.path(), &url, &[("ROCKET_METRICS_TOKEN", "t0ken")]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let env = [("ROCKET_ADDRESS", "127.0.0.1"), ("ROCKET_BCRYPT_COST", "12")];
    let out = run(dir.path(), &["--database-url", &url, "doctor", "--url", &base], "", &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for name in ["server_health", "security_headers", "metrics_exposed"] {
        let l = out.stdout.lines().find(|l| l.contains(name)).unwrap_or_default();
        assert!(l.starts_with("PASS"), "{name}: {}", out.stdout);
    }
    drop(server);
    let out = run(dir.path(), &["--database-url", &url, "doctor", "--url", &base], "", &env);
    assert_eq!(out.code, 1, "a server that is down fails: {}", out.stdout);
}

crate::backend_tests!(
    audit_records_the_sequence_in_order,
    tampering_is_detected_and_named,
    concurrent_appends_keep_the_chain,
    pruning_keeps_the_rest_verifiable
);

/// The README's example alert rules are valid Prometheus rules over series we export.
#[test]
fn example_alert_rules_are_valid() {
    if !require(Prereq::Promtool) {
        return;
    }
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/ops/alerts.yml");
    let out = std::process::Command::new("/usr/bin/promtool").args(["check", "rules", rules]).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(rules).unwrap();
    for series in ["userauth_logins_total", "userauth_hash_queue_depth"] {
        assert!(text.contains(series));
    }
}
