//! Passkeys (api.md §11) through the real API with a software authenticator
//! (webauthn-authenticator-rs' soft passkey: real P-256 keys, real CBOR attestation and signed
//! assertions), on every backend; and a ceremony started on one `serve` and finished on another.

use std::time::Duration;

use rocket::http::Method::{Delete, Get, Post};
use rocket::http::{ContentType, Cookie, Status};
use rocket::local::asynchronous::Client;
use serde_json::{Value, json};
use userauth::api::error::ApiError;
use userauth::service::audit::AuditFilter;
use userauth::service::{AuthError, AuthService};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{AllowCredentials, PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions};

use crate::common::{
    ApiEnv, Backend, PASSWORD, Server, TestClock, TestDb, api_login, call_json, form_body, http, service_for, settings,
    sqlite_url,
};
use crate::prereq::{Prereq, require};

/// The relying party's origin in these tests: `public_url` unset, port 5000.
pub const ORIGIN: &str = "http://localhost:5000";

/// A software authenticator that keeps its credentials as a discoverable one does: it remembers
/// the user handle of each credential and hands it back on login. (The soft passkey signs real
/// assertions but has no resident-key store, so this wrapper plays that part: it names its own
/// credentials in the request, as the browser does when it picks a discoverable credential.)
pub struct Authenticator {
    inner: SoftPasskey,
    creds: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator {
    pub fn new() -> Self {
        // `true`: it reports user verification, as a platform authenticator with a PIN does.
        Self { inner: SoftPasskey::new(true), creds: Vec::new() }
    }

    /// `navigator.credentials.create` at `origin`: the `PublicKeyCredential` as JSON.
    pub fn create(&mut self, origin: &str, options: &Value) -> Value {
        let mut opts: PublicKeyCredentialCreationOptions =
            serde_json::from_value(options.clone()).expect("creation options");
        if let Some(sel) = opts.authenticator_selection.as_mut() {
            sel.require_resident_key = false;
            sel.resident_key = None;
        }
        let user = opts.user.id.clone();
        let reg = self
            .inner
            .do_registration(Url::parse(origin).unwrap(), CreationChallengeResponse { public_key: opts })
            .expect("the authenticator registers");
        self.creds.push((reg.raw_id.clone(), user));
        serde_json::to_value(&reg).unwrap()
    }

    /// `navigator.credentials.get` at `origin` with this authenticator's newest credential.
    pub fn get(&mut self, origin: &str, options: &Value) -> Value {
        let mut opts: PublicKeyCredentialRequestOptions =
            serde_json::from_value(options.clone()).expect("request options");
        // The newest credential, as a person picks the passkey they just made.
        opts.allow_credentials = self
            .creds
            .iter()
            .rev()
            .take(1)
            .map(|(id, _)| AllowCredentials { type_: "public-key".into(), id: id.clone(), transports: None })
            .collect();
        let mut cred = self
            .inner
            .do_authentication(
                Url::parse(origin).unwrap(),
                RequestChallengeResponse { public_key: opts, mediation: None },
            )
            .expect("the authenticator signs");
        let user = self.creds.iter().find(|(id, _)| *id == cred.raw_id).map(|(_, u)| u.clone());
        cred.response.user_handle = user;
        serde_json::to_value(&cred).unwrap()
    }
}

/// The shared environment's parts.
async fn setup(backend: Backend) -> (TestDb, Client, AuthService, TestClock) {
    let e = ApiEnv::new(backend, &[]).await;
    (e.db, e.c, e.svc, e.clock)
}

/// Registers a passkey named `name` for the session `cookie`; returns the answer's body.
async fn add_passkey(c: &Client, cookie: &str, auth: &mut Authenticator, name: &str) -> Value {
    let (status, start, _) = call_json(
        c,
        Post,
        "/api/v1/passkeys/register/start",
        Some(cookie),
        Some(json!({"current_password": PASSWORD})),
    )
    .await;
    assert_eq!(status, Status::Ok, "{start}");
    let credential = auth.create(ORIGIN, &start["options"]);
    let body = json!({"challenge_id": start["challenge_id"], "name": name, "credential": credential});
    let (status, added, _) = call_json(c, Post, "/api/v1/passkeys/register/finish", Some(cookie), Some(body)).await;
    assert_eq!(status, Status::Created, "{added}");
    added
}

/// A passkey login: (status, body, new session cookie).
async fn passkey_login(c: &Client, auth: &mut Authenticator, origin: &str) -> (Status, Value, Option<String>) {
    let (status, start, _) = call_json(c, Post, "/api/v1/passkeys/login/start", None, None).await;
    assert_eq!(status, Status::Ok, "{start}");
    let credential = auth.get(origin, &start["options"]);
    call_json(
        c,
        Post,
        "/api/v1/passkeys/login/finish",
        None,
        Some(json!({"challenge_id": start["challenge_id"], "credential": credential})),
    )
    .await
}

async fn kinds(svc: &AuthService) -> Vec<String> {
    use futures_util::StreamExt;
    let stream = svc.list_audit(&AuditFilter::default()).await.unwrap();
    stream.map(|e| e.unwrap().kind).collect().await
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

async fn register_list_login_remove(backend: Backend) {
    let (_db, c, svc, _clock) = setup(backend).await;
    svc.register("me@example.com", PASSWORD).await.unwrap();
    let cookie = api_login(&c, "me@example.com", PASSWORD, None).await;

    // The start needs a full session and the current password (a wrong one is a failed login).
    let body = Some(json!({"current_password": PASSWORD}));
    assert_eq!(
        call_json(&c, Post, "/api/v1/passkeys/register/start", None, body.clone()).await.0,
        Status::Unauthorized
    );
    let (status, err, _) = call_json(
        &c,
        Post,
        "/api/v1/passkeys/register/start",
        Some(&cookie),
        Some(json!({"current_password": "wrong password!"})),
    )
    .await;
    assert_eq!((status, err["error"].as_str()), (Status::Unauthorized, Some("invalid_credentials")));
    let (status, start, _) = call_json(&c, Post, "/api/v1/passkeys/register/start", Some(&cookie), body).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(keys(&start), ["challenge_id", "options"]);
    let options = &start["options"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    assert!(options["challenge"].as_str().is_some_and(|s| s.len() >= 43), "{options}");

    let mut auth = Authenticator::new();
    let credential = auth.create(ORIGIN, options);
    let finish = json!({"challenge_id": start["challenge_id"], "name": "  Laptop  ", "credential": credential});
    let (status, added, _) =
        call_json(&c, Post, "/api/v1/passkeys/register/finish", Some(&cookie), Some(finish.clone())).await;
    assert_eq!(status, Status::Created, "{added}");
    assert_eq!(keys(&added), ["created_at", "id", "name"]);
    assert_eq!(added["name"], "Laptop");
    // The same challenge again: used.
    let (status, err, _) = call_json(&c, Post, "/api/v1/passkeys/register/finish", Some(&cookie), Some(finish)).await;
    assert_eq!((status, err["error"].as_str()), (Status::BadRequest, Some("invalid_credential")));

    let (status, list, _) = call_json(&c, Get, "/api/v1/passkeys", Some(&cookie), None).await;
    assert_eq!(status, Status::Ok);
    let items = list["passkeys"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(keys(&items[0]), ["created_at", "id", "last_used_at", "name"]);
    assert_eq!(items[0]["id"], added["id"]);
    assert!(items[0]["last_used_at"].is_null());

    // Passwordless login: a full session for the passkey's owner.
    let (status, start, _) = call_json(&c, Post, "/api/v1/passkeys/login/start", None, None).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(start["options"]["userVerification"], "required");
    assert!(start["options"]["allowCredentials"].as_array().is_none_or(Vec::is_empty), "discoverable: {start}");
    let credential = auth.get(ORIGIN, &start["options"]);
    let finish = json!({"challenge_id": start["challenge_id"], "credential": credential});
    let (status, body, new_cookie) =
        call_json(&c, Post, "/api/v1/passkeys/login/finish", None, Some(finish.clone())).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": "me@example.com", "message": "logged in"})));
    let new_cookie = new_cookie.expect("a session cookie");
    let (status, profile, _) = call_json(&c, Get, "/api/v1/profile", Some(&new_cookie), None).await;
    assert_eq!((status, profile["email"].as_str()), (Status::Ok, Some("me@example.com")));
    // The same challenge and assertion again: refused.
    let (status, err, set) = call_json(&c, Post, "/api/v1/passkeys/login/finish", None, Some(finish)).await;
    assert_eq!((status, err["error"].as_str(), set), (Status::Unauthorized, Some("invalid_credentials"), None));

    let (_, list, _) = call_json(&c, Get, "/api/v1/passkeys", Some(&new_cookie), None).await;
    assert!(list["passkeys"][0]["last_used_at"].is_string(), "{list}");
    // A second login works too (the counter moved on and was stored).
    assert_eq!(passkey_login(&c, &mut auth, ORIGIN).await.0, Status::Ok);

    // Removal; the passkey no longer logs in.
    let id = added["id"].as_str().unwrap();
    let (status, body, _) = call_json(&c, Delete, &format!("/api/v1/passkeys/{id}"), Some(&cookie), None).await;
    assert_eq!((status, body), (Status::Ok, json!({"message": "passkey removed"})));
    let (_, list, _) = call_json(&c, Get, "/api/v1/passkeys", Some(&cookie), None).await;
    assert_eq!(list, json!({"passkeys": []}));
    let (status, err, set) = passkey_login(&c, &mut auth, ORIGIN).await;
    assert_eq!((status, err["error"].as_str(), set), (Status::Unauthorized, Some("invalid_credentials"), None));
    assert_eq!(call_json(&c, Delete, &format!("/api/v1/passkeys/{id}"), Some(&cookie), None).await.0, Status::NotFound);

    let k = kinds(&svc).await;
    for expected in ["passkey_added", "passkey_removed", "login_succeeded", "login_failed"] {
        assert!(k.iter().any(|x| x == expected), "{expected} in {k:?}");
    }
    // login_succeeded says the method: one password login, then two with the passkey.
    use futures_util::StreamExt;
    let filter = AuditFilter { kind: Some("login_succeeded".into()), ..Default::default() };
    let methods: Vec<Option<String>> =
        svc.list_audit(&filter).await.unwrap().map(|e| e.unwrap().method).collect().await;
    let expected = ["password", "passkey", "passkey"].map(|m| Some(m.to_owned()));
    assert_eq!(methods, expected);
    assert!(matches!(svc.verify_audit().await.unwrap(), userauth::service::audit::Verified::Intact(_)));
}

async fn start_reg(c: &Client, cookie: &str) -> Value {
    let (s, v, _) = call_json(
        c,
        Post,
        "/api/v1/passkeys/register/start",
        Some(cookie),
        Some(json!({"current_password": PASSWORD})),
    )
    .await;
    assert_eq!(s, Status::Ok);
    v
}

async fn finish_reg(c: &Client, cookie: &str, body: Value) -> (Status, Value, Option<String>) {
    call_json(c, Post, "/api/v1/passkeys/register/finish", Some(cookie), Some(body)).await
}

async fn login_start(c: &Client) -> Value {
    let (s, v, _) = call_json(c, Post, "/api/v1/passkeys/login/start", None, None).await;
    assert_eq!(s, Status::Ok);
    v
}

async fn login_finish(c: &Client, body: Value) -> (Status, Value, Option<String>) {
    call_json(c, Post, "/api/v1/passkeys/login/finish", None, Some(body)).await
}

fn refused((s, e, set): (Status, Value, Option<String>)) {
    assert_eq!((s, e["error"].as_str(), set), (Status::Unauthorized, Some("invalid_credentials"), None), "{e}");
}

async fn failures_answer_as_the_contract_says(backend: Backend) {
    let (_db, c, svc, clock) = setup(backend).await;
    svc.register("me@example.com", PASSWORD).await.unwrap();
    svc.register("other@example.com", PASSWORD).await.unwrap();
    let cookie = api_login(&c, "me@example.com", PASSWORD, None).await;
    let other = api_login(&c, "other@example.com", PASSWORD, None).await;
    let mut auth = Authenticator::new();

    // Wrong origin (another port of localhost): refused, and the challenge is spent.
    let start = start_reg(&c, &cookie).await;
    let cred = auth.create("http://localhost:5001", &start["options"]);
    let (s, e, _) =
        finish_reg(&c, &cookie, json!({"challenge_id": start["challenge_id"], "name": "x", "credential": cred})).await;
    assert_eq!((s, e["error"].as_str()), (Status::BadRequest, Some("invalid_credential")));

    // Expired: the test clock moves past five minutes.
    let start = start_reg(&c, &cookie).await;
    let cred = auth.create(ORIGIN, &start["options"]);
    clock.advance(Duration::from_secs(5 * 60 + 1));
    let (s, e, _) =
        finish_reg(&c, &cookie, json!({"challenge_id": start["challenge_id"], "name": "x", "credential": cred})).await;
    assert_eq!((s, e["error"].as_str()), (Status::BadRequest, Some("invalid_credential")));

    // Another user's challenge, unknown ids, tampered attestation: refused.
    let start = start_reg(&c, &cookie).await;
    let cred = auth.create(ORIGIN, &start["options"]);
    let body = json!({"challenge_id": start["challenge_id"], "name": "x", "credential": cred});
    assert_eq!(finish_reg(&c, &other, body.clone()).await.0, Status::BadRequest, "not the other user's challenge");
    let start = start_reg(&c, &cookie).await;
    let mut tampered = auth.create(ORIGIN, &start["options"]);
    tampered["response"]["clientDataJSON"] = json!("eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0");
    let (s, e, _) =
        finish_reg(&c, &cookie, json!({"challenge_id": start["challenge_id"], "name": "x", "credential": tampered}))
            .await;
    assert_eq!((s, e["error"].as_str()), (Status::BadRequest, Some("invalid_credential")));
    for id in ["", "nonsense", &"0".repeat(64)] {
        let (s, e, _) =
            finish_reg(&c, &cookie, json!({"challenge_id": id, "name": "x", "credential": {"id": "a"}})).await;
        assert_eq!(s, Status::BadRequest, "{id}: {e}");
    }
    // Malformed bodies: 400 with a precise code, never a 500; no passkey came of any of this.
    let start = start_reg(&c, &cookie).await;
    let good = auth.create(ORIGIN, &start["options"]);
    for (body, code) in [
        (json!({"name": "x", "credential": good}), "missing_field"),
        (json!({"challenge_id": start["challenge_id"], "credential": good}), "missing_field"),
        (json!({"challenge_id": start["challenge_id"], "name": "x"}), "missing_field"),
        (json!({"challenge_id": start["challenge_id"], "name": "x", "credential": 5}), "invalid_field"),
        (json!({"challenge_id": start["challenge_id"], "name": "x", "credential": "{not json"}), "invalid_field"),
        (json!({"challenge_id": start["challenge_id"], "name": "x".repeat(65), "credential": good}), "invalid_field"),
        (json!({"challenge_id": 7, "name": "x", "credential": good}), "invalid_field"),
    ] {
        let (s, e, _) = finish_reg(&c, &cookie, body.clone()).await;
        assert_eq!((s, e["error"].as_str()), (Status::BadRequest, Some(code)), "{body}");
    }
    let resp = c
        .post("/api/v1/passkeys/register/finish")
        .cookie(Cookie::new("session_id", cookie.clone()))
        .header(ContentType::JSON)
        .body("[1, 2")
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::BadRequest);
    assert!(svc.list_passkeys(svc_user(&svc, "me@example.com").await).await.unwrap().is_empty());

    // Now one good passkey, sent as a form with the credential as JSON text.
    let start = start_reg(&c, &cookie).await;
    let good = auth.create(ORIGIN, &start["options"]);
    let resp = c
        .post("/api/v1/passkeys/register/finish")
        .cookie(Cookie::new("session_id", cookie.clone()))
        .header(ContentType::Form)
        .body(form_body(&[
            ("challenge_id", start["challenge_id"].as_str().unwrap()),
            ("name", "Phone"),
            ("credential", &good.to_string()),
        ]))
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::Created);

    // Login failures: expired challenge, wrong origin, tampered signature, unknown credential.
    let start = login_start(&c).await;
    let cred = auth.get(ORIGIN, &start["options"]);
    clock.advance(Duration::from_secs(5 * 60 + 1));
    refused(login_finish(&c, json!({"challenge_id": start["challenge_id"], "credential": cred})).await);

    let start = login_start(&c).await;
    let cred = auth.get("http://localhost:5001", &start["options"]);
    refused(login_finish(&c, json!({"challenge_id": start["challenge_id"], "credential": cred})).await);

    let start = login_start(&c).await;
    let mut cred = auth.get(ORIGIN, &start["options"]);
    let sig = cred["response"]["signature"].as_str().unwrap().to_owned();
    let flipped =
        if sig.ends_with('A') { format!("{}B", &sig[..sig.len() - 1]) } else { format!("{}A", &sig[..sig.len() - 1]) };
    cred["response"]["signature"] = json!(flipped);
    refused(login_finish(&c, json!({"challenge_id": start["challenge_id"], "credential": cred})).await);

    let mut stranger = Authenticator::new();
    let start_other = start_reg(&c, &other).await;
    let _never_finished = stranger.create(ORIGIN, &start_other["options"]);
    let start = login_start(&c).await;
    let cred = stranger.get(ORIGIN, &start["options"]);
    refused(login_finish(&c, json!({"challenge_id": start["challenge_id"], "credential": cred})).await);
    refused(login_finish(&c, json!({"challenge_id": "0".repeat(64), "credential": {"id": "x"}})).await);
    let start = login_start(&c).await;
    refused(login_finish(&c, json!({"challenge_id": start["challenge_id"], "credential": {"id": "x"}})).await);

    // And after all that, the right passkey still logs in.
    assert_eq!(passkey_login(&c, &mut auth, ORIGIN).await.0, Status::Ok);
}

async fn svc_user(svc: &AuthService, email: &str) -> uuid::Uuid {
    use futures_util::StreamExt;
    let filter = userauth::service::ListFilter { email_contains: Some(email.into()), ..Default::default() };
    let mut users = Box::pin(svc.list_users(&filter).await.unwrap());
    users.next().await.unwrap().unwrap().id
}

async fn passkeys_are_their_owners_alone(backend: Backend) {
    let (_db, c, svc, _clock) = setup(backend).await;
    svc.register("me@example.com", PASSWORD).await.unwrap();
    svc.register("other@example.com", PASSWORD).await.unwrap();
    let mine = api_login(&c, "me@example.com", PASSWORD, None).await;
    let theirs = api_login(&c, "other@example.com", PASSWORD, None).await;
    let mut auth = Authenticator::new();
    let added = add_passkey(&c, &mine, &mut auth, "Laptop").await;
    let id = added["id"].as_str().unwrap();

    let (status, list, _) = call_json(&c, Get, "/api/v1/passkeys", Some(&theirs), None).await;
    assert_eq!((status, list), (Status::Ok, json!({"passkeys": []})));
    let (status, err, _) = call_json(&c, Delete, &format!("/api/v1/passkeys/{id}"), Some(&theirs), None).await;
    assert_eq!((status, err["error"].as_str()), (Status::NotFound, Some("not_found")));
    assert_eq!(call_json(&c, Delete, "/api/v1/passkeys/not-a-uuid", Some(&theirs), None).await.0, Status::NotFound);
    assert_eq!(call_json(&c, Delete, &format!("/api/v1/passkeys/{id}"), None, None).await.0, Status::Unauthorized);
    assert_eq!(call_json(&c, Get, "/api/v1/passkeys", None, None).await.0, Status::Unauthorized);
    let (_, list, _) = call_json(&c, Get, "/api/v1/passkeys", Some(&mine), None).await;
    assert_eq!(list["passkeys"][0]["id"], added["id"], "still there");

    // A pending login (api.md §10) of another user cannot be completed with this passkey.
    let me = svc_user(&svc, "me@example.com").await;
    let other = svc_user(&svc, "other@example.com").await;
    assert!(svc.has_passkeys(me).await.unwrap());
    assert!(!svc.has_passkeys(other).await.unwrap());
    // The service as `serve` configures it (the relying party of http://localhost:5000).
    let rp = userauth::service::passkeys::RelyingParty::from_public_url(ORIGIN).unwrap();
    let svc = svc.clone().with_relying_party(Some(std::sync::Arc::new(rp)));
    let start = svc.start_passkey_login().await.unwrap();
    let cred = auth.get(ORIGIN, &start.options);
    let err = svc.finish_passkey_login(&start.challenge_id, &cred, Some(other)).await.unwrap_err();
    assert!(matches!(err, AuthError::PasskeyLoginFailed), "{err:?}");
    let api = ApiError::from(err);
    assert_eq!((api.status.code, api.code), (401, userauth::api::error::ErrorCode::InvalidCredentials));
    let start = svc.start_passkey_login().await.unwrap();
    let cred = auth.get(ORIGIN, &start.options);
    let session = svc.finish_passkey_login(&start.challenge_id, &cred, Some(me)).await.unwrap();
    assert_eq!(session.user.email, "me@example.com");

    // The operator's reset removes them all, in the caller's transaction.
    use sea_orm::TransactionTrait;
    let txn = svc.db().begin().await.unwrap();
    assert_eq!(svc.remove_all_passkeys(&txn, me).await.unwrap(), 1);
    txn.commit().await.unwrap();
    assert!(svc.list_passkeys(me).await.unwrap().is_empty());
    assert_eq!(passkey_login(&c, &mut auth, ORIGIN).await.0, Status::Unauthorized);
}

crate::backend_tests!(
    register_list_login_remove,
    failures_answer_as_the_contract_says,
    passkeys_are_their_owners_alone
);

/// Two real `serve` processes on one PostgreSQL database behind one public URL: a registration and
/// a login each start on one instance and finish on the other.
#[test]
fn a_ceremony_started_on_one_instance_finishes_on_another() {
    if !require(Prereq::Postgres) {
        return;
    }
    let url = crate::pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let env = [("ROCKET_PUBLIC_URL", "http://localhost:5000"), ("ROCKET_CLIENT_RATE_PER_MINUTE", "0")];
    let a = Server::start(dir.path(), &url, &env);
    let b = Server::start(dir.path(), &url, &env);
    let json_post = |server: &Server, path: &str, cookie: Option<&str>, body: &Value| {
        let cookie = cookie.map(|c| format!("session_id={c}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(c) = &cookie {
            headers.push(("Cookie", c));
        }
        http(server.port, "POST", path, &headers, body.to_string().as_bytes())
    };
    let r = json_post(&a, "/api/v1/register", None, &json!({"email": "me@example.com", "password": PASSWORD}));
    assert_eq!(r.status, 201);
    let r = json_post(&a, "/api/v1/session", None, &json!({"email": "me@example.com", "password": PASSWORD}));
    let cookie = r.session_cookie().unwrap();

    let mut auth = Authenticator::new();
    let start = json_post(&a, "/api/v1/passkeys/register/start", Some(&cookie), &json!({"current_password": PASSWORD}));
    assert_eq!(start.status, 200);
    let start = start.json();
    let cred = auth.create(ORIGIN, &start["options"]);
    let body = json!({"challenge_id": start["challenge_id"], "name": "Laptop", "credential": cred});
    let done = json_post(&b, "/api/v1/passkeys/register/finish", Some(&cookie), &body);
    assert_eq!(done.status, 201, "{:?}", String::from_utf8_lossy(&done.body));
    // Once finished on B, the challenge is spent on A too.
    assert_eq!(json_post(&a, "/api/v1/passkeys/register/finish", Some(&cookie), &body).status, 400);

    let start = json_post(&b, "/api/v1/passkeys/login/start", None, &json!({})).json();
    let cred = auth.get(ORIGIN, &start["options"]);
    let body = json!({"challenge_id": start["challenge_id"], "credential": cred});
    let done = json_post(&a, "/api/v1/passkeys/login/finish", None, &body);
    assert_eq!(done.status, 200, "{:?}", String::from_utf8_lossy(&done.body));
    let session = done.session_cookie().unwrap();
    let cookie_header = format!("session_id={session}");
    let profile = http(b.port, "GET", "/api/v1/profile", &[("Cookie", &cookie_header)], b"");
    assert_eq!(
        (profile.status, profile.json()["email"].as_str().map(str::to_owned)),
        (200, Some("me@example.com".into()))
    );
    assert_eq!(json_post(&b, "/api/v1/passkeys/login/finish", None, &body).status, 401, "used on A");
}

#[test]
fn doctor_warns_when_public_url_is_an_ip_address() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("doc.db"));
    assert_eq!(crate::common::run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]).code, 0);
    let line = |public_url: &str| {
        let out = crate::common::run(
            dir.path(),
            &["--database-url", &url, "doctor"],
            "",
            &[("ROCKET_PUBLIC_URL", public_url)],
        );
        out.stdout.lines().find(|l| l.contains("passkeys")).unwrap_or_default().to_owned()
    };
    let ip = line("http://192.168.1.10:5000");
    assert!(ip.starts_with("WARN") && ip.contains("IP address"), "{ip}");
    let named = line("https://auth.example.com");
    assert!(named.starts_with("PASS") && named.contains("auth.example.com"), "{named}");
}

