//! Registration you can trust (api.md §13): email confirmation without enumeration, through the
//! durable outbox and a real SMTP server, and the common-password policy on every route that sets
//! a password. Every service test runs on a SQLite file, SQLite in memory and PostgreSQL.

use std::io::Write;
use std::time::Duration;

use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::Client;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use userauth::entity::{audit_event, email_verification_token, outbox, user};
use userauth::service::AuthService;

use crate::common::{
    Backend, PASSWORD, TestDb, client_with, form_body, recording_service, run, service_for, settings, sqlite_url,
};
use crate::mail::SmtpSink;
use crate::waiting::{eventually_async, secs};

const FROM: &str = "Accounts <no-reply@example.com>";
const CHECK: &str = "check your email to confirm your address";
const RESEND: &str = "if that address is waiting for confirmation, a new link is on its way";
/// Entries of the built-in list (zxcvbn's frequency list) of at least 12 characters.
const COMMON: [&str; 5] = ["1qaz2wsx3edc", "qwerty123456", "123qweasdzxc", "q1w2e3r4t5y6", "qazwsxedcrfv"];
/// Not in any list: a random strong password.
const STRONG: &str = "vN7#qo2 Lx!pe9Wz";

fn verification_settings(sink: &SmtpSink) -> Vec<(&'static str, Value)> {
    vec![
        ("email_verification", json!("required")),
        ("smtp_url", json!(sink.url())),
        ("mail_from", json!(FROM)),
        ("public_url", json!("https://auth.example.com")),
        ("client_rate_per_minute", json!(0)),
    ]
}

async fn post(c: &Client, path: &str, pairs: &[(&str, &str)]) -> (Status, String, Vec<String>) {
    let r = c.post(path).header(ContentType::Form).body(form_body(pairs)).dispatch().await;
    let status = r.status();
    let mut headers: Vec<String> = r
        .headers()
        .iter()
        .filter(|h| h.name() != "Date" && h.name() != "X-Request-Id")
        .map(|h| format!("{}: {}", h.name(), h.value()))
        .collect();
    headers.sort();
    (status, r.into_string().await.unwrap_or_default(), headers)
}

fn error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["error"].as_str().unwrap_or_default().to_owned()
}

async fn drain(svc: &AuthService) {
    while svc.outbox_step().await.unwrap() {}
}

async fn outbox_emptied(svc: &AuthService) {
    let empty = || async move { (outbox::Entity::find().count(svc.db()).await.unwrap() == 0).then_some(()) };
    eventually_async(secs(20), "the outbox to empty once the mail is sent", empty).await;
}

fn token_in(text: &str) -> String {
    let at = text.find("/verify?token=").expect("a confirmation link") + "/verify?token=".len();
    text[at..at + 64].to_owned()
}

async fn kinds(svc: &AuthService) -> Vec<String> {
    audit_event::Entity::find().all(svc.db()).await.unwrap().into_iter().map(|e| e.kind).collect()
}

