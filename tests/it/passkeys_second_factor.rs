//! Passkeys and second factors together (api.md §10, §11) on every backend: a pending login
//! finished with its own user's passkey (and not with another user's), the login answer's
//! `"passkey"`, passkeys alone keeping the password a whole login, the second-factor page's passkey
//! button; and the operator's `user factors` / `user list` with passkeys, through the real CLI.

use rocket::http::Method::{Delete, Get, Post};
use rocket::http::{Cookie, Status};
use serde_json::{Value, json};
use userauth::service::audit::AuditFilter;

use crate::common::{ApiEnv, Backend, PASSWORD, sqlite_url};
use crate::passkeys::{Authenticator, ORIGIN};
use crate::second_factor::code_at;

const ME: &str = "me@example.com";
const OTHER: &str = "other@example.com";

// The shared environment, with this module's steps on it.
crate::api_env_with_steps!(Env);

impl Env {
    async fn new(backend: Backend) -> Env {
        Env(ApiEnv::new(backend, &[]).await)
    }

    async fn html(&self, path: &str, cookie: &str) -> (Status, String) {
        let resp = self.c.get(path.to_owned()).cookie(Cookie::new("session_id", cookie.to_owned())).dispatch().await;
        (resp.status(), resp.into_string().await.unwrap_or_default())
    }

    /// A password login: (status, body, cookie).
    async fn login(&self, email: &str) -> (Status, Value, Option<String>) {
        self.call_full(Post, "/api/v1/session", None, Some(json!({"email": email, "password": PASSWORD}))).await
    }

    /// A registered user's full session (the password alone logs them in).
    async fn full_session(&self, email: &str) -> String {
        self.svc.register(email, PASSWORD).await.unwrap();
        let (status, body, cookie) = self.login(email).await;
        assert_eq!((status, body), (Status::Ok, json!({"email": email, "message": "logged in"})));
        cookie.unwrap()
    }

    async fn add_passkey(&self, cookie: &str, auth: &mut Authenticator, name: &str) -> Value {
        let pw = Some(json!({"current_password": PASSWORD}));
        let (status, start, _) = self.call_full(Post, "/api/v1/passkeys/register/start", Some(cookie), pw).await;
        assert_eq!(status, Status::Ok, "{start}");
        let credential = auth.create(ORIGIN, &start["options"]);
        let body = json!({"challenge_id": start["challenge_id"], "name": name, "credential": credential});
        let (status, added, _) =
            self.call_full(Post, "/api/v1/passkeys/register/finish", Some(cookie), Some(body)).await;
        assert_eq!(status, Status::Created, "{added}");
        added
    }

    /// Turns TOTP on for the full session `cookie`.
    async fn enable_totp(&self, cookie: &str) {
        let pw = Some(json!({"current_password": PASSWORD}));
        let (status, body, _) = self.call_full(Post, "/api/v1/totp", Some(cookie), pw).await;
        assert_eq!(status, Status::Ok, "{body}");
        let code = code_at(body["secret"].as_str().unwrap(), self.clock.clock().now());
        let (status, body, _) =
            self.call_full(Post, "/api/v1/totp/confirm", Some(cookie), Some(json!({"code": code}))).await;
        assert_eq!(status, Status::Ok, "{body}");
    }

    /// `login/start`, the authenticator, then `login/finish` with `cookie` (a pending login, a
    /// full session, or none).
    async fn passkey_login(&self, auth: &mut Authenticator, cookie: Option<&str>) -> (Status, Value, Option<String>) {
        let (status, start, _) = self.call_full(Post, "/api/v1/passkeys/login/start", None, None).await;
        assert_eq!(status, Status::Ok, "{start}");
        let credential = auth.get(ORIGIN, &start["options"]);
        let body = json!({"challenge_id": start["challenge_id"], "credential": credential});
        self.call_full(Post, "/api/v1/passkeys/login/finish", cookie, Some(body)).await
    }