/// With an IP-literal `public_url` the passkey routes answer 503 with the JSON error, and the rest works.
#[tokio::test]
async fn passkeys_are_unavailable_on_an_ip_host() {
    let db = TestDb::sqlite_memory();
    let loaded = settings(&db.url, &[("public_url", json!("http://127.0.0.1:5000"))]);
    let svc = service_for(&loaded).await;
    let c = Client::untracked(userauth::api::build(svc.clone(), &loaded)).await.unwrap();
    let (status, body, _) = call_json(&c, Post, "/api/v1/passkeys/login/start", None, None).await;
    assert_eq!((status, body["error"].as_str()), (Status::ServiceUnavailable, Some("unavailable")));
    assert_eq!(call_json(&c, Get, "/health", None, None).await.0, Status::Ok);
}

fn csrf_in(html: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let at = html.find(marker).expect("a CSRF field") + marker.len();
    html[at..at + 64].to_owned()
}

/// The account page's passkeys section through Rocket's local client: listed, removed with a
/// plain form (CSRF-checked), the add form's answer without JavaScript, and the script itself.
#[tokio::test]
async fn the_account_page_lists_and_removes_passkeys_without_javascript() {
    let db = TestDb::sqlite_file();
    let (c, svc) = crate::common::client_with(&db.url, &[]).await;
    svc.register("pages@example.com", PASSWORD).await.unwrap();
    let login_page = c.get("/login").dispatch().await.into_string().await.unwrap();
    assert!(
        login_page.contains(r#"id="passkey-login""#) && login_page.contains(" hidden>"),
        "hidden until the script runs"
    );
    let form =
        form_body(&[("csrf_token", &csrf_in(&login_page)), ("email", "pages@example.com"), ("password", PASSWORD)]);
    let resp = c.post("/login").header(ContentType::Form).body(form).dispatch().await;
    assert_eq!(resp.status(), Status::SeeOther);
    let account = c.get("/account").dispatch().await.into_string().await.unwrap();
    assert!(account.contains("You have no passkeys yet."), "{account}");
    assert!(account.contains(r#"<script src="/static/passkeys.js" defer></script>"#));
    let csrf = csrf_in(&account);

    // Without JavaScript the add form says what it needs; without the CSRF token it is refused.
    let resp = c
        .post("/account/passkeys")
        .header(ContentType::Form)
        .body(form_body(&[("csrf_token", &csrf), ("name", "x"), ("current_password", PASSWORD)]))
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::Ok);
    assert!(resp.into_string().await.unwrap().contains("needs JavaScript"));
    let resp = c.post("/account/passkeys").header(ContentType::Form).body(form_body(&[("name", "x")])).dispatch().await;
    assert_eq!(resp.status(), Status::Forbidden);

    // A passkey added through the API (the tracked client carries the session cookie).
    let (_, start, _) =
        call_json(&c, Post, "/api/v1/passkeys/register/start", None, Some(json!({"current_password": PASSWORD}))).await;
    let mut auth = Authenticator::new();
    let credential = auth.create(ORIGIN, &start["options"]);
    let body = json!({"challenge_id": start["challenge_id"], "name": "<b>Desk</b> key", "credential": credential});
    let (status, added, _) = call_json(&c, Post, "/api/v1/passkeys/register/finish", None, Some(body)).await;
    assert_eq!(status, Status::Created);
    let account = c.get("/account").dispatch().await.into_string().await.unwrap();
    assert!(account.contains("Desk") && !account.contains("<b>Desk"), "the name is escaped");
    assert!(account.contains(">never<"), "not used yet");

    // Someone else's id (or nonsense) leaves it; the right one removes it.
    let resp = c
        .post("/account/passkeys/00000000-0000-4000-8000-000000000000/remove")
        .header(ContentType::Form)
        .body(form_body(&[("csrf_token", &csrf)]))
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::NotFound);
    let id = added["id"].as_str().unwrap();
    let resp = c
        .post(format!("/account/passkeys/{id}/remove"))
        .header(ContentType::Form)
        .body(form_body(&[]))
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::Forbidden, "no CSRF token");
    assert_eq!(svc.list_passkeys(svc_user(&svc, "pages@example.com").await).await.unwrap().len(), 1);
    let resp = c
        .post(format!("/account/passkeys/{id}/remove"))
        .header(ContentType::Form)
        .body(form_body(&[("csrf_token", &csrf)]))
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::SeeOther);
    assert_eq!(resp.headers().get_one("Location"), Some("/account?done=passkey_removed"));
    let account = c.get("/account?done=passkey_removed").dispatch().await.into_string().await.unwrap();
    assert!(account.contains("The passkey is removed.") && account.contains("You have no passkeys yet."));

    let js = c.get("/static/passkeys.js").dispatch().await;
    assert_eq!(js.content_type(), Some(ContentType::JavaScript));
    assert!(js.into_string().await.unwrap().contains("navigator.credentials"));
}