/// The whole flow through the API: uniform 201s (same status, headers and bytes for a new, an
/// unconfirmed and a confirmed address), the link to the new address, the owner's notice, 403
/// only after a correct password, single-use confirmation, `email_confirmed` in the audit log,
/// and no raw token at rest.
async fn confirmation_flow_through_the_api(backend: Backend) {
    let db = TestDb::new(backend);
    let sink = SmtpSink::start();
    let (c, svc) = client_with(&db.url, &verification_settings(&sink)).await;
    let owner = "owner@example.com";
    // Added by the operator: confirmed at once.
    svc.register(owner, PASSWORD).await.unwrap();

    let newbie = "newbie@example.com";
    let first = post(&c, "/api/v1/register", &[("email", "NewBie@Example.com "), ("password", PASSWORD)]).await;
    assert_eq!(first.0, Status::Created);
    assert_eq!(serde_json::from_str::<Value>(&first.1).unwrap(), json!({"email": newbie, "message": CHECK}));
    drain(&svc).await;
    // Again while unconfirmed, with another password: the same answer, byte for byte.
    let again = post(&c, "/api/v1/register", &[("email", newbie), ("password", "another fine passphrase")]).await;
    assert_eq!(again, first, "new and unconfirmed addresses answer alike");
    drain(&svc).await;

    let messages = sink.wait_for(2, 20);
    assert_eq!(messages.len(), 2, "{messages:?}");
    let link = messages.iter().find(|m| m["subject"] == "Confirm your email address").expect("the link");
    assert_eq!(link["rcpt_tos"], json!([newbie]));
    let text = link["text"].as_str().unwrap();
    assert!(text.contains("https://auth.example.com/verify?token="), "{text}");
    let token = token_in(text);
    assert!(link["html"].as_str().unwrap().contains(&token));
    let notice = messages.iter().find(|m| m["subject"] == "Someone tried to register with your address").unwrap();
    assert_eq!(notice["rcpt_tos"], json!([newbie]));
    assert!(!notice["text"].as_str().unwrap().contains("token="), "a notice carries no link");

    // No raw token at rest: the token table holds digests, the outbox is empty once sent.
    let stored = email_verification_token::Entity::find().all(svc.db()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].token_hash, token);
    // The server's own worker may still be deleting the row of a message the sink already has.
    outbox_emptied(&svc).await;
    if let Some(path) = db.path() {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        assert!(!bytes.windows(64).any(|w| w == token.as_bytes()), "the raw token is not in the database file");
    }

    // A wrong password is a plain 401; the right one is told to confirm first.
    let wrong = post(&c, "/api/v1/session", &[("email", newbie), ("password", "not the password at all")]).await;
    assert_eq!((wrong.0, error_code(&wrong.1)), (Status::Unauthorized, "invalid_credentials".to_owned()));
    let unconfirmed = post(&c, "/api/v1/session", &[("email", newbie), ("password", PASSWORD)]).await;
    assert_eq!((unconfirmed.0, error_code(&unconfirmed.1)), (Status::Forbidden, "email_not_confirmed".to_owned()));

    let confirmed = post(&c, "/api/v1/verify_email", &[("token", &token)]).await;
    assert_eq!(confirmed.0, Status::Ok);
    assert_eq!(
        serde_json::from_str::<Value>(&confirmed.1).unwrap(),
        json!({"email": newbie, "message": "email confirmed"})
    );
    let reused = post(&c, "/api/v1/verify_email", &[("token", &token)]).await;
    assert_eq!((reused.0, error_code(&reused.1)), (Status::BadRequest, "invalid_token".to_owned()));
    let garbage = post(&c, "/api/v1/verify_email", &[("token", "nope")]).await;
    assert_eq!((garbage.0, error_code(&garbage.1)), (Status::BadRequest, "invalid_token".to_owned()));
    assert_eq!(post(&c, "/api/v1/session", &[("email", newbie), ("password", PASSWORD)]).await.0, Status::Ok);
    assert!(kinds(&svc).await.contains(&"email_confirmed".to_owned()));

    // Confirmed now, and an operator-added address: still the same answer.
    let third = post(&c, "/api/v1/register", &[("email", newbie), ("password", PASSWORD)]).await;
    assert_eq!(third, first, "a confirmed address answers like a new one");
    let theirs = post(&c, "/api/v1/register", &[("email", owner), ("password", PASSWORD)]).await;
    assert_eq!(theirs.0, Status::Created);
    assert_eq!(theirs.1, first.1.replace(newbie, owner));
    drain(&svc).await;
    let messages = sink.wait_for(4, 20);
    assert_eq!(messages.len(), 4, "{messages:?}");
    for m in &messages[2..] {
        assert_eq!(m["subject"], "Someone tried to register with your address");
    }
    let mut to: Vec<String> = messages[2..].iter().map(|m| m["rcpt_tos"][0].as_str().unwrap().to_owned()).collect();
    to.sort();
    assert_eq!(to, [newbie, owner]);
    // Nobody's password changed.
    assert_eq!(post(&c, "/api/v1/session", &[("email", owner), ("password", PASSWORD)]).await.0, Status::Ok);
}

