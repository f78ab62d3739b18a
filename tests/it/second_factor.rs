//! Second factors (api.md §10) on every backend: exact bodies of enrol/confirm/disable/regenerate,
//! pending logins refused everywhere, codes of every step that must fail, recovery codes once,
//! the lockout under 30 concurrent wrong codes, pending expiry on the test clock, the secret absent
//! from the database files; and two real `serve` processes racing one fresh code.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rocket::http::{ContentType, Cookie, Method, Status};
use rocket::local::asynchronous::Client;
use serde_json::{Value, json};

use crate::common::{ApiEnv, Backend, PASSWORD, Server, form_body, sqlite_url};
use crate::prereq::{Prereq, require};

const EMAIL: &str = "two@example.com";

/// The code an authenticator app shows at `t` for a base32 secret (RFC 6238, SHA-1, 6 digits).
pub fn code_at(secret: &str, t: DateTime<Utc>) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).expect("base32 secret");
    let totp = totp_rs::Builder::new().with_secret(secret).build().expect("totp");
    totp.generate(u64::try_from(t.timestamp()).unwrap()).to_string()
}

// The shared environment, with this module's steps on it.
crate::api_env_with_steps!(Env);

impl Env {
    async fn new(backend: Backend, extra: &[(&str, Value)]) -> Env {
        Env(ApiEnv::new(backend, extra).await)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.clock().now()
    }

    async fn call(&self, method: Method, path: &str, cookie: Option<&str>, body: Option<Value>) -> (Status, Value) {
        let (status, body, _) = self.call_full(method, path, cookie, body).await;
        (status, body)
    }

    async fn login(&self, password: &str) -> (Status, Value, Option<String>) {
        self.call_full(Method::Post, "/api/v1/session", None, Some(json!({"email": EMAIL, "password": password}))).await
    }

    /// A user with TOTP on: (full session, base32 secret, recovery codes).
    async fn enabled(&self) -> (String, String, Vec<String>) {
        self.svc.register(EMAIL, PASSWORD).await.unwrap();
        let (_, _, full) = self.login(PASSWORD).await;
        let full = full.unwrap();
        let (status, body) =
            self.call(Method::Post, "/api/v1/totp", Some(&full), Some(json!({"current_password": PASSWORD}))).await;
        assert_eq!(status, Status::Ok, "{body}");
        let secret = body["secret"].as_str().unwrap().to_owned();
        let code = code_at(&secret, self.now());
        let (status, body) =
            self.call(Method::Post, "/api/v1/totp/confirm", Some(&full), Some(json!({"code": code}))).await;
        assert_eq!(status, Status::Ok, "{body}");
        let codes = body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        (full, secret, codes)
    }

    /// A pending login (password right, second factor owed).
    async fn pending(&self) -> String {
        let (status, body, cookie) = self.login(PASSWORD).await;
        assert_eq!(status, Status::Ok);
        assert_eq!(
            body,
            json!({"email": EMAIL, "message": "second factor required", "second_factor": ["totp", "recovery_code"]})
        );
        cookie.expect("the pending login's cookie")
    }

    async fn second(&self, pending: &str, body: Value) -> (Status, Value, Option<String>) {
        self.call_full(Method::Post, "/api/v1/session/second_factor", Some(pending), Some(body)).await
    }

    /// Moves the test clock to the start of the next 30-second step (plus a second), so that a
    /// test's codes do not straddle a step boundary.
    fn next_step(&self) {
        let now = self.now();
        let into = (now.timestamp() % 30) as u64;
        self.clock.advance(
            Duration::from_secs(30 - into + 1) - Duration::from_millis(u64::from(now.timestamp_subsec_millis())),
        );
    }
}

/// The kinds of the audit events about EMAIL, oldest first.
async fn audit_kinds(svc: &userauth::service::AuthService) -> Vec<String> {
    use futures_util::StreamExt;
    let filter = userauth::service::audit::AuditFilter { email: Some(EMAIL.into()), ..Default::default() };
    let stream = svc.list_audit(&filter).await.unwrap();
    stream.map(|e| e.unwrap().kind).collect().await
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
}

