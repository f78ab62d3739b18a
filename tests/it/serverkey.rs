//! The server key (api.md §14) wired in: the key file and `key`, the fingerprint in the database,
//! the keyed audit chain, the durable encrypted outbox, uniform reset work, and the reset routes
//! under the per-client limit. Real SQLite files, real PostgreSQL, real `serve` processes, a real
//! SMTP server (python3-aiosmtpd).

use std::path::Path;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use userauth::entity::{audit_event, audit_head, outbox, reset_token, server_key};
use userauth::service::audit::{AuditFilter, Verified};
use userauth::service::{AuthService, ResetRequest};

use crate::common::{
    Backend, PASSWORD, Server, TestDb, eventually, form_body, http_from, recording_service, run, secs, service_for,
    settings, sqlite_url,
};
use crate::mail::{outbox_len, start_server, token_in};
use crate::prereq::{Prereq, require};
use crate::waiting::ClosedPort;

const FROM: &str = "Accounts <no-reply@example.com>";

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The 16 hex digits a command prints for a key.
fn fingerprint_of(b64_key: &str) -> String {
    userauth::service::key::ServerKey::from_base64(b64_key).unwrap().fingerprint()
}

// ------------------------------------------------------------------ the key file and `key`

#[test]
fn the_key_file_is_created_private_shared_and_checked_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("k.db"));
    let key_path = dir.path().join("userauth.key");
    let setup = run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]);
    assert_eq!(setup.code, 0, "{}", setup.stderr);
    assert_eq!(mode(&key_path), 0o600, "created private");
    let key_bytes = std::fs::read(&key_path).unwrap();
    assert_eq!(key_bytes.len(), 32);
    let fp = fingerprint_of(&b64(&key_bytes));
    assert!(setup.stdout.contains(&fp), "db-setup names the fingerprint: {}", setup.stdout);
    // Repeating keeps the key.
    assert_eq!(run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]).code, 0);
    assert_eq!(std::fs::read(&key_path).unwrap(), key_bytes);
    let add = run(dir.path(), &["--database-url", &url, "user", "add", "k@example.com"], &format!("{PASSWORD}\n"), &[]);
    assert_eq!(add.code, 0, "{}", add.stderr);

    // Elsewhere, without the file: refused, naming the file and the fingerprint it needs. No
    // new key is made behind the operator's back.
    let other = tempfile::tempdir().unwrap();
    let out = run(other.path(), &["--database-url", &url, "user", "list"], "", &[]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: ") && out.stderr.contains("userauth.key") && out.stderr.contains(&fp));
    assert!(!other.path().join("userauth.key").exists());
    let out = run(other.path(), &["--database-url", &url, "serve", "--port", "1"], "", &[]);
    assert_eq!(out.code, 1, "serve does not start with a fresh key on a keyed database");
    assert!(out.stderr.contains(&fp), "{}", out.stderr);
    // `key` (base64) instead of the file; `key_file` elsewhere.
    let env = [("ROCKET_KEY", b64(&key_bytes))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run(other.path(), &["--database-url", &url, "audit", "verify"], "", &env);
    assert_eq!((out.code, out.stdout.trim()), (0, "1 events, chain intact"), "{}", out.stderr);
    let kf = key_path.display().to_string();
    let out = run(other.path(), &["--database-url", &url, "user", "list"], "", &[("ROCKET_KEY_FILE", &kf)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Another key: refused with both fingerprints.
    let wrong = b64(&[9u8; 32]);
    let out = run(other.path(), &["--database-url", &url, "user", "list"], "", &[("ROCKET_KEY", &wrong)]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains(&fp) && out.stderr.contains(&fingerprint_of(&wrong)), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1);
    // A malformed `key` is named.
    let out = run(other.path(), &["--database-url", &url, "user", "list"], "", &[("ROCKET_KEY", "c2hvcnQ=")]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("key: not base64 of 32 bytes"), "{}", out.stderr);
    assert!(!out.stderr.contains("c2hvcnQ"), "the value is not echoed: {}", out.stderr);

    // doctor checks it.
    let out = run(dir.path(), &["--database-url", &url, "doctor"], "", &[]);
    let line = out.stdout.lines().find(|l| l.contains("server_key")).unwrap_or_default().to_owned();
    assert!(line.starts_with("PASS") && line.contains(&fp), "{}", out.stdout);
    let out = run(other.path(), &["--database-url", &url, "doctor"], "", &[("ROCKET_KEY", &wrong)]);
    assert_eq!(out.code, 1);
    let line = out.stdout.lines().find(|l| l.contains("server_key")).unwrap_or_default().to_owned();
    assert!(line.starts_with("FAIL") && line.contains(&fp), "{}", out.stdout);

    // Readable by the group: every command stops, naming the file.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    for args in [
        vec!["user", "list"],
        vec!["audit", "verify"],
        vec!["doctor"],
        vec!["db-setup"],
        vec!["mail-test", "x@example.com"],
        vec!["serve", "--port", "1"],
    ] {
        let mut all = vec!["--database-url", url.as_str()];
        all.extend(args.iter().copied());
        let out = run(dir.path(), &all, "", &[]);
        assert_eq!(out.code, 1, "{args:?}");
        assert!(out.stderr.contains("userauth.key") && out.stderr.contains("readable"), "{args:?}: {}", out.stderr);
    }
}

/// The newcomer's `serve` in an empty directory makes its own key (and database).
#[test]
fn serve_creates_the_key_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("new.db"));
    let server = Server::start(dir.path(), &url, &[]);
    assert_eq!(mode(&dir.path().join("userauth.key")), 0o600);
    drop(server);
    let out = run(dir.path(), &["--database-url", &url, "audit", "verify"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// Two instances on one PostgreSQL: the second, with another key, does not start.
#[test]
fn a_second_instance_with_another_key_is_refused() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = crate::pg::fresh_database();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(a_dir.path(), &url, &[]);
    let a_fp = fingerprint_of(&b64(&std::fs::read(a_dir.path().join("userauth.key")).unwrap()));
    let other = b64(&[5u8; 32]);
    // Bounded: a second instance that wrongly started would otherwise serve until killed.
    let log = b_dir.path().join("b.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = crate::common::bin()
        .current_dir(b_dir.path())
        .args(["--database-url", &url, "serve", "--port", "0", "--address", "127.0.0.1"])
        .env("ROCKET_KEY", &other)
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    // Killed on drop should it wrongly start (and then time out here).
    let mut b = Server { child, port: 0, log: log.clone(), origin: String::new() };
    let status = Some(eventually(secs(60), "the second instance to exit", || b.child.try_wait().unwrap()));
    let stderr = std::fs::read_to_string(&log).unwrap();
    let out =
        crate::common::Output { code: status.and_then(|s| s.code()).unwrap_or(-1), stdout: String::new(), stderr };
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(&a_fp) && out.stderr.contains(&fingerprint_of(&other)), "{}", out.stderr);
    // The first instance is unaffected.
    assert_eq!(a.request("GET", "/health", &[], b"").status, 200);
}

// ------------------------------------------------------------------ the keyed audit chain

fn canonical(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
    json!([e["id"], s("at"), s("kind"), s("user_id"), s("email"), s("actor"), s("client")]).to_string()
}

fn sha256_link(prev: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

async fn events(svc: &AuthService) -> Vec<Value> {
    use futures_util::StreamExt;
    let all: Vec<_> = svc.list_audit(&AuditFilter::default()).await.unwrap().collect().await;
    all.into_iter().map(|e| serde_json::to_value(e.unwrap()).unwrap()).collect()
}

async fn exec(svc: &AuthService, sql: &str) {
    svc.db().execute_unprepared(sql).await.unwrap();
}

/// Rewrites every event's links with `link` from `prev0` on, and the head: what an attacker with
/// write access to the database (and no key) does after editing history.
async fn relink(svc: &AuthService, prev0: &str, link: impl Fn(&str, &str) -> String) {
    let mut prev = prev0.to_owned();
    let evs = events(svc).await;
    for e in &evs {
        let hash = link(&prev, &canonical(e));
        let seq = e["id"].as_i64().unwrap();
        audit_event::Entity::update_many()
            .col_expr(audit_event::Column::PrevHash, Expr::value(prev.clone()))
            .col_expr(audit_event::Column::Hash, Expr::value(hash.clone()))
            .filter(audit_event::Column::Seq.eq(seq))
            .exec(svc.db())
            .await
            .unwrap();
        prev = hash;
    }
    let last = evs.last().map(|e| e["id"].as_i64().unwrap()).unwrap_or(0);
    audit_head::Entity::update_many()
        .col_expr(audit_head::Column::Seq, Expr::value(last))
        .col_expr(audit_head::Column::Hash, Expr::value(prev))
        .filter(audit_head::Column::Id.eq(1))
        .exec(svc.db())
        .await
        .unwrap();
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

async fn some_history(svc: &AuthService) {
    for i in 0..3 {
        svc.register(&format!("h{i}@example.com"), PASSWORD).await.unwrap();
    }
    svc.login("h0@example.com", PASSWORD).await.unwrap();
    assert!(svc.login("h1@example.com", "wrong password here").await.is_err());
    assert_eq!(svc.verify_audit().await.unwrap(), Verified::Intact(5));
}

/// The attack: delete event 3, edit event 1, renumber, recompute every hash (unkeyed,
/// as §9 used to define them) and the head. The old rule accepts the result; the keyed chain
/// does not. Nor does a chain relinked under another key, nor moving the key anchor.
async fn rewriting_history_without_the_key_is_detected(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[])).await;
    some_history(&svc).await;
    // Links are not plain SHA-256 any more.
    let evs = events(&svc).await;
    assert_ne!(evs[0]["hash"].as_str().unwrap(), sha256_link(GENESIS, &canonical(&evs[0])));

    exec(&svc, "DELETE FROM audit_events WHERE seq = 3").await;
    for seq in 4..=5 {
        exec(&svc, &format!("UPDATE audit_events SET seq = {} WHERE seq = {seq}", seq - 1)).await;
    }
    exec(&svc, "UPDATE audit_events SET email = 'someone@else.example' WHERE seq = 1").await;
    relink(&svc, GENESIS, sha256_link).await;
    // The forgery is complete by the unkeyed rule: every link recomputes, the head names the last.
    let forged = events(&svc).await;
    assert_eq!(forged.len(), 4);
    let mut prev = GENESIS.to_owned();
    for e in &forged {
        assert_eq!(e["hash"].as_str().unwrap(), sha256_link(&prev, &canonical(e)));
        prev = e["hash"].as_str().unwrap().to_owned();
    }
    assert!(
        matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 1, .. }),
        "{:?}",
        svc.verify_audit().await
    );
    // Relinked with a key that is not the server's: still broken.
    let wrong = userauth::service::key::ServerKey::from_bytes([1; 32]);
    relink(&svc, GENESIS, |p, c| hex::encode(wrong.mac("audit", format!("{p}{c}").as_bytes()))).await;
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 1, .. }));
    // Declaring the whole chain "written before the key" needs the key too.
    relink(&svc, GENESIS, sha256_link).await;
    let head = audit_head::Entity::find_by_id(1).one(svc.db()).await.unwrap().unwrap();
    server_key::Entity::update_many()
        .col_expr(server_key::Column::LegacySeq, Expr::value(head.seq))
        .col_expr(server_key::Column::LegacyHash, Expr::value(head.hash))
        .exec(svc.db())
        .await
        .unwrap();
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { .. }));
}