/// Expired tokens, resend answered alike for every address and mailing only the waiting one,
/// and a resent link replacing the old one.
async fn expired_tokens_and_resend(backend: Backend) {
    let db = TestDb::new(backend);
    let sink = SmtpSink::start();
    let mut extra = verification_settings(&sink);
    extra.push(("verification_ttl_secs", json!(3600)));
    let loaded = settings(&db.url, &extra);
    let clock = crate::common::TestClock::default();
    let svc = service_for(&loaded).await.with_clock(clock.clock());
    let c = Client::tracked(userauth::api::build(svc.clone(), &loaded)).await.unwrap();
    svc.register("confirmed@example.com", PASSWORD).await.unwrap();

    let waiting = "waiting@example.com";
    assert_eq!(post(&c, "/api/v1/register", &[("email", waiting), ("password", PASSWORD)]).await.0, Status::Created);
    drain(&svc).await;
    let old = token_in(sink.wait_for(1, 20)[0]["text"].as_str().unwrap());
    clock.advance(Duration::from_secs(3601));
    let expired = post(&c, "/api/v1/verify_email", &[("token", &old)]).await;
    assert_eq!((expired.0, error_code(&expired.1)), (Status::BadRequest, "invalid_token".to_owned()));

    let mut answers = Vec::new();
    for email in [waiting, "confirmed@example.com", "nobody@example.com"] {
        let (status, body, headers) = post(&c, "/api/v1/verify_email/resend", &[("email", email)]).await;
        assert_eq!(status, Status::Accepted);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"message": RESEND}));
        answers.push((body, headers));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "the same bytes for every address");
    assert_eq!(post(&c, "/api/v1/verify_email/resend", &[("email", "not-an-address")]).await.0, Status::BadRequest);
    drain(&svc).await;
    sink.wait_for(2, 20);
    // Once the outbox is empty, every message that will be sent has been.
    outbox_emptied(&svc).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 2, "one new link, to the waiting address only: {messages:?}");
    assert_eq!(messages[1]["rcpt_tos"], json!([waiting]));
    let new = token_in(messages[1]["text"].as_str().unwrap());
    assert_ne!(new, old);
    assert_eq!(post(&c, "/api/v1/verify_email", &[("token", &new)]).await.0, Status::Ok);
    assert_eq!(post(&c, "/api/v1/session", &[("email", waiting), ("password", PASSWORD)]).await.0, Status::Ok);
}