async fn enrol_confirm_disable_regenerate_exact_bodies(backend: Backend) {
    let e = Env::new(backend, &[]).await;
    e.svc.register(EMAIL, PASSWORD).await.unwrap();
    let (status, body, full) = e.login(PASSWORD).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": EMAIL, "message": "logged in"})), "no factor yet");
    let full = full.unwrap();
    let pw = Some(json!({"current_password": PASSWORD}));
    let wrong = Some(json!({"current_password": "not the password"}));

    // Nothing to confirm, not enabled, no session.
    let (status, body) =
        e.call(Method::Post, "/api/v1/totp/confirm", Some(&full), Some(json!({"code": "123456"}))).await;
    assert_eq!((status, body["error"].as_str()), (Status::Conflict, Some("nothing_to_confirm")), "{body}");
    let (status, body) = e.call(Method::Post, "/api/v1/totp/disable", Some(&full), pw.clone()).await;
    assert_eq!((status, body["error"].as_str()), (Status::Conflict, Some("not_enabled")));
    let (status, body) = e.call(Method::Post, "/api/v1/recovery_codes", Some(&full), pw.clone()).await;
    assert_eq!((status, body["error"].as_str()), (Status::Conflict, Some("not_enabled")));
    assert_eq!(e.call(Method::Post, "/api/v1/totp", None, pw.clone()).await.0, Status::Unauthorized);
    let (status, body) = e.call(Method::Post, "/api/v1/totp", Some(&full), wrong.clone()).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_credentials")));

    // Enrol: the exact keys, a 160-bit secret, an otpauth URL with it, an inline SVG.
    let (status, first) = e.call(Method::Post, "/api/v1/totp", Some(&full), pw.clone()).await;
    assert_eq!(status, Status::Ok, "{first}");
    assert_eq!(keys(&first), ["otpauth_url", "qr_svg", "secret"].into());
    let secret = first["secret"].as_str().unwrap();
    assert_eq!(totp_rs::Secret::try_from_base32(secret).unwrap().as_bytes().len(), 20, "160 bits");
    let url = first["otpauth_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    assert!(url.contains(&format!("secret={secret}")) && url.contains("issuer=userauth"), "{url}");
    let svg = first["qr_svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>") && !svg.contains("href"), "self-contained SVG");
    // Not active yet: the password alone still logs in.
    assert_eq!(e.login(PASSWORD).await.1["message"], "logged in");
    // A new call replaces the unconfirmed secret; the old one no longer confirms.
    let (_, second) = e.call(Method::Post, "/api/v1/totp", Some(&full), pw.clone()).await;
    let secret = second["secret"].as_str().unwrap().to_owned();
    assert_ne!(first["secret"], second["secret"]);
    let stale = code_at(first["secret"].as_str().unwrap(), e.now());
    if stale != code_at(&secret, e.now()) {
        let (status, body) =
            e.call(Method::Post, "/api/v1/totp/confirm", Some(&full), Some(json!({"code": stale}))).await;
        assert_eq!((status, body["error"].as_str()), (Status::BadRequest, Some("invalid_code")));
    }
    let (status, body) =
        e.call(Method::Post, "/api/v1/totp/confirm", Some(&full), Some(json!({"code": "12ab56"}))).await;
    assert_eq!((status, body["error"].as_str()), (Status::BadRequest, Some("invalid_code")));

    // Confirm: exactly the message and 10 distinct codes of the documented form.
    let code = code_at(&secret, e.now());
    let (status, body) = e.call(Method::Post, "/api/v1/totp/confirm", Some(&full), Some(json!({"code": code}))).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(keys(&body), ["message", "recovery_codes"].into());
    assert_eq!(body["message"], "two-factor authentication enabled");
    let codes: Vec<&str> = body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(codes.iter().collect::<BTreeSet<_>>().len(), 10, "distinct");
    for c in &codes {
        assert_eq!(c.len(), 11, "{c}");
        assert_eq!(&c[5..6], "-");
        assert!(c.chars().filter(|&ch| ch != '-').all(|ch| "abcdefghijklmnopqrstuvwxyz234567".contains(ch)), "{c}");
    }
    // Confirming again: nothing to confirm; enrolling again: already enabled.
    let (status, body) = e.call(Method::Post, "/api/v1/totp/confirm", Some(&full), Some(json!({"code": code}))).await;
    assert_eq!((status, body["error"].as_str()), (Status::Conflict, Some("nothing_to_confirm")));
    let (status, body) = e.call(Method::Post, "/api/v1/totp", Some(&full), pw.clone()).await;
    assert_eq!((status, body["error"].as_str()), (Status::Conflict, Some("already_enabled")));
    // The session that enrolled stays a full session.
    assert_eq!(e.call(Method::Get, "/api/v1/profile", Some(&full), None).await.0, Status::Ok);

    // Regenerate: exactly 10 new codes; the old ones stop working.
    let (status, body) = e.call(Method::Post, "/api/v1/recovery_codes", Some(&full), wrong.clone()).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_credentials")));
    let (status, body) = e.call(Method::Post, "/api/v1/recovery_codes", Some(&full), pw.clone()).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(keys(&body), ["recovery_codes"].into());
    let fresh: Vec<String> =
        body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(fresh.len(), 10);
    let pending = e.pending().await;
    let (status, body, _) = e.second(&pending, json!({"recovery_code": codes[0]})).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_code")), "old set voided");
    let (status, body, _) = e.second(&pending, json!({"recovery_code": fresh[0]})).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": EMAIL, "message": "logged in"})));

    // Disable: exact message; the password alone logs in again; the codes are gone.
    let (status, body) = e.call(Method::Post, "/api/v1/totp/disable", Some(&full), wrong).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_credentials")));
    let (status, body) = e.call(Method::Post, "/api/v1/totp/disable", Some(&full), pw.clone()).await;
    assert_eq!((status, body), (Status::Ok, json!({"message": "two-factor authentication disabled"})));
    assert_eq!(e.login(PASSWORD).await.1, json!({"email": EMAIL, "message": "logged in"}));
    let f = e.svc.user_factors(EMAIL).await.unwrap();
    assert_eq!((f.status.factors, f.status.recovery_codes_left), (vec!["password"], 0));

    // The audit trail names each step.
    let kinds: Vec<String> = audit_kinds(&e.svc).await;
    for k in
        ["totp_enabled", "second_factor_failed", "recovery_code_used", "recovery_codes_regenerated", "totp_disabled"]
    {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
}

async fn pending_login_is_refused_everywhere(backend: Backend) {
    let e = Env::new(backend, &[]).await;
    let (full, secret, _) = e.enabled().await;
    let pending = e.pending().await;
    assert_ne!(pending, full);
    for (method, path, body) in [
        (Method::Get, "/api/v1/profile", None),
        (Method::Get, "/api/v1/sessions", None),
        (Method::Delete, "/api/v1/sessions", None),
        (
            Method::Post,
            "/api/v1/password",
            Some(json!({"current_password": PASSWORD, "new_password": "another good password"})),
        ),
        (Method::Post, "/api/v1/totp", Some(json!({"current_password": PASSWORD}))),
        (Method::Post, "/api/v1/totp/confirm", Some(json!({"code": "123456"}))),
        (Method::Post, "/api/v1/totp/disable", Some(json!({"current_password": PASSWORD}))),
        (Method::Post, "/api/v1/recovery_codes", Some(json!({"current_password": PASSWORD}))),
    ] {
        let (status, body) = e.call(method, path, Some(&pending), body).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (Status::Unauthorized, Some("second_factor_required")),
            "{method} {path}: {body}"
        );
    }
    // The classic routes treat it as no session too (their 403).
    assert_eq!(e.call(Method::Get, "/profile", Some(&pending), None).await.0, Status::Forbidden);
    // The pages send it on to its second step.
    let resp = e.c.get("/account").cookie(Cookie::new("session_id", pending.clone())).dispatch().await;
    assert_eq!(resp.status(), Status::SeeOther);
    assert!(resp.headers().get_one("Location").unwrap().starts_with("/login/second-factor"));
    // A full session is no pending login: the second step refuses it.
    let code = code_at(&secret, e.now());
    let (status, body, _) = e.second(&full, json!({"code": code})).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("unauthorized")));
    let (status, body, _) = e.second("0".repeat(64).as_str(), json!({"code": code})).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("unauthorized")));
    let (status, _, _) =
        e.call_full(Method::Post, "/api/v1/session/second_factor", None, Some(json!({"code": code}))).await;
    assert_eq!(status, Status::Unauthorized);
    let (status, body, _) = e.second(&pending, json!({})).await;
    assert_eq!((status, body["error"].as_str()), (Status::BadRequest, Some("missing_field")));

    // The right code: a new token (rotation), a full session; the pending token is gone.
    e.next_step();
    let (status, body, new) = e.second(&pending, json!({"code": code_at(&secret, e.now())})).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": EMAIL, "message": "logged in"})));
    let new = new.expect("a new session cookie");
    assert_ne!(new, pending, "the session token is rotated");
    assert_eq!(e.call(Method::Get, "/api/v1/profile", Some(&new), None).await.0, Status::Ok);
    let (status, body) = e.call(Method::Get, "/api/v1/profile", Some(&pending), None).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("unauthorized")), "pending spent");

    // The classic login answers the same way.
    let resp =
        e.c.post("/sessions")
            .header(ContentType::Form)
            .body(form_body(&[("email", EMAIL), ("password", PASSWORD)]))
            .dispatch()
            .await;
    assert_eq!(resp.status(), Status::Ok);
    let body: Value = serde_json::from_str(&resp.into_string().await.unwrap()).unwrap();
    assert_eq!(body["message"], "second factor required");
}