/// Pruning keys its anchor: deleting the oldest events and moving the anchor by hand is caught.
async fn moving_the_pruning_anchor_without_the_key_is_detected(backend: Backend) {
    let db = TestDb::new(backend);
    let svc = service_for(&settings(&db.url, &[])).await;
    some_history(&svc).await;
    let second = events(&svc).await[1]["hash"].as_str().unwrap().to_owned();
    exec(&svc, "DELETE FROM audit_events WHERE seq <= 2").await;
    audit_head::Entity::update_many()
        .col_expr(audit_head::Column::PrunedSeq, Expr::value(2i64))
        .col_expr(audit_head::Column::PrunedHash, Expr::value(second))
        .exec(svc.db())
        .await
        .unwrap();
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 3, .. }));
}

/// A chain written before the key existed (plain SHA-256 links, by the previous release's
/// schema) keeps verifying after the upgrade, and is still protected: its events cannot be edited,
/// and the new events after it are keyed.
async fn a_chain_from_before_the_key_keeps_verifying(backend: Backend) {
    use migration::MigratorTrait;
    use sea_orm::ActiveValue::Set;
    let db = TestDb::new(backend);
    let loaded = settings(&db.url, &[]);
    let conn = userauth::service::db::connect(&loaded.db).await.unwrap();
    // The schema as the release before the key left it.
    migration::Migrator::up(&conn, Some(3)).await.unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-01T10:00:00.123456Z").unwrap().to_utc();
    let mut prev = GENESIS.to_owned();
    for seq in 1..=2i64 {
        let email = format!("old{seq}@example.com");
        let c = json!([seq, "2026-11-01T10:00:00.123456Z", "user_added", "", email, "cli", ""]).to_string();
        let hash = sha256_link(&prev, &c);
        let row = audit_event::ActiveModel {
            seq: Set(seq),
            at: Set(at),
            kind: Set("user_added".into()),
            user_id: Set(None),
            email: Set(Some(email)),
            actor: Set("cli".into()),
            client: Set(None),
            prev_hash: Set(prev.clone()),
            hash: Set(hash.clone()),
            // A column added later (passkeys' login method): not in this older schema.
            ..Default::default()
        };
        // No RETURNING: the entity knows columns this older schema does not have yet.
        audit_event::Entity::insert(row).exec_without_returning(&conn).await.unwrap();
        prev = hash;
    }
    conn.execute_unprepared(&format!("UPDATE audit_head SET seq = 2, hash = '{prev}' WHERE id = 1")).await.unwrap();
    drop(conn);
    // The upgrade: migrations, then the first keyed start records the anchor.
    let svc = service_for(&loaded).await;
    let anchor = server_key::Entity::find_by_id(1).one(svc.db()).await.unwrap().unwrap();
    assert_eq!((anchor.legacy_seq, anchor.legacy_hash.as_str()), (2, prev.as_str()));
    svc.register("new@example.com", PASSWORD).await.unwrap();
    assert_eq!(svc.verify_audit().await.unwrap(), Verified::Intact(3));
    let evs = events(&svc).await;
    assert_ne!(evs[2]["hash"].as_str().unwrap(), sha256_link(&prev, &canonical(&evs[2])), "new links are keyed");
    // An edit in the legacy part is caught, even relinked by the unkeyed rule up to the anchor.
    exec(&svc, "UPDATE audit_events SET email = 'x@example.com' WHERE seq = 1").await;
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 1, .. }));
    let first = events(&svc).await[0].clone();
    let relinked = sha256_link(GENESIS, &canonical(&first));
    exec(&svc, &format!("UPDATE audit_events SET hash = '{relinked}' WHERE seq = 1")).await;
    exec(&svc, &format!("UPDATE audit_events SET prev_hash = '{relinked}' WHERE seq = 2")).await;
    let second = events(&svc).await[1].clone();
    let relinked2 = sha256_link(&relinked, &canonical(&second));
    exec(&svc, &format!("UPDATE audit_events SET hash = '{relinked2}' WHERE seq = 2")).await;
    assert!(matches!(svc.verify_audit().await.unwrap(), Verified::Broken { seq: 2, .. }), "the anchor holds");
}