/// With `email_verification = "off"` (the default) nothing changes: 201 "user created", login at once.
async fn off_keeps_the_original_behaviour(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _svc) = client_with(&db.url, &[("client_rate_per_minute", json!(0))]).await;
    let r = post(&c, "/api/v1/register", &[("email", "plain@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(r.0, Status::Created);
    assert_eq!(
        serde_json::from_str::<Value>(&r.1).unwrap(),
        json!({"email": "plain@example.com", "message": "user created"})
    );
    assert_eq!(
        post(&c, "/api/v1/session", &[("email", "plain@example.com"), ("password", PASSWORD)]).await.0,
        Status::Ok
    );
}

/// Every candidate refused on every route that sets a password, with 400 `invalid_password` and
/// the message of §13; a strong one accepted; nothing stored changed by a refusal.
async fn common_passwords_are_refused_on_every_route(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("blocklist.txt");
    std::fs::write(&list, "# not a comment, just an entry\nOperator Secret Phrase\n\n").unwrap();
    let extra = [("client_rate_per_minute", json!(0)), ("password_blocklist_file", json!(list.display().to_string()))];
    let (c, svc) = client_with(&db.url, &extra).await;
    let email = "margaret.hamilton@example.com";
    let mut refused: Vec<String> = COMMON.iter().map(|p| p.to_string()).collect();
    refused.extend(COMMON.iter().map(|p| p.to_uppercase()));
    refused.extend([email.to_owned(), email.to_uppercase(), "Margaret.Hamilton".to_owned()]);
    refused.push("operator secret phrase".to_owned());
    let too_common = |r: &(Status, String, Vec<String>)| {
        r.0 == Status::BadRequest
            && serde_json::from_str::<Value>(&r.1).unwrap()
                == json!({"error": "invalid_password", "message": "this password is too common"})
    };

    // Register.
    for p in &refused {
        let r = post(&c, "/api/v1/register", &[("email", email), ("password", p)]).await;
        assert!(too_common(&r), "register {p}: {r:?}");
    }
    assert_eq!(user::Entity::find().count(svc.db()).await.unwrap(), 0);
    assert_eq!(post(&c, "/api/v1/register", &[("email", email), ("password", STRONG)]).await.0, Status::Created);

    // Change (session cookie kept by the tracked client).
    assert_eq!(post(&c, "/api/v1/session", &[("email", email), ("password", STRONG)]).await.0, Status::Ok);
    for p in &refused {
        let r = post(&c, "/api/v1/password", &[("current_password", STRONG), ("new_password", p)]).await;
        assert!(too_common(&r), "change {p}: {r:?}");
    }
    let changed = post(&c, "/api/v1/password", &[("current_password", STRONG), ("new_password", PASSWORD)]).await;
    assert_eq!(changed.0, Status::Ok, "{changed:?}");

    // Reset (update_password): the token survives the refusals.
    let issued = svc.operator_reset(email).await.unwrap();
    let token = issued.token.expose().to_owned();
    for p in &refused {
        let r = post(&c, "/api/v1/update_password", &[("reset_token", &token), ("new_password", p)]).await;
        assert!(too_common(&r), "update {p}: {r:?}");
    }
    let updated = post(&c, "/api/v1/update_password", &[("reset_token", &token), ("new_password", STRONG)]).await;
    assert_eq!(updated.0, Status::Ok, "{updated:?}");

    // `user add` (the operator's path) and import rows with plain passwords.
    for p in &refused {
        let err_local = svc.register(email, p).await.map(|_| ()).unwrap_err().to_string();
        assert!(err_local.contains("too common"), "{p}: {err_local}");
        // Ada's account may take Margaret's address as its password: it is not Ada's.
        if !p.to_lowercase().contains("hamilton") {
            let err = svc.register("ada@example.com", p).await.map(|_| ()).unwrap_err().to_string();
            assert!(err.contains("too common"), "{p}: {err}");
        }
    }
    let column = userauth::service::import::SecretColumn::Password;
    assert!(svc.parse_import_row("grace@example.com", column, COMMON[0]).is_err());
    assert!(svc.parse_import_row("grace@example.com", column, "grace").is_err());
    assert!(svc.parse_import_row("grace@example.com", column, STRONG).is_ok());

    // Without the operator's file its entry is an ordinary password.
    let other = TestDb::new(backend);
    let (c2, _) = client_with(&other.url, &[("client_rate_per_minute", json!(0))]).await;
    let r = post(&c2, "/api/v1/register", &[("email", email), ("password", "operator secret phrase")]).await;
    assert_eq!(r.0, Status::Created, "{r:?}");
}

/// A registration for a new address and one for an existing address run the same SQL statements
/// before the answer, and neither reads or writes `users` or the audit log: the address-dependent
/// part happens in the worker, after the answer.
async fn registration_does_the_same_work_for_any_address(backend: Backend) {
    let db = TestDb::new(backend);
    let (svc, sql) = recording_service(&db.url, &[("email_verification", json!("required"))]).await;
    let (known, fresh) = ("known@example.com", "fresh@example.com");
    svc.register(known, PASSWORD).await.unwrap();
    let api = svc.for_client(None);
    let mut runs = Vec::new();
    for email in [known, fresh] {
        let (answer, statements) = sql.during(api.sign_up(email, PASSWORD)).await;
        assert!(matches!(answer.unwrap(), userauth::service::verification::SignUp::Pending { .. }));
        runs.push(statements);
    }
    assert!(!runs[0].is_empty());
    assert_eq!(runs[0], runs[1], "the same statements for a new and an existing address");
    assert!(runs[0].iter().all(|s| !s.contains("users") && !s.contains("audit")), "{:?}", runs[0]);
    let rows = outbox::Entity::find().all(svc.db()).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].payload.len(), rows[1].payload.len(), "same-length addresses, same-size rows");
    assert_eq!(user::Entity::find().count(svc.db()).await.unwrap(), 1, "no account before the worker");
}

crate::backend_tests!(
    registration_does_the_same_work_for_any_address,
    confirmation_flow_through_the_api,
    expired_tokens_and_resend,
    off_keeps_the_original_behaviour,
    common_passwords_are_refused_on_every_route,
    confirmation_flow_through_the_pages
);