async fn codes_of_every_step_that_must_fail(backend: Backend) {
    let e = Env::new(backend, &[("login_max_failures", json!(100))]).await;
    let (_, secret, _) = e.enabled().await;
    e.next_step();
    e.next_step();

    // Wrong code.
    let pending = e.pending().await;
    let now = e.now();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| ![-30i64, 0, 30].iter().any(|d| *c == code_at(&secret, now + chrono::Duration::seconds(*d))));
    let (status, body, _) = e.second(&pending, json!({"code": wrong.unwrap()})).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_code")));

    // Two steps old: refused.
    let two_old = code_at(&secret, now - chrono::Duration::seconds(60));
    if two_old != code_at(&secret, now) && two_old != code_at(&secret, now - chrono::Duration::seconds(30)) {
        let (status, body, _) = e.second(&pending, json!({"code": two_old})).await;
        assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_code")), "two steps old");
    }

    // The previous step's code is accepted (clock drift) ...
    let previous = code_at(&secret, now - chrono::Duration::seconds(30));
    let (status, _, _) = e.second(&pending, json!({"code": previous})).await;
    assert_eq!(status, Status::Ok, "previous step accepted once");
    // ... and then neither it (replay) nor any code of that step or an earlier one works again.
    let pending = e.pending().await;
    let (status, body, _) = e.second(&pending, json!({"code": previous})).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_code")), "replayed");
    // The current code is of a later step: accepted once, then replay refused.
    let current = code_at(&secret, now);
    assert_eq!(e.second(&pending, json!({"code": current})).await.0, Status::Ok);
    let pending = e.pending().await;
    let (status, body, _) = e.second(&pending, json!({"code": current})).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_code")), "same step again");
    // Once the current step is used, the previous step's code is refused too (it is before it).
    let (status, _, _) = e.second(&pending, json!({"code": previous})).await;
    assert_eq!(status, Status::Unauthorized);
    // The next step works.
    e.next_step();
    assert_eq!(e.second(&pending, json!({"code": code_at(&secret, e.now())})).await.0, Status::Ok);
}