// ------------------------------------------------------------------ uniform reset work

/// In email mode a reset request for a registered address and one for an unknown address run
/// the same SQL statements, in the same order, and write the same rows (a throttle count and one
/// encrypted outbox row of the same size); nothing about the account is read or written before
/// the answer. The worker does the rest afterwards: a token and an event for the account only.
async fn reset_requests_do_the_same_work_for_any_address(backend: Backend) {
    let db = TestDb::new(backend);
    let (svc, sql) = recording_service(&db.url, &[("reset_delivery", json!("email"))]).await;
    // Same length on purpose: the encrypted rows then have the same size too.
    let (known, ghost) = ("known@example.com", "ghost@example.com");
    svc.register(known, PASSWORD).await.unwrap();
    let audit_before = audit_event::Entity::find().count(svc.db()).await.unwrap();

    let mut runs = Vec::new();
    for email in [known, ghost] {
        let (answer, statements) = sql.during(svc.self_service_reset(email)).await;
        assert!(matches!(answer.unwrap(), ResetRequest::Emailed));
        runs.push(statements);
    }
    assert!(!runs[0].is_empty());
    assert_eq!(runs[0], runs[1], "the same statements for a registered and an unknown address");
    assert!(runs[0].iter().all(|s| !s.contains("users") && !s.contains("reset_tokens") && !s.contains("audit")));
    assert_eq!(reset_token::Entity::find().count(svc.db()).await.unwrap(), 0, "no token before the answer");
    assert_eq!(audit_event::Entity::find().count(svc.db()).await.unwrap(), audit_before);
    let rows = outbox::Entity::find().all(svc.db()).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].payload.len(), rows[1].payload.len());
    for r in &rows {
        for email in [known, ghost] {
            assert!(!r.payload.windows(email.len()).any(|w| w == email.as_bytes()), "the address is encrypted");
        }
    }

    // After the answer: the unknown request is dropped; the known one gets its token, its event,
    // and (the mail server being down) waits for a retry.
    while svc.outbox_step().await.unwrap() {}
    let left = outbox::Entity::find().all(svc.db()).await.unwrap();
    assert_eq!(left.len(), 1, "the registered address's email waits for the mail server");
    assert_eq!(left[0].kind, "email");
    assert!(left[0].not_before > chrono::Utc::now(), "backed off");
    assert_eq!(reset_token::Entity::find().count(svc.db()).await.unwrap(), 1);
    let kinds: Vec<String> = events(&svc).await.iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds.last().map(String::as_str), Some("reset_issued"));
    assert_eq!(svc.verify_audit().await.unwrap(), Verified::Intact(audit_before + 1));
}