/// The CLI words against the real binary: `user add` refuses common passwords and creates a
/// confirmed user; `user confirm`; `user list --json` with `email_confirmed`; CSV import rejects
/// a common password with its line number; `doctor` shows the list sizes.
#[test]
fn cli_words() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("cli.db"));
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "house rules apply\nsecond entry here\n").unwrap();
    let env = [("DATABASE_URL", url.as_str()), ("ROCKET_PASSWORD_BLOCKLIST_FILE", list.to_str().unwrap())];
    assert_eq!(run(dir.path(), &["db-setup"], "", &env).code, 0);

    let refused = run(dir.path(), &["user", "add", "ops@example.com", "--password-stdin"], "QWERTY123456\n", &env);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.starts_with("error: ") && refused.stderr.contains("too common"), "{}", refused.stderr);
    let refused = run(dir.path(), &["user", "add", "ops@example.com", "--password-stdin"], "house rules apply\n", &env);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    let added = run(dir.path(), &["user", "add", "ops@example.com", "--password-stdin"], &format!("{STRONG}\n"), &env);
    assert_eq!(added.code, 0, "{}", added.stderr);

    let csv = dir.path().join("users.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    write!(f, "email,password\nfine@example.com,{STRONG}\nweak@example.com,1qaz2wsx3edc\n").unwrap();
    drop(f);
    let import = run(dir.path(), &["user", "import", csv.to_str().unwrap()], "", &env);
    assert_eq!(import.code, 1, "{}", import.stdout);
    assert!(import.stderr.contains("row 3:") && import.stderr.contains("too common"), "{}", import.stderr);

    // An unconfirmed user, as a registration under email_verification would leave it.
    let sqlite = rusqlite_free_update(&dir.path().join("cli.db"));
    assert!(sqlite, "marked unconfirmed");
    let list_json = |env: &[(&str, &str)]| {
        let out = run(dir.path(), &["user", "list", "--json"], "", env);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let v: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
        v["email_confirmed"].clone()
    };
    assert_eq!(list_json(&env), json!(false));
    let confirm = run(dir.path(), &["user", "confirm", "OPS@example.com"], "", &env);
    assert_eq!(confirm.code, 0, "{}", confirm.stderr);
    assert!(confirm.stdout.contains("confirmed ops@example.com"), "{}", confirm.stdout);
    assert_eq!(list_json(&env), json!(true));
    let audit = run(dir.path(), &["audit", "list", "--json"], "", &env);
    assert!(audit.stdout.contains("\"email_confirmed\""), "{}", audit.stdout);
    let missing = run(dir.path(), &["user", "confirm", "ghost@example.com"], "", &env);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.starts_with("error: "), "{}", missing.stderr);

    let doctor = run(dir.path(), &["doctor", "--json"], "", &env);
    assert!(doctor.stdout.contains(" built-in common passwords + 2 from"), "{}", doctor.stdout);
}

/// Clears `email_confirmed_at` with the sqlite3 library the binary links (through a tiny SQL
/// run by the service's own connector), as a registration under `required` leaves a user.
fn rusqlite_free_update(path: &std::path::Path) -> bool {
    let url = sqlite_url(path);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sea_orm::ConnectionTrait;
        let opts = userauth::service::db::DbOptions::new(userauth::service::db::DatabaseUrl::parse(&url).unwrap());
        let conn = userauth::service::db::connect(&opts).await.unwrap();
        conn.execute_unprepared("UPDATE users SET email_confirmed_at = NULL").await.unwrap().rows_affected() == 1
    })
}

/// Over a real socket against the real binary: the outbox worker sends the link by itself, and
/// neither the log nor the database file holds the raw token.
#[test]
fn the_real_server_mails_the_link_and_never_logs_the_token() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("verify.db");
    let url = sqlite_url(&db);
    let smtp = sink.url();
    let env = [
        ("ROCKET_EMAIL_VERIFICATION", "required"),
        ("ROCKET_SMTP_URL", smtp.as_str()),
        ("ROCKET_MAIL_FROM", FROM),
        ("ROCKET_PUBLIC_URL", "https://auth.example.com"),
        ("ROCKET_CLIENT_RATE_PER_MINUTE", "0"),
        ("ROCKET_LOG_LEVEL", "debug"),
    ];
    let server = crate::common::Server::start(dir.path(), &url, &env);
    let creds = form_body(&[("email", "socket@example.com"), ("password", PASSWORD)]);
    let r = server.form("POST", "/api/v1/register", &creds, None);
    assert_eq!(r.status, 201);
    let messages = sink.wait_for(1, 30);
    assert_eq!(messages.len(), 1, "the worker sent the link");
    let token = token_in(messages[0]["text"].as_str().unwrap());
    assert_eq!(server.form("POST", "/api/v1/session", &creds, None).status, 403);
    let confirm = server.form("POST", "/api/v1/verify_email", &form_body(&[("token", &token)]), None);
    assert_eq!(confirm.status, 200);
    assert_eq!(server.form("POST", "/api/v1/session", &creds, None).status, 200);
    let log = server.log_text();
    assert!(!log.contains(&token), "the token is not in the log");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    assert!(!bytes.windows(64).any(|w| w == token.as_bytes()), "nor in the database file");
}

