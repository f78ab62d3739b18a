//! Operator tools as a real process: import, delete, logout, list filters, JSON logs.

use std::path::Path;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::Value;

use crate::common::{PASSWORD, Server, run, secs, service, set_up_database, sqlite_url};

/// PHP's documented example hash of "rasmuslerdorf".
const PHP_HASH: &str = "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a";

fn emails(dir: &Path, url: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--database-url", url, "user", "list", "--json"];
    args.extend_from_slice(extra);
    let out = run(dir, &args, "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn import_csv_hashes_skips_existing_and_logs_in_with_old_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    let add =
        run(dir.path(), &["--database-url", &url, "user", "add", "taken@example.com"], &format!("{PASSWORD}\n"), &[]);
    assert_eq!(add.code, 0);
    let csv = format!(
        "email,password_hash\nOld1@Example.com,{PHP_HASH}\nold2@example.com, {PHP_HASH}\ntaken@example.com,{PHP_HASH}\nold1@example.com,{PHP_HASH}\n"
    );
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    let out = run(dir.path(), &["--database-url", &url, "user", "import", "users.csv"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("imported 2 / skipped 2"), "{}", out.stdout);
    let svc = service(&url).await;
    assert!(svc.login("old1@example.com", "rasmuslerdorf").await.is_ok());
    assert!(svc.login("old2@example.com", "rasmuslerdorf").await.is_ok());
    assert!(svc.login("taken@example.com", PASSWORD).await.is_ok(), "existing account untouched");
}

#[test]
fn import_with_invalid_rows_imports_nothing_and_names_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    let csv = format!(
        "email,password_hash\ngood@example.com,{PHP_HASH}\nnot-an-email,{PHP_HASH}\nbad@example.com,plaintext\n"
    );
    std::fs::write(dir.path().join("bad.csv"), csv).unwrap();
    let out = run(dir.path(), &["--database-url", &url, "user", "import", "bad.csv"], "", &[]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("row 3: invalid email"), "{}", out.stderr);
    assert!(out.stderr.contains("row 4: password_hash is not a bcrypt hash"), "{}", out.stderr);
    assert!(
        out.stderr.lines().last().unwrap().starts_with("error: 2 invalid row(s); nothing was imported"),
        "{}",
        out.stderr
    );
    assert!(emails(dir.path(), &url, &[]).is_empty(), "nothing half-imported");
    let wrong_header = run(dir.path(), &["--database-url", &url, "user", "import", "-"], "mail,pw\na@b.c,x\n", &[]);
    assert_eq!(wrong_header.code, 1);
    assert!(wrong_header.stderr.contains("header must be"), "{}", wrong_header.stderr);
}

#[tokio::test]
async fn import_csv_plain_passwords_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    let csv = format!("email,password\nplain1@example.com,{PASSWORD}\nplain2@example.com,\"with, comma and more\"\n");
    let out = run(dir.path(), &["--database-url", &url, "user", "import", "-"], &csv, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("imported 2 / skipped 0"), "{}", out.stdout);
    let svc = service(&url).await;
    assert!(svc.login("plain1@example.com", PASSWORD).await.is_ok());
    assert!(svc.login("plain2@example.com", "with, comma and more").await.is_ok());
    let short =
        run(dir.path(), &["--database-url", &url, "user", "import", "-"], "email,password\nx@example.com,short\n", &[]);
    assert_eq!(short.code, 1);
    assert!(short.stderr.contains("row 2: invalid password"), "{}", short.stderr);
}

