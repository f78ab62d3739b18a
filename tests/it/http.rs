//! Every route of api.md §1 and §2 through Rocket's local client: exact statuses and bodies.

use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use serde_json::{Value, json};

use crate::common::{Backend, PASSWORD, TestDb, api_login, client, client_with, form_body};

async fn json_of(resp: LocalResponse<'_>) -> (Status, Value) {
    let status = resp.status();
    assert_eq!(resp.content_type(), Some(ContentType::JSON), "every body is JSON (status {status})");
    let body = resp.into_string().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}")))
}

async fn post_form(c: &Client, path: &str, pairs: &[(&str, &str)]) -> (Status, Value) {
    json_of(c.post(path).header(ContentType::Form).body(form_body(pairs)).dispatch().await).await
}

async fn post_json(c: &Client, path: &str, body: Value) -> (Status, Value) {
    json_of(c.post(path).header(ContentType::JSON).body(body.to_string()).dispatch().await).await
}

fn assert_error(got: &(Status, Value), status: Status, code: &str) {
    assert_eq!(got.0, status, "{:?}", got.1);
    assert_eq!(got.1["error"], code, "{:?}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()), "{:?}", got.1);
    assert_eq!(got.1.as_object().map(|o| o.len()), Some(2), "only error and message: {:?}", got.1);
}

async fn register_success_form_and_json(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client(&db.url).await;
    let got = post_form(&c, "/api/v1/register", &[("email", " Ann@Example.com"), ("password", PASSWORD)]).await;
    assert_eq!(got, (Status::Created, json!({"email": "ann@example.com", "message": "user created"})));
    let got = post_json(&c, "/api/v1/register", json!({"email": "ben@example.com", "password": PASSWORD})).await;
    assert_eq!(got, (Status::Created, json!({"email": "ben@example.com", "message": "user created"})));
}

async fn register_failures(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client(&db.url).await;
    post_form(&c, "/api/v1/register", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    assert_error(
        &post_form(&c, "/api/v1/register", &[("password", PASSWORD)]).await,
        Status::BadRequest,
        "missing_field",
    );
    assert_error(&post_form(&c, "/api/v1/register", &[("email", "x@y.z")]).await, Status::BadRequest, "missing_field");
    assert_error(
        &post_form(&c, "/api/v1/register", &[("email", "not-an-email"), ("password", PASSWORD)]).await,
        Status::BadRequest,
        "invalid_email",
    );
    assert_error(
        &post_form(&c, "/api/v1/register", &[("email", "c@d.e"), ("password", "short")]).await,
        Status::BadRequest,
        "invalid_password",
    );
    assert_error(
        &post_form(&c, "/api/v1/register", &[("email", "c@d.e"), ("password", &"p".repeat(73))]).await,
        Status::BadRequest,
        "invalid_password",
    );
    assert_error(
        &post_form(&c, "/api/v1/register", &[("email", "ANN@example.com"), ("password", PASSWORD)]).await,
        Status::BadRequest,
        "user_exists",
    );
    // No body at all.
    let got = json_of(c.post("/api/v1/register").dispatch().await).await;
    assert_error(&got, Status::BadRequest, "missing_field");
}

async fn session_login_sets_a_proper_cookie(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client(&db.url).await;
    post_form(&c, "/api/v1/register", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    let resp = c
        .post("/api/v1/session")
        .header(ContentType::Form)
        .body(form_body(&[("email", "ANN@example.com"), ("password", PASSWORD)]))
        .dispatch()
        .await;
    let set_cookie: Vec<String> = resp.headers().get("Set-Cookie").map(str::to_owned).collect();
    let (status, body) = json_of(resp).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": "ann@example.com", "message": "logged in"})));
    assert_eq!(set_cookie.len(), 1);
    let cookie = &set_cookie[0];
    assert!(cookie.starts_with("session_id="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "Secure only when cookie_secure = true: {cookie}");
}

async fn secure_cookie_when_configured(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client_with(&db.url, &[("cookie_secure", json!(true))]).await;
    post_form(&c, "/api/v1/register", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    let resp = c
        .post("/api/v1/session")
        .header(ContentType::Form)
        .body(form_body(&[("email", "ann@example.com"), ("password", PASSWORD)]))
        .dispatch()
        .await;
    let cookie = resp.headers().get_one("Set-Cookie").unwrap_or_default().to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
}

async fn session_failures(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client_with(&db.url, &[("login_max_failures", json!(3))]).await;
    post_form(&c, "/api/v1/register", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    assert_error(
        &post_form(&c, "/api/v1/session", &[("email", "ann@example.com")]).await,
        Status::BadRequest,
        "missing_field",
    );
    assert_error(
        &post_form(&c, "/api/v1/session", &[("password", PASSWORD)]).await,
        Status::BadRequest,
        "missing_field",
    );
    let wrong = post_form(&c, "/api/v1/session", &[("email", "ann@example.com"), ("password", "wrong password")]).await;
    let unknown = post_form(&c, "/api/v1/session", &[("email", "who@example.com"), ("password", PASSWORD)]).await;
    assert_error(&wrong, Status::Unauthorized, "invalid_credentials");
    assert_eq!(wrong, unknown, "same answer for unknown email and wrong password");
    for _ in 0..2 {
        post_form(&c, "/api/v1/session", &[("email", "ann@example.com"), ("password", "wrong password")]).await;
    }
    let resp = c
        .post("/api/v1/session")
        .header(ContentType::Form)
        .body(form_body(&[("email", "ann@example.com"), ("password", PASSWORD)]))
        .dispatch()
        .await;
    let retry: u64 = resp.headers().get_one("Retry-After").expect("Retry-After").parse().expect("seconds");
    assert!(retry > 0 && retry <= 900);
    assert_error(&json_of(resp).await, Status::TooManyRequests, "account_locked");
}

async fn profile_and_logout(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = client(&db.url).await;
    post_form(&c, "/api/v1/register", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    let token = api_login(&c, "ann@example.com", PASSWORD, None).await;
    let (status, body) = json_of(c.get("/api/v1/profile").dispatch().await).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(body["email"], "ann@example.com");
    let created = body["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok(), "{created}");
    let id = body["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(body.as_object().unwrap().len(), 3);

    let resp = c.post("/api/v1/logout").dispatch().await;
    let removal = resp.headers().get_one("Set-Cookie").unwrap_or_default().to_owned();
    assert!(removal.starts_with("session_id=;") && removal.contains("Max-Age=0"), "{removal}");
    assert_eq!(json_of(resp).await, (Status::Ok, json!({"message": "logged out"})));
    // The server-side session is gone: replaying the old cookie fails.
    let replay = c.get("/api/v1/profile").cookie(Cookie::new("session_id", token.clone())).dispatch().await;
    assert_error(&json_of(replay).await, Status::Unauthorized, "unauthorized");
    assert!(svc.authenticate(&token).await.is_err());
    // Idempotent, with or without a cookie.
    assert_eq!(
        json_of(c.post("/api/v1/logout").dispatch().await).await,
        (Status::Ok, json!({"message": "logged out"}))
    );
    let garbage = c.post("/api/v1/logout").cookie(Cookie::new("session_id", "garbage")).dispatch().await;
    assert_eq!(json_of(garbage).await.0, Status::Ok);
}

async fn profile_without_session(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client(&db.url).await;
    assert_error(&json_of(c.get("/api/v1/profile").dispatch().await).await, Status::Unauthorized, "unauthorized");
    let forged = c.get("/api/v1/profile").cookie(Cookie::new("session_id", "a".repeat(64))).dispatch().await;
    assert_error(&json_of(forged).await, Status::Unauthorized, "unauthorized");
}

async fn reset_and_update_password(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client(&db.url).await;
    post_form(&c, "/api/v1/register", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    let old_session = api_login(&c, "ann@example.com", PASSWORD, None).await;
    let (status, body) = post_form(&c, "/api/v1/reset_password", &[("email", "Ann@example.com")]).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(body["email"], "ann@example.com");
    assert_eq!(body.as_object().unwrap().len(), 2);
    let token = body["reset_token"].as_str().unwrap().to_owned();

    assert_error(&post_form(&c, "/api/v1/reset_password", &[]).await, Status::BadRequest, "missing_field");
    assert_error(
        &post_form(&c, "/api/v1/reset_password", &[("email", "nobody@example.com")]).await,
        Status::NotFound,
        "user_not_found",
    );

    assert_error(
        &post_form(&c, "/api/v1/update_password", &[("new_password", "a brand new password")]).await,
        Status::BadRequest,
        "missing_field",
    );
    assert_error(
        &post_form(&c, "/api/v1/update_password", &[("reset_token", &token)]).await,
        Status::BadRequest,
        "missing_field",
    );
    assert_error(
        &post_form(
            &c,
            "/api/v1/update_password",
            &[("reset_token", "unknown"), ("new_password", "a brand new password")],
        )
        .await,
        Status::BadRequest,
        "invalid_token",
    );
    assert_error(
        &post_form(&c, "/api/v1/update_password", &[("reset_token", &token), ("new_password", "short")]).await,
        Status::BadRequest,
        "invalid_password",
    );
    let got =
        post_json(&c, "/api/v1/update_password", json!({"reset_token": token, "new_password": "a brand new password"}))
            .await;
    assert_eq!(got, (Status::Ok, json!({"email": "ann@example.com", "message": "password updated"})));
    assert_error(
        &post_form(&c, "/api/v1/update_password", &[("reset_token", &token), ("new_password", "another password!")])
            .await,
        Status::BadRequest,
        "invalid_token",
    );
    // Using the token does not log in, and the old session is revoked.
    let replay = c.get("/api/v1/profile").cookie(Cookie::new("session_id", old_session)).dispatch().await;
    assert_eq!(replay.status(), Status::Unauthorized);
    api_login(&c, "ann@example.com", "a brand new password", None).await;
}

async fn reset_requests_throttled(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client_with(&db.url, &[("reset_max_requests", json!(1))]).await;
    post_form(&c, "/api/v1/register", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(post_form(&c, "/api/v1/reset_password", &[("email", "ann@example.com")]).await.0, Status::Ok);
    let resp =
        c.post("/api/v1/reset_password").header(ContentType::Form).body("email=ann%40example.com").dispatch().await;
    assert!(resp.headers().get_one("Retry-After").is_some());
    assert_error(&json_of(resp).await, Status::TooManyRequests, "too_many_requests");
}

async fn health_and_unknown_routes(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client(&db.url).await;
    assert_eq!(json_of(c.get("/health").dispatch().await).await, (Status::Ok, json!({"status": "ok"})));
    assert_error(&json_of(c.get("/nope").dispatch().await).await, Status::NotFound, "not_found");
    // A known path with another method: 405 naming the methods it answers.
    let wrong = c.get("/api/v1/register").dispatch().await;
    assert_eq!(wrong.headers().get_one("Allow"), Some("POST"));
    assert_error(&json_of(wrong).await, Status::MethodNotAllowed, "method_not_allowed");
}

async fn health_reports_503_when_the_database_is_gone(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = client(&db.url).await;
    svc.db().clone().close().await.unwrap();
    let got = json_of(c.get("/health").dispatch().await).await;
    assert_error(&got, Status::ServiceUnavailable, "unavailable");
}

async fn reset_endpoint_can_be_turned_off(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client_with(&db.url, &[("reset_endpoint", json!(false))]).await;
    post_form(&c, "/api/v1/register", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    assert_error(
        &post_form(&c, "/api/v1/reset_password", &[("email", "ann@example.com")]).await,
        Status::NotFound,
        "not_found",
    );
    // The classic PUT /reset_password is still there: the path is known, POST is not.
    assert_error(
        &post_form(&c, "/reset_password", &[("email", "ann@example.com")]).await,
        Status::MethodNotAllowed,
        "method_not_allowed",
    );
}

// ------------------------------------------------------------------ classic routes (api.md §2)

async fn classic_routes(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client(&db.url).await;
    assert_eq!(json_of(c.get("/").dispatch().await).await, (Status::Ok, json!({"message": "Bienvenue"})));

    let got = post_form(&c, "/users", &[("email", "Ann@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(got, (Status::Ok, json!({"email": "ann@example.com", "message": "user created"})));
    let dup = post_form(&c, "/users", &[("email", "ann@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(dup, (Status::BadRequest, json!({"message": "email already registered"})));
    assert_error(&post_form(&c, "/users", &[("email", "ann@example.com")]).await, Status::BadRequest, "missing_field");
    assert_error(
        &post_form(&c, "/users", &[("email", "bad"), ("password", PASSWORD)]).await,
        Status::BadRequest,
        "invalid_email",
    );

    assert_error(&json_of(c.get("/profile").dispatch().await).await, Status::Forbidden, "forbidden");
    assert_error(&json_of(c.delete("/sessions").dispatch().await).await, Status::Forbidden, "forbidden");
    assert_error(
        &post_form(&c, "/sessions", &[("email", "ann@example.com"), ("password", "wrong password")]).await,
        Status::Unauthorized,
        "invalid_credentials",
    );
    assert_eq!(post_form(&c, "/sessions", &[("email", "ann@example.com")]).await.0, Status::Unauthorized);

    let resp = c
        .post("/sessions")
        .header(ContentType::Form)
        .body(form_body(&[("email", "ann@example.com"), ("password", PASSWORD)]))
        .dispatch()
        .await;
    let token = resp.cookies().get("session_id").expect("cookie").value().to_owned();
    assert_eq!(json_of(resp).await, (Status::Ok, json!({"email": "ann@example.com", "message": "logged in"})));
    assert_eq!(json_of(c.get("/profile").dispatch().await).await, (Status::Ok, json!({"email": "ann@example.com"})));
    // Same sessions as v1.
    assert_eq!(c.get("/api/v1/profile").dispatch().await.status(), Status::Ok);

    let resp = c.delete("/sessions").dispatch().await;
    assert_eq!(resp.status(), Status::Found);
    assert_eq!(resp.headers().get_one("Location"), Some("/"));
    let replay = c.get("/profile").cookie(Cookie::new("session_id", token)).dispatch().await;
    assert_eq!(replay.status(), Status::Forbidden);

    let (status, body) = post_form(&c, "/reset_password", &[("email", "ann@example.com")]).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(body["email"], "ann@example.com");
    let token = body["reset_token"].as_str().unwrap().to_owned();
    assert_error(
        &post_form(&c, "/reset_password", &[("email", "nobody@example.com")]).await,
        Status::Forbidden,
        "user_not_found",
    );

    let put = |pairs: Vec<(&'static str, String)>| {
        let body = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>();
        let body = form_body(&body);
        let c = &c;
        async move { json_of(c.put("/reset_password").header(ContentType::Form).body(body).dispatch().await).await }
    };
    let wrong = put(vec![
        ("email", "ann@example.com".into()),
        ("reset_token", "nope".into()),
        ("new_password", "a brand new password".into()),
    ])
    .await;
    assert_eq!(wrong.0, Status::Forbidden);
    let missing = put(vec![("email", "ann@example.com".into()), ("reset_token", token.clone())]).await;
    assert_eq!(missing.0, Status::Forbidden);
    let ok = put(vec![
        ("email", "ann@example.com".into()),
        ("reset_token", token.clone()),
        ("new_password", "a brand new password".into()),
    ])
    .await;
    assert_eq!(ok, (Status::Ok, json!({"email": "ann@example.com", "message": "Password updated"})));
    let again = put(vec![
        ("email", "ann@example.com".into()),
        ("reset_token", token),
        ("new_password", "a brand new password".into()),
    ])
    .await;
    assert_eq!(again.0, Status::Forbidden);
}

async fn classic_routes_can_be_turned_off(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client_with(&db.url, &[("classic_routes", json!(false))]).await;
    assert_eq!(c.get("/").dispatch().await.status(), Status::NotFound);
    assert_eq!(post_form(&c, "/users", &[("email", "a@b.c"), ("password", PASSWORD)]).await.0, Status::NotFound);
    assert_eq!(c.get("/health").dispatch().await.status(), Status::Ok);
}

// ------------------------------------------------------------------ bad input

async fn hostile_bodies_get_json_4xx(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client(&db.url).await;
    let cases: Vec<(Option<ContentType>, Vec<u8>, Status, &str)> = vec![
        (Some(ContentType::Form), vec![b'a'; 5000], Status::PayloadTooLarge, "payload_too_large"),
        (
            Some(ContentType::JSON),
            format!("{{\"email\":\"{}\"}}", "a".repeat(10_000)).into_bytes(),
            Status::PayloadTooLarge,
            "payload_too_large",
        ),
        (Some(ContentType::Form), b"email=\xff\xfe&password=x".to_vec(), Status::BadRequest, "invalid_body"),
        (Some(ContentType::Form), b"email=%C3%28&password=x".to_vec(), Status::BadRequest, "invalid_body"),
        (
            Some(ContentType::JSON),
            b"{\"email\": [1,2], \"password\": \"x\"}".to_vec(),
            Status::BadRequest,
            "invalid_field",
        ),
        (Some(ContentType::JSON), b"[\"email\"]".to_vec(), Status::BadRequest, "invalid_body"),
        (Some(ContentType::JSON), b"{\"email\": ".to_vec(), Status::BadRequest, "invalid_body"),
        (
            Some(ContentType::JSON),
            b"{\"email\":\"a@b.c\",\"email\":\"d@e.f\",\"password\":\"x\"}".to_vec(),
            Status::BadRequest,
            "duplicate_field",
        ),
        (
            Some(ContentType::Form),
            b"email=a%40b.c&email=d%40e.f&password=x".to_vec(),
            Status::BadRequest,
            "duplicate_field",
        ),
        (Some(ContentType::Plain), b"email=a@b.c".to_vec(), Status::UnsupportedMediaType, "unsupported_media_type"),
        (None, b"email=a@b.c".to_vec(), Status::UnsupportedMediaType, "unsupported_media_type"),
        (
            Some(ContentType::Form),
            b"email=a%00b%40c.d&password=correct+horse+battery".to_vec(),
            Status::BadRequest,
            "invalid_email",
        ),
        (
            Some(ContentType::Form),
            b"email=a'%3B+DROP+TABLE+users%3B--%40x.y&password=".to_vec(),
            Status::BadRequest,
            "missing_field",
        ),
    ];
    for (ct, body, status, code) in cases {
        let mut req = c.post("/api/v1/register").body(&body);
        if let Some(ct) = ct.clone() {
            req = req.header(ct);
        }
        let got = json_of(req.dispatch().await).await;
        assert_error(&got, status, code);
    }
    // SQL metacharacters are data, nothing more.
    let got = post_form(&c, "/api/v1/register", &[("email", "o'brien\";--@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(got.0, Status::Created);
    let got = post_form(&c, "/api/v1/session", &[("email", "o'brien\";--@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(got.0, Status::Ok);
}

async fn hostile_cookies_and_methods(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, _) = client(&db.url).await;
    let huge = c
        .get("/api/v1/profile")
        .header(Header::new("Cookie", format!("session_id={}", "x".repeat(8000))))
        .dispatch()
        .await;
    assert_error(&json_of(huge).await, Status::Unauthorized, "unauthorized");
    let malformed = c.get("/api/v1/profile").header(Header::new("Cookie", "session_id")).dispatch().await;
    assert_error(&json_of(malformed).await, Status::Unauthorized, "unauthorized");
    let binary = c.get("/api/v1/profile").header(Header::new("Cookie", "session_id=%00%ff;;=;")).dispatch().await;
    assert_error(&json_of(binary).await, Status::Unauthorized, "unauthorized");
    for path in [
        "/api/v1/register",
        "/api/v1/session",
        "/api/v1/logout",
        "/api/v1/profile",
        "/api/v1/reset_password",
        "/api/v1/update_password",
        "/health",
        "/",
        "/users",
        "/sessions",
        "/profile",
        "/reset_password",
    ] {
        let opt = c.options(path).dispatch().await;
        assert!(opt.status().code >= 400 && opt.status().code < 500, "OPTIONS {path}: {}", opt.status());
        let head = c.head(path).dispatch().await;
        assert!(head.status().code < 500, "HEAD {path}: {}", head.status());
    }
}

crate::backend_tests!(
    register_success_form_and_json,
    register_failures,
    session_login_sets_a_proper_cookie,
    secure_cookie_when_configured,
    session_failures,
    profile_and_logout,
    profile_without_session,
    reset_and_update_password,
    reset_requests_throttled,
    health_and_unknown_routes,
    health_reports_503_when_the_database_is_gone,
    reset_endpoint_can_be_turned_off,
    classic_routes,
    classic_routes_can_be_turned_off,
    hostile_bodies_get_json_4xx,
    hostile_cookies_and_methods,
);

/// The served OpenAPI document parses as OpenAPI 3.1, every `$ref` resolves, and every mounted
/// v1 route is in it with its method, request body and error responses.
#[tokio::test]
async fn openapi_documents_every_v1_route() {
    let db = TestDb::sqlite_file();
    let (c, _) = client(&db.url).await;
    let resp = c.get("/api/v1/openapi.json").dispatch().await;
    assert_eq!(resp.status(), Status::Ok);
    assert_eq!(resp.content_type(), Some(ContentType::JSON));
    let text = resp.into_string().await.unwrap();
    let spec = oas3::from_json(&text).expect("a well-formed OpenAPI 3.1 document");
    assert_eq!(spec.validate_version().expect("version").major, 3);
    let doc: Value = serde_json::from_str(&text).unwrap();

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }

    let mut checked = 0;
    for route in c.rocket().routes() {
        // Rocket writes dynamic segments as `<id>`, OpenAPI as `{id}`.
        let uri = route.uri.to_string().replace('<', "{").replace('>', "}");
        if !uri.starts_with("/api/v1/") {
            continue;
        }
        let method = route.method.as_str().to_lowercase();
        let op = &doc["paths"][&uri][&method];
        assert!(op.is_object(), "{method} {uri} missing from the OpenAPI document");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {uri} has no responses");
        if route.format.is_none()
            && method == "post"
            && uri != "/api/v1/logout"
            && uri != "/api/v1/passkeys/login/start"
        {
            let content = &op["requestBody"]["content"];
            assert!(
                content["application/json"].is_object() && content["application/x-www-form-urlencoded"].is_object(),
                "{uri}: both body types documented"
            );
            assert!(op["responses"]["400"]["content"]["application/json"].is_object(), "{uri}: error body documented");
        }
        checked += 1;
    }
    assert!(checked >= 7, "{checked} routes checked");
    assert!(doc["components"]["schemas"]["ErrorBody"]["properties"]["error"].is_object());
}

/// Real responses of every v1 route match the schema the document gives for their status.
#[tokio::test]
async fn responses_match_their_documented_schemas() {
    let db = TestDb::sqlite_file();
    let (c, _) = client(&db.url).await;
    let doc: Value =
        serde_json::from_str(&c.get("/api/v1/openapi.json").dispatch().await.into_string().await.unwrap()).unwrap();
    let creds = [("email", "schema@example.com"), ("password", PASSWORD)];
    let form = |pairs: &[(&str, &str)]| form_body(pairs);
    let mut exchanges: Vec<(&str, &str, Option<String>)> = vec![
        ("post", "/api/v1/register", Some(form(&creds))),
        ("post", "/api/v1/register", Some(form(&creds))),
        ("post", "/api/v1/register", Some(form(&[("email", "x@example.com")]))),
        ("post", "/api/v1/session", Some(form(&[("email", "schema@example.com"), ("password", "wrong password!")]))),
        ("post", "/api/v1/session", Some(form(&creds))),
        ("get", "/api/v1/profile", None),
        ("get", "/api/v1/sessions", None),
        (
            "post",
            "/api/v1/password",
            Some(form(&[("current_password", "wrong password!"), ("new_password", "another long password")])),
        ),
        ("post", "/api/v1/password", Some(form(&[("current_password", PASSWORD), ("new_password", "x")]))),
        ("delete", "/api/v1/sessions/00000000-0000-4000-8000-000000000000", None),
        ("delete", "/api/v1/sessions", None),
        ("post", "/api/v1/reset_password", Some(form(&[("email", "nobody@example.com")]))),
        ("post", "/api/v1/update_password", Some(form(&[("reset_token", "nope"), ("new_password", PASSWORD)]))),
        ("get", "/health", None),
        ("get", "/api/v1/passkeys", None),
        ("post", "/api/v1/passkeys/register/start", Some(form(&[("current_password", "wrong password!")]))),
        ("post", "/api/v1/passkeys/register/finish", Some(form(&[("challenge_id", "nope"), ("name", "x")]))),
        ("post", "/api/v1/passkeys/login/start", None),
        ("post", "/api/v1/passkeys/login/finish", Some(form(&[("challenge_id", "nope"), ("credential", "{}")]))),
        ("delete", "/api/v1/passkeys/00000000-0000-4000-8000-000000000000", None),
    ];
    let mut seen = 0;
    let mut token = None;
    for round in 0..3 {
        for (method, path, body) in std::mem::take(&mut exchanges) {
            let req = match method {
                "get" => c.get(path),
                "delete" => c.delete(path),
                _ => c.post(path).header(ContentType::Form).body(body.unwrap_or_default()),
            };
            // The document names dynamic segments as templates.
            let doc_path = if path.starts_with("/api/v1/sessions/") {
                "/api/v1/sessions/{id}"
            } else if path.starts_with("/api/v1/passkeys/0") {
                "/api/v1/passkeys/{id}"
            } else {
                path
            };
            let resp = req.dispatch().await;
            let status = resp.status().code.to_string();
            let text = resp.into_string().await.unwrap_or_default();
            let got: Value = serde_json::from_str(&text).unwrap();
            if path == "/api/v1/reset_password" && got.get("reset_token").is_some() {
                token = got["reset_token"].as_str().map(str::to_owned);
            }
            let schema = &doc["paths"][doc_path][method]["responses"][&status]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{method} {path} answered {status}, which the document does not list");
            let mut rooted = schema.clone();
            rooted["components"] = doc["components"].clone();
            let validator = jsonschema::validator_for(&rooted).expect("a valid JSON schema");
            if let Err(e) = validator.validate(&got) {
                panic!("{method} {path} {status}: {got} does not match its schema: {e}");
            }
            // No undocumented members either.
            let target = match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap().clone(),
                None => schema.clone(),
            };
            for key in got.as_object().unwrap().keys() {
                assert!(target["properties"].get(key).is_some(), "{method} {path} {status}: undocumented member {key}");
            }
            seen += 1;
        }
        if round == 0 {
            let reset = form(&[("email", "schema@example.com")]);
            c.post("/api/v1/reset_password").header(ContentType::Form).body(reset).dispatch().await;
            let reset = form(&[("email", "schema@example.com")]);
            exchanges.push(("post", "/api/v1/reset_password", Some(reset)));
        }
        if let Some(t) = token.take() {
            exchanges.push((
                "post",
                "/api/v1/update_password",
                Some(form(&[("reset_token", &t), ("new_password", "a new long password")])),
            ));
            exchanges.push(("post", "/api/v1/logout", None));
        }
    }
    assert!(seen >= 17, "{seen} exchanges checked");
}