    async fn events(&self, email: &str) -> Vec<(String, Option<String>)> {
        use futures_util::StreamExt;
        let filter = AuditFilter { email: Some(email.into()), ..Default::default() };
        let stream = self.svc.list_audit(&filter).await.unwrap();
        stream.map(|e| e.unwrap()).map(|e| (e.kind, e.method)).collect().await
    }
}

async fn a_pending_login_finishes_with_its_own_users_passkey(backend: Backend) {
    let e = Env::new(backend).await;
    let mine = e.full_session(ME).await;
    let theirs = e.full_session(OTHER).await;
    let (mut my_key, mut their_key) = (Authenticator::new(), Authenticator::new());
    e.add_passkey(&mine, &mut my_key, "Laptop").await;
    e.add_passkey(&theirs, &mut their_key, "Phone").await;
    e.enable_totp(&mine).await;

    // The password of a user with TOTP and a passkey: a pending login that offers all three.
    let (status, body, pending) = e.login(ME).await;
    assert_eq!(
        (status, body),
        (
            Status::Ok,
            json!({"email": ME, "message": "second factor required", "second_factor": ["totp", "recovery_code", "passkey"]})
        )
    );
    let pending = pending.expect("the pending login's cookie");
    assert!(e.svc.is_pending_login(&pending).await.unwrap());
    // The passkey routes that need a session treat a pending login as none (api.md §10).
    for (method, path, body) in [
        (Get, "/api/v1/passkeys", None),
        (Post, "/api/v1/passkeys/register/start", Some(json!({"current_password": PASSWORD}))),
        (Delete, "/api/v1/passkeys/00000000-0000-0000-0000-000000000000", None),
    ] {
        let (status, err, _) = e.call_full(method, path, Some(&pending), body).await;
        assert_eq!((status, err["error"].as_str()), (Status::Unauthorized, Some("second_factor_required")), "{path}");
    }

    // Another user's passkey: 401 invalid_credentials, no cookie, and the pending login stays.
    let (status, err, set) = e.passkey_login(&mut their_key, Some(&pending)).await;
    assert_eq!(
        (status, err["error"].as_str(), set),
        (Status::Unauthorized, Some("invalid_credentials"), None),
        "{err}"
    );
    assert!(e.svc.is_pending_login(&pending).await.unwrap(), "the pending login stays");
    let (status, err, _) = e.call_full(Get, "/api/v1/profile", Some(&pending), None).await;
    assert_eq!((status, err["error"].as_str()), (Status::Unauthorized, Some("second_factor_required")));
    let their_logins = e.events(OTHER).await.into_iter().filter(|(k, _)| k == "login_succeeded").count();
    assert_eq!(their_logins, 1, "only the password login of the setup: the refused passkey opened nothing");

    // The pending login's own user's passkey: a full session with a new token; the pending one ends.
    let (status, body, full) = e.passkey_login(&mut my_key, Some(&pending)).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": ME, "message": "logged in"})));
    let full = full.expect("a new session cookie");
    assert_ne!(full, pending);
    let (status, profile, _) = e.call_full(Get, "/api/v1/profile", Some(&full), None).await;
    assert_eq!((status, profile["email"].as_str()), (Status::Ok, Some(ME)), "{profile}");
    assert!(!e.svc.is_pending_login(&pending).await.unwrap(), "the pending login is spent");
    let (status, err, _) =
        e.call_full(Post, "/api/v1/session/second_factor", Some(&pending), Some(json!({"code": "000000"}))).await;
    assert_eq!((status, err["error"].as_str()), (Status::Unauthorized, Some("unauthorized")), "{err}");
    let (status, _, _) = e.call_full(Get, "/api/v1/profile", Some(&pending), None).await;
    assert_eq!(status, Status::Unauthorized);
    let last = e.events(ME).await.into_iter().rev().find(|(k, _)| k == "login_succeeded");
    assert_eq!(last, Some(("login_succeeded".into(), Some("passkey".into()))));

    // Without a pending login, a passkey logs its own user in, whatever session cookie is sent.
    let (status, body, set) = e.passkey_login(&mut their_key, Some(&full)).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": OTHER, "message": "logged in"})));
    assert!(set.is_some_and(|s| s != full));
    let (status, body, _) = e.passkey_login(&mut my_key, None).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": ME, "message": "logged in"})));

    // An expired pending login binds nothing: it is no pending login at all.
    let (_, _, stale) = e.login(ME).await;
    let stale = stale.unwrap();
    e.clock.advance(std::time::Duration::from_secs(301));
    assert!(!e.svc.is_pending_login(&stale).await.unwrap());
    let (status, body, _) = e.passkey_login(&mut their_key, Some(&stale)).await;
    assert_eq!((status, body["email"].as_str()), (Status::Ok, Some(OTHER)), "{body}");
}