async fn a_recovery_code_works_once(backend: Backend) {
    let e = Env::new(backend, &[]).await;
    let (_, _, codes) = e.enabled().await;
    let pending = e.pending().await;
    // Typed in capitals with spaces: still the code.
    let typed = format!(" {} ", codes[3].to_uppercase());
    let (status, body, new) = e.second(&pending, json!({"recovery_code": typed})).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": EMAIL, "message": "logged in"})));
    assert!(new.is_some());
    let pending = e.pending().await;
    let (status, body, _) = e.second(&pending, json!({"recovery_code": codes[3]})).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_code")), "used up");
    assert_eq!(e.svc.user_factors(EMAIL).await.unwrap().status.recovery_codes_left, 9);
    // Two requests racing one code: one wins.
    let (a, b) = (e.pending().await, e.pending().await);
    let (ra, rb) = tokio::join!(
        e.second(&a, json!({"recovery_code": codes[5]})),
        e.second(&b, json!({"recovery_code": codes[5]}))
    );
    let mut statuses = [ra.0.code, rb.0.code];
    statuses.sort();
    assert_eq!(statuses, [200, 401]);
    assert_eq!(e.svc.user_factors(EMAIL).await.unwrap().status.recovery_codes_left, 8);
}

async fn thirty_concurrent_wrong_codes_at_limit_three(backend: Backend) {
    let e = Env::new(backend, &[("login_max_failures", json!(3))]).await;
    let (_, secret, _) = e.enabled().await;
    let pending = e.pending().await;
    let now = e.now();
    let wrong: Vec<String> = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .filter(|c| ![-30i64, 0, 30].iter().any(|d| *c == code_at(&secret, now + chrono::Duration::seconds(*d))))
        .take(30)
        .collect();
    let results =
        futures_util::future::join_all(wrong.iter().map(|code| e.second(&pending, json!({"code": code})))).await;
    let invalid = results.iter().filter(|r| r.1["error"] == "invalid_code").count();
    let locked = results.iter().filter(|r| r.0 == Status::TooManyRequests && r.1["error"] == "account_locked").count();
    assert_eq!((invalid, locked), (3, 27), "exactly 3 codes checked");
    // The metric and the audit log agree: 3 checked and failed.
    let metrics = e.svc.render_metrics().unwrap();
    assert!(metrics.contains("userauth_second_factor_total{method=\"totp\",result=\"invalid\"} 3"), "{metrics}");
    assert!(metrics.contains("userauth_second_factor_total{method=\"totp\",result=\"locked\"} 27"), "{metrics}");
    let failed = audit_kinds(&e.svc).await.iter().filter(|k| *k == "second_factor_failed").count();
    assert_eq!(failed, 3);
    // Even the right code is refused now, and so is the password (one budget).
    let (status, _, _) = e.second(&pending, json!({"code": code_at(&secret, now)})).await;
    assert_eq!(status, Status::TooManyRequests);
    assert_eq!(e.login(PASSWORD).await.0, Status::TooManyRequests);
    // A right password does not reset the count of wrong codes: after the window, the budget is
    // shared again and a right password leaves it whole for the codes.
    e.clock.advance(Duration::from_secs(901));
    let pending = e.pending().await;
    let pending2 = e.pending().await;
    for p in [&pending, &pending2, &pending] {
        assert_eq!(e.second(p, json!({"code": wrong[0]})).await.0, Status::Unauthorized);
    }
    assert_eq!(e.login(PASSWORD).await.0, Status::TooManyRequests, "3 wrong codes lock the password too");
}

