//! The CLI as a real process: exit codes, stdout/stderr, and the state it leaves in the database.

use std::path::Path;

use rocket::http::{ContentType, Status};
use serde_json::Value;

use crate::common::{PASSWORD, client, form_body, run, set_up_database, sqlite_url};

#[test]
fn user_commands_need_a_set_up_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("fresh.db"));
    let out = run(dir.path(), &["--database-url", &url, "user", "list"], "", &[]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("run `userauth db-setup` first"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1);
}

#[test]
fn db_setup_is_idempotent_and_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("cli.db"));
    let first = run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let applied = format!("applied {} migration", userauth::service::db::known_migrations().len());
    assert!(first.stdout.contains(&applied), "{}", first.stdout);
    assert!(first.stdout.contains("m20261129_000001_audit"), "{}", first.stdout);
    assert!(first.stdout.contains("m20261126_000001_initial"), "{}", first.stdout);
    // Both of 2026-11-30's migrations, second factors before passkeys.
    let (sf, pk) =
        (first.stdout.find("m20261130_000003_second_factor"), first.stdout.find("m20261130_000004_passkeys"));
    assert!(sf.is_some() && pk.is_some() && sf < pk, "{}", first.stdout);
    assert!(dir.path().join("cli.db").exists());
    let second = run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.stdout.contains("up to date"), "{}", second.stdout);
}

#[test]
fn default_database_is_userauth_db_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["db-setup"], "", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(dir.path().join("userauth.db").exists());
    // DATABASE_URL is honoured too.
    let other = dir.path().join("other.db");
    let out = run(dir.path(), &["db-setup"], "", &[("DATABASE_URL", &format!("sqlite://{}", other.display()))]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(other.exists());
}

#[test]
fn user_add_from_stdin_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "cli.db");
    let out = run(
        dir.path(),
        &["--database-url", &url, "user", "add", "Zoe@Example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("created user zoe@example.com"), "{}", out.stdout);
    // Piped stdin without the flag reads the password the same way.
    let out =
        run(dir.path(), &["--database-url", &url, "user", "add", "yan@example.com"], &format!("{PASSWORD}\r\n"), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let dup = run(
        dir.path(),
        &["--database-url", &url, "user", "add", "zoe@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert_eq!(dup.code, 1);
    assert_eq!(dup.stderr.lines().count(), 1, "one line: {}", dup.stderr);
    assert!(dup.stderr.starts_with("error: ") && dup.stderr.contains("already exists"), "{}", dup.stderr);

    let short =
        run(dir.path(), &["--database-url", &url, "user", "add", "x@example.com", "--password-stdin"], "short\n", &[]);
    assert_eq!(short.code, 1);
    assert!(short.stderr.starts_with("error: invalid password"), "{}", short.stderr);
    let empty = run(dir.path(), &["--database-url", &url, "user", "add", "x@example.com", "--password-stdin"], "", &[]);
    assert_eq!(empty.code, 1);
    let bad_email = run(
        dir.path(),
        &["--database-url", &url, "user", "add", "not-an-email", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert_eq!(bad_email.code, 1);
    assert!(bad_email.stderr.starts_with("error: invalid email"), "{}", bad_email.stderr);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), &["frobnicate"], "", &[]).code, 2);
    assert_eq!(run(dir.path(), &["user", "add"], "", &[]).code, 2);
    assert_eq!(run(dir.path(), &["user", "list", "--limit", "many"], "", &[]).code, 2);
    assert_eq!(run(dir.path(), &["completions", "tcsh"], "", &[]).code, 2);
    assert_eq!(run(dir.path(), &["--help"], "", &[]).code, 0);
}

#[test]
fn unreachable_database_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["--database-url", "postgres://nobody@127.0.0.1:1/none", "user", "list"],
        "",
        &[("ROCKET_DATABASE_CONNECT_TIMEOUT_SECS", "2")],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let missing = run(dir.path(), &["--database-url", "sqlite:///nonexistent-dir/x.db", "db-setup"], "", &[]);
    assert_eq!(missing.code, 1);
}

#[test]
fn weak_bcrypt_cost_is_refused_outside_tests() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["db-setup"], "", &[("ROCKET_ALLOW_WEAK_BCRYPT_COST", "false")]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("bcrypt_cost 4 is below the minimum of 10"), "{}", out.stderr);
}

#[rocket::async_test]
async fn user_reset_prints_a_token_that_works_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "cli.db");
    let p = dir.path().to_owned();
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let add = run(&p, &["--database-url", &u, "user", "add", "rita@example.com"], &format!("{PASSWORD}\n"), &[]);
        assert_eq!(add.code, 0, "{}", add.stderr);
        run(&p, &["--database-url", &u, "user", "reset", "RITA@example.com", "--json"], "", &[])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["email"], "rita@example.com");
    assert!(chrono::DateTime::parse_from_rfc3339(v["expires_at"].as_str().unwrap()).is_ok());
    let token = v["reset_token"].as_str().unwrap();

    let (c, _) = client(&url).await;
    let resp = c
        .post("/api/v1/update_password")
        .header(ContentType::Form)
        .body(form_body(&[("reset_token", token), ("new_password", "a brand new password")]))
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::Ok);
    let resp = c
        .post("/api/v1/session")
        .header(ContentType::Form)
        .body(form_body(&[("email", "rita@example.com"), ("password", "a brand new password")]))
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::Ok);

    // Human output names the token and its expiry; unknown users are exit 1.
    let p = dir.path().to_owned();
    let (human, unknown) = tokio::task::spawn_blocking(move || {
        (
            run(&p, &["--database-url", &url, "user", "reset", "rita@example.com"], "", &[]),
            run(&p, &["--database-url", &url, "user", "reset", "nobody@example.com"], "", &[]),
        )
    })
    .await
    .unwrap();
    assert_eq!(human.code, 0);
    assert!(human.stdout.contains("reset_token: ") && human.stdout.contains("expires_at: "), "{}", human.stdout);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.starts_with("error: no user with this email"), "{}", unknown.stderr);
}