#[tokio::test]
async fn import_from_the_flask_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    // The original service's schema (SQLAlchemy), with bcrypt's bytes stored as a BLOB and as text.
    let flask_path = dir.path().join("a.db");
    let flask = Database::connect(sqlite_url(&flask_path)).await.unwrap();
    flask
        .execute_unprepared(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(250) NOT NULL, \
             hashed_password VARCHAR(250) NOT NULL, session_id VARCHAR(250), reset_token VARCHAR(250))",
        )
        .await
        .unwrap();
    let blob_hash = bcrypt::hash("flask password 1", 4).unwrap();
    let text_hash = bcrypt::hash("flask password 2", 4).unwrap();
    flask
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO users (email, hashed_password) VALUES (?, ?), (?, ?)",
            ["bob@flask.io".into(), blob_hash.into_bytes().into(), "Amy@Flask.io".into(), text_hash.into()],
        ))
        .await
        .unwrap();
    flask.close().await.unwrap();
    let out = run(dir.path(), &["--database-url", &url, "user", "import", "--from-flask", "a.db"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("imported 2 / skipped 0"), "{}", out.stdout);
    let svc = service(&url).await;
    assert!(svc.login("bob@flask.io", "flask password 1").await.is_ok());
    assert!(svc.login("amy@flask.io", "flask password 2").await.is_ok());
    let again = run(dir.path(), &["--database-url", &url, "user", "import", "--from-flask", "a.db"], "", &[]);
    assert!(again.stdout.contains("imported 0 / skipped 2"), "{}", again.stdout);
    let missing = run(dir.path(), &["--database-url", &url, "user", "import", "--from-flask", "nope.db"], "", &[]);
    assert_eq!(missing.code, 1);
    assert_eq!(run(dir.path(), &["--database-url", &url, "user", "import"], "", &[]).code, 2, "a source is required");
}

#[test]
fn import_five_thousand_hash_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    let mut csv = String::from("email,password_hash\n");
    for i in 0..5000 {
        csv.push_str(&format!("bulk{i}@example.com,{PHP_HASH}\n"));
    }
    std::fs::write(dir.path().join("bulk.csv"), csv).unwrap();
    let out = run(dir.path(), &["--database-url", &url, "user", "import", "bulk.csv"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("imported 5000 / skipped 0"), "{}", out.stdout);
    assert!(!out.stderr.contains('█'), "no progress bar when not on a terminal");
    assert_eq!(emails(dir.path(), &url, &["--limit", "10000"]).len(), 5000);
}

#[tokio::test]
async fn delete_and_logout() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    for e in ["del@example.com", "keep@example.com"] {
        assert_eq!(run(dir.path(), &["--database-url", &url, "user", "add", e], &format!("{PASSWORD}\n"), &[]).code, 0);
    }
    let svc = service(&url).await;
    let s1 = svc.login("del@example.com", PASSWORD).await.unwrap();
    let s2 = svc.login("keep@example.com", PASSWORD).await.unwrap();
    let s3 = svc.login("keep@example.com", PASSWORD).await.unwrap();
    svc.request_reset("del@example.com").await.unwrap();

    let out = run(dir.path(), &["--database-url", &url, "user", "logout", "KEEP@example.com"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("ended 2 session(s) of keep@example.com"), "{}", out.stdout);
    assert!(svc.authenticate(s2.token.expose()).await.is_err() && svc.authenticate(s3.token.expose()).await.is_err());

    let refused = run(dir.path(), &["--database-url", &url, "user", "delete", "del@example.com"], "y\n", &[]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);
    assert!(svc.authenticate(s1.token.expose()).await.is_ok(), "nothing changed");

    let out = run(dir.path(), &["--database-url", &url, "user", "delete", "del@example.com", "--yes"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("deleted user del@example.com"), "{}", out.stdout);
    assert!(svc.authenticate(s1.token.expose()).await.is_err(), "its sessions went with it");
    let counts = svc
        .db()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT (SELECT COUNT(*) FROM sessions) + (SELECT COUNT(*) FROM reset_tokens)",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counts.try_get_by_index::<i64>(0).unwrap(), 0);
    assert_eq!(emails(dir.path(), &url, &[]), ["keep@example.com"]);
    let again = run(dir.path(), &["--database-url", &url, "user", "delete", "del@example.com", "--yes"], "", &[]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("no user with this email"));
}

#[test]
fn delete_asks_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    assert_eq!(
        run(dir.path(), &["--database-url", &url, "user", "add", "ask@example.com"], &format!("{PASSWORD}\n"), &[])
            .code,
        0
    );
    let spawn = |answer: &str| {
        let mut cmd = crate::common::bin();
        cmd.current_dir(dir.path()).args(["--database-url", &url, "user", "delete", "ask@example.com"]);
        let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
        p.exp_string("Delete user ask@example.com").unwrap();
        p.send(answer).unwrap();
        p.flush().unwrap();
        p
    };
    let mut no = spawn("n");
    no.exp_string("nothing deleted").unwrap();
    no.exp_eof().unwrap();
    assert_eq!(emails(dir.path(), &url, &[]).len(), 1);
    let mut yes = spawn("y");
    yes.exp_string("deleted user ask@example.com").unwrap();
    yes.exp_eof().unwrap();
    assert!(emails(dir.path(), &url, &[]).is_empty());
}