async fn pending_login_expires_on_the_clock(backend: Backend) {
    let e = Env::new(backend, &[("second_factor_timeout_secs", json!(120))]).await;
    let (_, secret, _) = e.enabled().await;
    let pending = e.pending().await;
    e.clock.advance(Duration::from_secs(121));
    let (status, body, new) = e.second(&pending, json!({"code": code_at(&secret, e.now())})).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("unauthorized")));
    assert!(new.is_none());
    // Expired, it is not even a pending login for the guards any more.
    let (status, body) = e.call(Method::Get, "/api/v1/profile", Some(&pending), None).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("unauthorized")));
    // Within the timeout it works.
    let pending = e.pending().await;
    e.clock.advance(Duration::from_secs(60));
    e.next_step();
    assert_eq!(e.second(&pending, json!({"code": code_at(&secret, e.now())})).await.0, Status::Ok);
}

async fn the_secret_is_not_in_the_database_files(backend: Backend) {
    let e = Env::new(backend, &[]).await;
    let (_, secret, codes) = e.enabled().await;
    let raw = totp_rs::Secret::try_from_base32(&secret).unwrap().as_bytes().to_vec();
    let needles: Vec<(String, Vec<u8>)> = vec![
        ("base32".into(), secret.as_bytes().to_vec()),
        ("base32 lowercase".into(), secret.to_lowercase().into_bytes()),
        ("hex".into(), hex::encode(&raw).into_bytes()),
        ("HEX".into(), hex::encode_upper(&raw).into_bytes()),
        ("raw".into(), raw.clone()),
        ("base64".into(), base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw).into_bytes()),
        ("recovery code".into(), codes[0].as_bytes().to_vec()),
        ("recovery code, bare".into(), codes[0].replace('-', "").into_bytes()),
    ];
    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    match backend {
        Backend::SqliteFile => {
            let path = e.db.path().unwrap();
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let p = format!("{}{suffix}", path.display());
                if let Ok(bytes) = std::fs::read(&p) {
                    haystacks.push((p, bytes));
                }
            }
            // The files do hold the row: its ciphertext is there, so the search below can fail.
            use sea_orm::EntityTrait;
            let stored = userauth::entity::totp_factor::Entity::find().one(e.svc.db()).await.unwrap().unwrap().secret;
            assert!(
                haystacks.iter().any(|(_, h)| h.windows(stored.len()).any(|w| w == stored.as_slice())),
                "the encrypted secret is in the database files"
            );
        }
        Backend::SqliteMemory | Backend::Postgres => {
            // Every stored value of the new tables, as the database hands it out.
            use sea_orm::{ConnectionTrait, EntityTrait, Statement};
            let db = e.svc.db();
            let stored = userauth::entity::totp_factor::Entity::find().one(db).await.unwrap().unwrap().secret;
            assert!(e.svc.key().decrypt("totp", &stored).is_ok(), "the ciphertext opens with the key");
            haystacks.push(("totp_factors.secret".into(), stored));
            let digests = userauth::entity::recovery_code::Entity::find().all(db).await.unwrap();
            assert_eq!(digests.len(), 10);
            haystacks.push(("recovery_codes".into(), digests.iter().flat_map(|d| d.digest.bytes()).collect()));
            if backend == Backend::Postgres {
                for table in ["totp_factors", "recovery_codes", "pending_logins", "audit_events", "throttles"] {
                    let sql = format!("SELECT CAST(row_to_json(t) AS TEXT) FROM {table} t");
                    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
                    let text: String = rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect();
                    haystacks.push((table.into(), text.into_bytes()));
                }
            }
        }
    }
    assert!(!haystacks.is_empty());
    for (where_, hay) in &haystacks {
        for (what, needle) in &needles {
            assert!(!hay.windows(needle.len()).any(|w| w == needle.as_slice()), "{what} found in {where_}");
        }
    }
}