async fn passkeys_alone_keep_the_password_a_whole_login(backend: Backend) {
    let e = Env::new(backend).await;
    let mine = e.full_session(ME).await;
    let mut key = Authenticator::new();
    let added = e.add_passkey(&mine, &mut key, "Laptop").await;

    // A passkey and no TOTP: the password alone still logs in (a passkey is a login of its own).
    let (status, body, cookie) = e.login(ME).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": ME, "message": "logged in"})));
    let cookie = cookie.unwrap();
    assert!(!e.svc.is_pending_login(&cookie).await.unwrap());
    assert_eq!(e.call_full(Get, "/api/v1/profile", Some(&cookie), None).await.0, Status::Ok);
    let user = e.svc.authenticate(&cookie).await.unwrap().id;
    assert_eq!(e.svc.available_second_factors(user).await.unwrap(), ["passkey"]);

    // With TOTP on, the login answer lists the passkey; once it is removed, it no longer does.
    e.enable_totp(&mine).await;
    let (_, body, pending) = e.login(ME).await;
    assert_eq!(body["second_factor"], json!(["totp", "recovery_code", "passkey"]));
    let pending = pending.unwrap();
    let (status, html) = e.html("/login/second-factor", &pending).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("id=\"passkey-login\""), "{html}");
    assert!(html.contains("<script src=\"/static/passkeys.js\" defer></script>"), "{html}");
    assert!(html.contains("autocomplete=\"one-time-code\""), "the code form stays");

    let id = added["id"].as_str().unwrap();
    let (status, _, _) = e.call_full(Delete, &format!("/api/v1/passkeys/{id}"), Some(&mine), None).await;
    assert_eq!(status, Status::Ok);
    let (_, body, pending) = e.login(ME).await;
    assert_eq!(body["second_factor"], json!(["totp", "recovery_code"]));
    let (status, html) = e.html("/login/second-factor", &pending.unwrap()).await;
    assert_eq!(status, Status::Ok);
    assert!(!html.contains("passkey-login") && !html.contains("<script"), "no passkey, no button: {html}");
    // The removed passkey completes nothing.
    let (_, _, pending) = e.login(ME).await;
    let (status, err, _) = e.passkey_login(&mut key, pending.as_deref()).await;
    assert_eq!((status, err["error"].as_str()), (Status::Unauthorized, Some("invalid_credentials")));
}

crate::backend_tests!(
    a_pending_login_finishes_with_its_own_users_passkey,
    passkeys_alone_keep_the_password_a_whole_login
);