#[test]
fn user_list_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "cli.db");
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        let out = run(dir.path(), &["--database-url", &url, "user", "add", email], &format!("{PASSWORD}\n"), &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let table = run(dir.path(), &["--database-url", &url, "user", "list"], "", &[]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    assert!(lines[0].starts_with("ID") && lines[0].contains("EMAIL") && lines[0].contains("SESSIONS"));
    assert!(lines[1].contains("a@example.com") && lines[1].contains("never"));

    let json = run(dir.path(), &["--database-url", &url, "user", "list", "--json", "--limit", "2"], "", &[]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let rows: Vec<Value> = json.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    let keys: Vec<&str> = rows[0].as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, ["active_sessions", "created_at", "email", "email_confirmed", "factors", "id", "last_login_at"]);
    assert_eq!(rows[0]["factors"], serde_json::json!(["password"]));
    assert_eq!(rows[0]["email"], "a@example.com");
    assert_eq!(rows[0]["email_confirmed"], true, "users added by the operator are confirmed");
    assert_eq!(rows[0]["active_sessions"], 0);
    assert!(rows[0]["last_login_at"].is_null());
    assert!(!json.stdout.contains("$2"), "never a hash");
}

#[test]
fn generated_completions_are_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "userauth.bash"),
        ("zsh", "_userauth"),
        ("fish", "userauth.fish"),
        ("elvish", "userauth.elv"),
        ("powershell", "_userauth.ps1"),
    ] {
        let out = run(dir.path(), &["completions", shell], "", &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(!out.stdout.is_empty());
        let path = root.join(file);
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            std::fs::create_dir_all(&root).unwrap();
            std::fs::write(&path, &out.stdout).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == out.stdout,
            "completions/{file} is stale: regenerate with `UPDATE_GENERATED=1 cargo test --workspace generated`"
        );
    }
}

#[test]
fn interactive_prompt_through_a_pty() {
    let dir = tempfile::tempdir().unwrap();
    let url = set_up_database(dir.path(), "cli.db");
    let mut cmd = crate::common::bin();
    cmd.current_dir(dir.path()).args(["--database-url", &url, "user", "add", "tty@example.com"]);
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn in a pty");
    p.exp_string("Password").unwrap();
    p.send_line(PASSWORD).unwrap();
    p.exp_string("Repeat password").unwrap();
    p.send_line("something else entirely").unwrap();
    // Mismatch: dialoguer asks again.
    p.exp_string("do not match").unwrap();
    p.exp_string("Password").unwrap();
    p.send_line(PASSWORD).unwrap();
    p.exp_string("Repeat password").unwrap();
    p.send_line(PASSWORD).unwrap();
    let echoed = p.exp_string("created user tty@example.com").unwrap();
    assert!(!echoed.contains(PASSWORD), "the password is not echoed: {echoed:?}");
    p.exp_eof().unwrap();
    let list = run(dir.path(), &["--database-url", &url, "user", "list", "--json"], "", &[]);
    assert!(list.stdout.contains("tty@example.com"));
}

#[test]
fn generated_man_pages_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = userauth::cli::docs::man_pages().unwrap();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for expected in
        ["userauth.1", "userauth-db-setup.1", "userauth-serve.1", "userauth-user-add.1", "userauth-user-list.1"]
    {
        assert!(names.contains(&expected), "{names:?}");
    }
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(&root).unwrap();
        for (name, roff) in &pages {
            std::fs::write(root.join(name), roff).unwrap();
        }
    }
    for (name, roff) in &pages {
        let text = String::from_utf8_lossy(roff);
        for section in [".SH ENVIRONMENT", ".SH \"EXIT STATUS\"", ".SH FILES", ".SH EXAMPLES"] {
            assert!(text.contains(section), "{name} has no {section} section");
        }
        let committed = std::fs::read(root.join(name)).unwrap_or_default();
        assert!(
            &committed == roff,
            "man/{name} is stale: regenerate with `UPDATE_GENERATED=1 cargo test --workspace generated`"
        );
    }
    let on_disk = std::fs::read_dir(&root).unwrap().count();
    assert_eq!(on_disk, pages.len(), "man/ holds exactly the generated pages");
}

/// The README's configuration table and the code agree: every numeric key is listed with its
/// range and default (one home for each rule: `config::NUMERIC_RANGES` and `Settings::default`).
#[test]
fn readme_configuration_table_matches_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let defaults = serde_json::to_value(userauth::config::Settings::default()).unwrap();
    for &(key, min, max) in userauth::config::NUMERIC_RANGES {
        let cells = crate::common::readme_row(&readme, key);
        assert_eq!(cells[3], format!("{min}–{max}"), "range of {key}");
        match defaults.get(key).and_then(|v| v.as_u64()) {
            Some(d) => assert_eq!(cells[2], d.to_string(), "default of {key}"),
            None => assert!(!cells[2].is_empty(), "{key} has a described default"),
        }
    }
}

/// rusqlite (the fast read path) and sqlx must share one libsqlite3-sys: two would link two
/// SQLite libraries into one binary, each with its own locks on the same file.
#[test]
fn one_sqlite_in_the_binary() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let copies = lock.matches("name = \"libsqlite3-sys\"").count();
    assert_eq!(copies, 1, "Cargo.lock holds {copies} versions of libsqlite3-sys: keep rusqlite and sqlx in step");
}