crate::backend_tests!(
    enrol_confirm_disable_regenerate_exact_bodies,
    pending_login_is_refused_everywhere,
    codes_of_every_step_that_must_fail,
    a_recovery_code_works_once,
    thirty_concurrent_wrong_codes_at_limit_three,
    pending_login_expires_on_the_clock,
    the_secret_is_not_in_the_database_files,
    account_page_shows_factors_and_warns_when_few_codes_remain,
    a_pending_login_upgrades_the_hash_too,
);

/// The hash upgrade of api.md §6 happens for users with a second factor too (at the password step).
async fn a_pending_login_upgrades_the_hash_too(backend: Backend) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let e = Env::new(backend, &[("bcrypt_cost", json!(5))]).await;
    let (_, _, _) = e.enabled().await;
    let stored = || async {
        userauth::entity::user::Entity::find()
            .filter(userauth::entity::user::Column::Email.eq(EMAIL))
            .one(e.svc.db())
            .await
            .unwrap()
            .unwrap()
            .password_hash
    };
    // An imported cost-4 hash of the same password.
    let cost4 = bcrypt::hash(PASSWORD, 4).unwrap();
    userauth::entity::user::Entity::update_many()
        .col_expr(userauth::entity::user::Column::PasswordHash, sea_orm::sea_query::Expr::value(cost4.clone()))
        .filter(userauth::entity::user::Column::Email.eq(EMAIL))
        .exec(e.svc.db())
        .await
        .unwrap();
    assert_eq!(stored().await, cost4);
    let _pending = e.pending().await;
    let h = stored().await;
    assert!(h.starts_with("$2b$05$"), "{h}");
    e.pending().await;
    assert_eq!(stored().await, h, "no second upgrade");
}