#[test]
fn list_filters() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    let csv = format!(
        "email,password_hash\nann@alpha.io,{PHP_HASH}\nbob@beta.io,{PHP_HASH}\nab_c@alpha.io,{PHP_HASH}\nabxc@alpha.io,{PHP_HASH}\n"
    );
    assert_eq!(run(dir.path(), &["--database-url", &url, "user", "import", "-"], &csv, &[]).code, 0);
    assert_eq!(emails(dir.path(), &url, &["--email-contains", "ALPHA"]).len(), 3);
    assert_eq!(emails(dir.path(), &url, &["--email-contains", "b_c"]), ["ab_c@alpha.io"], "_ is literal");
    assert_eq!(emails(dir.path(), &url, &["--email-contains", "%"]).len(), 0, "% is literal");
    let all = emails(dir.path(), &url, &[]);
    assert_eq!(emails(dir.path(), &url, &["--offset", "1", "--limit", "2"]), all[1..3].to_vec());
}

#[test]
fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    let server = Server::start(dir.path(), &url, &[("ROCKET_LOG_FORMAT", "json")]);
    let r = server.request("GET", "/health", &[], b"");
    let id = r.header("x-request-id").expect("X-Request-Id").to_owned();
    let line = crate::waiting::within(secs(10), || {
        let log = server.log_text();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["fields"]["request_id"] == id.as_str())
    })
    .unwrap_or_else(|| panic!("no JSON request line with id {id}: {}", server.log_text()));
    let log = server.log_text();
    assert_eq!(line["fields"]["method"], "GET");
    assert_eq!(line["fields"]["path"], "/health");
    assert_eq!(line["fields"]["status"], 200);
    assert!(line["fields"]["latency_ms"].is_string() || line["fields"]["latency_ms"].is_number());
    let startup = log.lines().next().unwrap();
    assert!(serde_json::from_str::<Value>(startup).is_ok(), "every line is JSON: {startup}");
}

#[test]
fn list_is_an_aligned_table_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "op.db");
    let csv = format!("email,password_hash\nshort@x.io,{PHP_HASH}\na-much-longer-address@example.com,{PHP_HASH}\n");
    assert_eq!(run(dir.path(), &["--database-url", &url, "user", "import", "-"], &csv, &[]).code, 0);
    let mut cmd = crate::common::bin();
    cmd.current_dir(dir.path()).args(["--database-url", &url, "user", "list"]);
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
    let screen = p.exp_string("2 user(s)").unwrap();
    let lines: Vec<&str> = screen.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{screen:?}");
    // Columns line up: LAST LOGIN starts at the same offset in the header and both rows.
    let col = lines[0].find("LAST LOGIN").expect("header");
    for row in &lines[1..] {
        assert_eq!(row.get(col..col + 5), Some("never"), "{screen:?}");
    }
}