/// `userauth user factors` and `user list` with passkeys, and `--reset` removing them in its one
/// transaction, through the real binary on a SQLite file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sees_and_resets_passkeys() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("cli.db"));
    let run_cli = |args: &'static [&'static str]| crate::common::run_async(dir.path(), &url, args);
    assert_eq!(run_cli(&["db-setup"]).await.code, 0);
    let rp = userauth::service::passkeys::RelyingParty::from_public_url(ORIGIN).unwrap();
    let svc = crate::common::service(&url).await.with_relying_party(Some(std::sync::Arc::new(rp)));
    svc.register(ME, PASSWORD).await.unwrap();
    svc.register(OTHER, PASSWORD).await.unwrap();
    let token = svc.login(ME, PASSWORD).await.unwrap().token.expose().to_owned();
    let mut key = Authenticator::new();
    for name in ["Work laptop", "Phone"] {
        let start = svc.start_passkey_registration(&token, PASSWORD).await.unwrap();
        let credential = key.create(ORIGIN, &start.options);
        svc.finish_passkey_registration(&token, &start.challenge_id, name, &credential).await.unwrap();
    }
    // The newest one ("Phone") is used once.
    let start = svc.start_passkey_login().await.unwrap();
    let credential = key.get(ORIGIN, &start.options);
    svc.finish_passkey_login(&start.challenge_id, &credential, None).await.unwrap();
    let enrolment = svc.totp_enrol(&token, PASSWORD).await.unwrap();
    svc.totp_confirm(&token, &code_at(&enrolment.secret, chrono::Utc::now())).await.unwrap();
    // A registration in progress, which the reset removes with the passkeys.
    svc.start_passkey_registration(&token, PASSWORD).await.unwrap();
    let user = svc.authenticate(&token).await.unwrap().id;
    let listed = svc.list_passkeys(user).await.unwrap();
    let named = |name: &str| listed.iter().find(|p| p.name == name).expect("listed").clone();
    let (laptop, phone) = (named("Work laptop"), named("Phone"));
    assert!(laptop.last_used_at.is_none() && phone.last_used_at.is_some());
    let rfc = userauth::service::rfc3339;
    let expected: Vec<Value> = listed
        .iter()
        .map(|p| {
            json!({"id": p.id, "name": p.name, "created_at": rfc(p.created_at), "last_used_at": p.last_used_at.map(rfc)})
        })
        .collect();

    let out = run_cli(&["user", "factors", ME, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        v,
        json!({
            "email": ME,
            "factors": ["password", "totp", "passkey"],
            "totp_pending": false,
            "recovery_codes_left": 10,
            "passkeys": expected
        })
    );
    let out = run_cli(&["user", "factors", ME]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("factors:        password, totp, passkey"), "{}", out.stdout);
    assert!(out.stdout.contains("passkeys:       2"), "{}", out.stdout);
    let laptop_line = format!("  Work laptop  created {}  last used never", rfc(laptop.created_at));
    assert!(out.stdout.contains(&laptop_line), "{}", out.stdout);
    let phone_line =
        format!("  Phone  created {}  last used {}", rfc(phone.created_at), rfc(phone.last_used_at.unwrap()));
    assert!(out.stdout.contains(&phone_line), "{}", out.stdout);
    let out = run_cli(&["user", "list", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows[0]["email"], ME);
    assert_eq!(rows[0]["factors"], json!(["password", "totp", "passkey"]));
    assert_eq!(rows[1]["factors"], json!(["password"]));
    let out = run_cli(&["user", "factors", OTHER, "--json"]).await;
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!((&v["factors"], &v["passkeys"]), (&json!(["password"]), &json!([])));

    let out = run_cli(&["user", "factors", ME, "--reset", "--yes", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["removed"]["passkeys"], 2, "{v}");
    assert_eq!((v["removed"]["totp"].as_u64(), v["removed"]["recovery_codes"].as_u64()), (Some(1), Some(10)));
    assert!(svc.list_passkeys(user).await.unwrap().is_empty());
    assert!(svc.authenticate(&token).await.is_err(), "the user's sessions ended");
    // The registration in progress went with them: its challenge can no longer be finished.
    use sea_orm::{EntityTrait, PaginatorTrait};
    assert_eq!(userauth::entity::passkey_challenge::Entity::find().count(svc.db()).await.unwrap(), 0);
    let start = svc.start_passkey_login().await.unwrap();
    let credential = key.get(ORIGIN, &start.options);
    assert!(svc.finish_passkey_login(&start.challenge_id, &credential, None).await.is_err(), "the passkey is gone");
    let out = run_cli(&["user", "list", "--json"]).await;
    let row: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(row["factors"], json!(["password"]));
    let out = run_cli(&["user", "factors", ME]).await;
    assert!(out.stdout.contains("passkeys:       0"), "{}", out.stdout);
    assert!(svc.login(ME, PASSWORD).await.unwrap().second_factor.is_empty(), "the password alone logs in");
}