// ---------------------------------------------------------------- two real instances

#[test]
fn one_fresh_code_sent_to_two_instances_at_once_wins_once() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = crate::pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    // One server key for both (api.md §14): either instance opens the secret.
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let env = [("ROCKET_KEY", key.as_str())];
    let a = Server::start(dir.path(), &url, &env);
    let b = Server::start(dir.path(), &url, &env);
    let creds = form_body(&[("email", EMAIL), ("password", PASSWORD)]);
    assert_eq!(a.form("POST", "/api/v1/register", &creds, None).status, 201);
    let full = a.form("POST", "/api/v1/session", &creds, None).session_cookie().unwrap();
    let pw = form_body(&[("current_password", PASSWORD)]);
    let enrol = b.form("POST", "/api/v1/totp", &pw, Some(&full));
    assert_eq!(enrol.status, 200);
    let secret = enrol.json()["secret"].as_str().unwrap().to_owned();
    // Confirm on A what B enrolled, then wait for a step no code was used in yet.
    let confirm =
        a.form("POST", "/api/v1/totp/confirm", &form_body(&[("code", &code_at(&secret, Utc::now()))]), Some(&full));
    assert_eq!(confirm.status, 200, "{:?}", confirm.json());

    // The code of the next step (accepted: the step after the current one is allowed) is fresh:
    // no code of it was used yet. Two pending logins of the user, one on each instance.
    let p1 = a.form("POST", "/api/v1/session", &creds, None);
    let p2 = b.form("POST", "/api/v1/session", &creds, None);
    assert_eq!(p1.json()["message"], "second factor required");
    let (p1, p2) = (p1.session_cookie().unwrap(), p2.session_cookie().unwrap());
    let code = form_body(&[("code", &code_at(&secret, Utc::now() + chrono::Duration::seconds(30)))]);
    let barrier = std::sync::Barrier::new(2);
    let (ra, rb) = std::thread::scope(|s| {
        let ra = s.spawn(|| {
            barrier.wait();
            a.form("POST", "/api/v1/session/second_factor", &code, Some(&p1))
        });
        let rb = s.spawn(|| {
            barrier.wait();
            b.form("POST", "/api/v1/session/second_factor", &code, Some(&p2))
        });
        (ra.join().unwrap(), rb.join().unwrap())
    });
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "exactly one instance accepts the code");
    let loser = if ra.status == 401 { ra.json() } else { rb.json() };
    assert_eq!(loser["error"], "invalid_code");
}

// ---------------------------------------------------------------- the account page and the CLI

async fn account_html(c: &Client, cookie: &str) -> String {
    let resp = c.get("/account").cookie(Cookie::new("session_id", cookie.to_owned())).dispatch().await;
    assert_eq!(resp.status(), Status::Ok);
    resp.into_string().await.unwrap()
}