// ------------------------------------------------------------------ pages (local client)

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf_token" value=""#).expect("a CSRF field") + r#"name="csrf_token" value=""#.len();
    html[at..at + 64].to_owned()
}

async fn page(c: &Client, path: &str) -> (Status, Option<String>, String) {
    let r = c.get(path.to_owned()).dispatch().await;
    let location = r.headers().get_one("Location").map(str::to_owned);
    (r.status(), location, r.into_string().await.unwrap_or_default())
}

async fn submit(c: &Client, path: &str, pairs: &[(&str, &str)]) -> (Status, Option<String>, String) {
    let r = c.post(path.to_owned()).header(ContentType::Form).body(form_body(pairs)).dispatch().await;
    let location = r.headers().get_one("Location").map(str::to_owned);
    (r.status(), location, r.into_string().await.unwrap_or_default())
}

/// Through the pages: the register page says what happens next, GET /verify never confirms, the
/// button's POST does (303), and the login page offers a resend form on `email_not_confirmed`.
async fn confirmation_flow_through_the_pages(backend: Backend) {
    let db = TestDb::new(backend);
    let sink = SmtpSink::start();
    let (c, svc) = client_with(&db.url, &verification_settings(&sink)).await;
    let email = "pages@example.com";

    let (status, _, html) = page(&c, "/register").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("we email you a link to confirm your address"), "{html}");
    let csrf = csrf_of(&html);
    let (status, location, _) =
        submit(&c, "/register", &[("csrf_token", &csrf), ("email", email), ("password", PASSWORD)]).await;
    assert_eq!((status, location.as_deref()), (Status::SeeOther, Some("/verify")));
    let (_, _, html) = page(&c, "/verify").await;
    assert!(html.contains("Check your email") && html.contains(r#"action="/verify/resend""#), "{html}");
    drain(&svc).await;
    let token = token_in(sink.wait_for(1, 20)[0]["text"].as_str().unwrap());

    // Logging in first: 403 with a resend form for that address.
    let (_, _, html) = page(&c, "/login").await;
    let csrf = csrf_of(&html);
    let (status, _, html) =
        submit(&c, "/login", &[("csrf_token", &csrf), ("email", email), ("password", PASSWORD)]).await;
    assert_eq!(status, Status::Forbidden);
    assert!(html.contains(r#"action="/verify/resend""#) && html.contains(&format!(r#"value="{email}""#)), "{html}");
    let (status, location, _) = submit(&c, "/verify/resend", &[("csrf_token", &csrf), ("email", email)]).await;
    assert_eq!((status, location.as_deref()), (Status::SeeOther, Some("/verify?sent=1")));
    drain(&svc).await;
    let messages = sink.wait_for(2, 20);
    assert_eq!(messages.len(), 2);
    let token2 = token_in(messages[1]["text"].as_str().unwrap());
    assert_ne!(token, token2, "a resend voids the first link");

    // GET (what a mail scanner does) shows the button and confirms nothing, however often.
    for _ in 0..3 {
        let (status, _, html) = page(&c, &format!("/verify?token={token2}")).await;
        assert_eq!(status, Status::Ok);
        assert!(html.contains("Confirm my email address"), "{html}");
    }
    assert_eq!(svc.email_confirmed(email).await.unwrap(), Some(false), "GET never confirms");
    let (_, _, html) = page(&c, &format!("/verify?token={token2}")).await;
    let csrf = csrf_of(&html);
    // Without the CSRF token: 403, nothing confirmed.
    assert_eq!(submit(&c, "/verify", &[("token", &token2)]).await.0, Status::Forbidden);
    let (status, location, _) = submit(&c, "/verify", &[("csrf_token", &csrf), ("token", &token2)]).await;
    assert_eq!((status, location.as_deref()), (Status::SeeOther, Some("/login?registered=1")));
    assert_eq!(svc.email_confirmed(email).await.unwrap(), Some(true));
    // Used: the page says so with the API's status.
    let (status, _, html) = submit(&c, "/verify", &[("csrf_token", &csrf), ("token", &token2)]).await;
    assert_eq!(status, Status::BadRequest);
    assert!(html.contains("unknown, expired or already used"), "{html}");
    let (status, location, _) =
        submit(&c, "/login", &[("csrf_token", &csrf), ("email", email), ("password", PASSWORD)]).await;
    assert_eq!((status, location.as_deref()), (Status::SeeOther, Some("/account")));
}