crate::backend_tests!(
    rewriting_history_without_the_key_is_detected,
    moving_the_pruning_anchor_without_the_key_is_detected,
    reset_requests_do_the_same_work_for_any_address
);
// The old schema's connection is closed before the upgrade: a memory database would not outlive it.
crate::backend_tests!(persistent: a_chain_from_before_the_key_keeps_verifying);

// ------------------------------------------------------------------ the durable outbox

fn email_env(smtp_port: u16, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("ROCKET_RESET_DELIVERY", "email".to_owned()),
        ("ROCKET_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
        ("ROCKET_MAIL_FROM", FROM.to_owned()),
        ("ROCKET_PUBLIC_URL", "https://auth.example.com".to_owned()),
        ("ROCKET_CLIENT_RATE_PER_MINUTE", "0".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

/// Accepted while the mail server is down, `serve` SIGKILLed, started again with the mail server
/// up: exactly one message, whose token works; the outbox is empty afterwards.
#[test]
fn an_accepted_reset_survives_sigkill() {
    if !require(Prereq::Smtp) {
        return;
    }
    let down = ClosedPort::bind();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kill.db");
    let url = sqlite_url(&db);
    let env = email_env(down.port, &[]);
    let mut server = start_server(dir.path(), &url, &env);
    let creds = form_body(&[("email", "survivor@example.com"), ("password", PASSWORD)]);
    assert_eq!(server.form("POST", "/api/v1/register", &creds, None).status, 201);
    assert_eq!(server.form("POST", "/api/v1/reset_password", "email=survivor%40example.com", None).status, 202);
    eventually(secs(30), "a failed delivery attempt", || server.log_text().contains("will retry").then_some(()));
    server.child.kill().unwrap(); // SIGKILL: nothing is flushed, nothing is said goodbye to.
    server.child.wait().unwrap();
    let sqlite = rusqlite::Connection::open(&db).unwrap();
    let payloads: Vec<Vec<u8>> = sqlite
        .prepare("SELECT payload FROM outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(payloads.len(), 1, "the email is stored");
    assert!(!payloads[0].windows(8).any(|w| w == b"survivor"), "stored encrypted");
    drop(sqlite);

    let sink = down.bring_up();
    let server = start_server(dir.path(), &url, &env);
    let messages = sink.wait_for(1, 90);
    assert_eq!(messages.len(), 1, "{}", server.log_text());
    assert_eq!(messages[0]["rcpt_tos"], json!(["survivor@example.com"]));
    let token = token_in(messages[0]["text"].as_str().unwrap());
    let upd = form_body(&[("reset_token", &token), ("new_password", "a brand new password")]);
    assert_eq!(server.form("POST", "/api/v1/update_password", &upd, None).status, 200);
    // A message is deleted from the outbox once the mail server took it: none is sent after.
    eventually(secs(30), "the outbox to empty", || (outbox_len(&db) == 0).then_some(()));
    assert_eq!(sink.messages().len(), 1, "exactly one message");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    assert!(!String::from_utf8_lossy(&bytes).contains(&token), "raw token at rest");
    assert!(!server.log_text().contains(&token), "raw token in the log");
}

/// Two instances on one PostgreSQL, the mail server down: requests accepted by either are
/// delivered exactly once each after it comes back, both instances running; nothing goes to
/// unknown addresses. The audit chain both wrote verifies.
#[test]
fn two_instances_deliver_each_accepted_reset_once() {
    if !require(Prereq::Postgres) || !require(Prereq::Smtp) {
        return;
    }
    let url = crate::pg::fresh_database();
    let down = ClosedPort::bind();
    let dir = tempfile::tempdir().unwrap();
    let env = email_env(down.port, &[]);
    let a = start_server(dir.path(), &url, &env);
    let b = start_server(dir.path(), &url, &env);
    let users: Vec<String> = (0..4).map(|i| format!("pair{i}@example.com")).collect();
    for (i, u) in users.iter().enumerate() {
        let server = if i % 2 == 0 { &a } else { &b };
        let creds = form_body(&[("email", u), ("password", PASSWORD)]);
        assert_eq!(server.form("POST", "/api/v1/register", &creds, None).status, 201);
        for email in [u.clone(), format!("nobody{i}@example.com")] {
            let body = form_body(&[("email", &email)]);
            assert_eq!(server.form("POST", "/api/v1/reset_password", &body, None).status, 202);
        }
    }
    eventually(secs(30), "either instance to fail an attempt", || {
        (a.log_text().contains("will retry") || b.log_text().contains("will retry")).then_some(())
    });
    let sink = down.bring_up();
    sink.wait_for(4, 90);
    // A message leaves the outbox once the mail server took it: none is sent after it is empty.
    eventually(secs(30), "the outbox to empty", || {
        (crate::pg::query(&url, "SELECT count(*) FROM outbox") == "0").then_some(())
    });
    let messages = sink.messages();
    let mut to: Vec<String> = messages.iter().map(|m| m["rcpt_tos"][0].as_str().unwrap().to_owned()).collect();
    to.sort();
    assert_eq!(to, users, "one message per registered address, none to the others");
    let out = run(dir.path(), &["--database-url", &url, "audit", "verify"], "", &[]);
    assert_eq!((out.code, out.stdout.trim()), (0, "8 events, chain intact"), "{}", out.stderr);
}

// ------------------------------------------------------------------ reset routes under the client limit

/// `client_rate_per_minute` counts reset requests like bcrypt requests: the API route, the
/// classic route and the page, each from its own client address, over a real socket.
#[test]
fn reset_routes_count_toward_the_per_client_limit() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("rate.db"));
    let server = Server::start(dir.path(), &url, &[("ROCKET_CLIENT_RATE_PER_MINUTE", "2")]);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    for (from, path) in
        [("127.0.0.2", "/api/v1/reset_password"), ("127.0.0.3", "/reset_password"), ("127.0.0.4", "/forgot")]
    {
        for _ in 0..2 {
            let r = http_from(from, server.port, "POST", path, &form, b"email=ghost%40example.com");
            assert_ne!(r.status, 429, "{path}: within the budget");
        }
        let r = http_from(from, server.port, "POST", path, &form, b"email=ghost%40example.com");
        assert_eq!(r.status, 429, "{path}");
        assert!(r.header("retry-after").is_some(), "{path}");
    }
    // Another client is unaffected.
    let r = http_from("127.0.0.5", server.port, "POST", "/api/v1/reset_password", &form, b"email=ghost%40example.com");
    assert_eq!(r.status, 404);
}