async fn account_page_shows_factors_and_warns_when_few_codes_remain(backend: Backend) {
    let e = Env::new(backend, &[]).await;
    e.svc.register("off@example.com", PASSWORD).await.unwrap();
    let off = e.svc.login("off@example.com", PASSWORD).await.unwrap();
    let html = account_html(&e.c, off.token.expose()).await;
    assert!(html.contains("Two-factor authentication is <strong>off</strong>"), "{html}");
    assert!(html.contains("action=\"/account/totp\""));

    let (full, _, codes) = e.enabled().await;
    let on = account_html(&e.c, &full).await;
    assert!(on.contains("Two-factor authentication is <strong>on</strong>"), "{on}");
    assert!(on.contains("<strong id=\"recovery-left\">10</strong>"));
    assert!(!on.contains("recovery-warning"));
    for code in &codes[..8] {
        let pending = e.pending().await;
        assert_eq!(e.second(&pending, json!({"recovery_code": code})).await.0, Status::Ok);
    }
    let low = account_html(&e.c, &full).await;
    assert!(low.contains("<strong id=\"recovery-left\">2</strong>"), "{low}");
    assert!(low.contains("id=\"recovery-warning\">Only 2 recovery codes remain"), "{low}");
    // The codes are not on offer to a session without the cookie that carries them.
    let resp = e.c.get("/account/recovery-codes.txt").cookie(Cookie::new("session_id", full.clone())).dispatch().await;
    assert_eq!(resp.status(), Status::SeeOther);
    let resp = e.c.get("/account/recovery-codes").cookie(Cookie::new("session_id", full)).dispatch().await;
    assert_eq!(resp.status(), Status::SeeOther);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_lists_and_resets_factors() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("cli.db"));
    let run_cli = |args: &'static [&'static str]| crate::common::run_async(dir.path(), &url, args);
    assert_eq!(run_cli(&["db-setup"]).await.code, 0);
    let svc = crate::common::service(&url).await;
    svc.register(EMAIL, PASSWORD).await.unwrap();
    let session = svc.login(EMAIL, PASSWORD).await.unwrap();
    let token = session.token.expose().to_owned();
    let enrolment = svc.totp_enrol(&token, PASSWORD).await.unwrap();
    svc.totp_confirm(&token, &code_at(&enrolment.secret, Utc::now())).await.unwrap();

    let out = run_cli(&["user", "factors", EMAIL, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        v,
        json!({
            "email": EMAIL,
            "factors": ["password", "totp"],
            "totp_pending": false,
            "recovery_codes_left": 10,
            "passkeys": []
        })
    );
    let out = run_cli(&["user", "factors", EMAIL]).await;
    assert!(out.stdout.contains("factors:        password, totp"), "{}", out.stdout);
    let out = run_cli(&["user", "list", "--json"]).await;
    let row: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(row["factors"], json!(["password", "totp"]));

    // Not on a terminal and no --yes: refused, nothing changed.
    let out = run_cli(&["user", "factors", EMAIL, "--reset"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: ") && out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1);
    assert!(svc.authenticate(&token).await.is_ok());
    // --yes without --reset is a usage error; an unknown user is a failure.
    assert_eq!(run_cli(&["user", "factors", EMAIL, "--yes"]).await.code, 2);
    let out = run_cli(&["user", "factors", "nobody@example.com"]).await;
    assert_eq!((out.code, out.stderr.trim()), (1, "error: no user with this email"));

    let out = run_cli(&["user", "factors", EMAIL, "--reset", "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("removed 1 TOTP secret(s), 10 recovery code(s) and 0 passkey(s)"), "{}", out.stdout);
    assert!(svc.authenticate(&token).await.is_err(), "the user's sessions ended");
    let after = svc.login(EMAIL, PASSWORD).await.unwrap();
    assert!(after.second_factor.is_empty(), "the password alone logs in again");
    let kinds = audit_kinds(&svc).await;
    assert!(kinds.iter().any(|k| k == "factors_reset"), "{kinds:?}");
}
