//! The self-service API of api.md §8 (sessions, password change), exact statuses and bodies, on
//! every backend.

use rocket::http::{Method, Status};
use rocket::local::asynchronous::Client;
use serde_json::{Value, json};
use userauth::service::AuthError;

use crate::common::{Backend, PASSWORD, TestDb, api_login, call_json, untracked_client_with};

use rocket::http::Method::{Delete, Get, Post};

/// Status and JSON body of one request.
async fn call(c: &Client, method: Method, path: &str, cookie: Option<&str>, body: Option<Value>) -> (Status, Value) {
    let (status, body, _) = call_json(c, method, path, cookie, body).await;
    (status, body)
}

async fn sessions_are_listed_and_ended(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = untracked_client_with(&db.url, &[]).await;
    svc.register("me@example.com", PASSWORD).await.unwrap();
    svc.register("other@example.com", PASSWORD).await.unwrap();
    let a = api_login(&c, "me@example.com", PASSWORD, Some("Browser A")).await;
    let b = api_login(&c, "me@example.com", PASSWORD, Some("Browser B")).await;
    let third = api_login(&c, "me@example.com", PASSWORD, Some("Browser C")).await;
    let theirs = api_login(&c, "other@example.com", PASSWORD, Some("Elsewhere")).await;

    let (status, body) = call(&c, Get, "/api/v1/sessions", Some(&a), None).await;
    assert_eq!(status, Status::Ok);
    let list = body["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{body}");
    let agents: Vec<&str> = list.iter().map(|s| s["user_agent"].as_str().unwrap()).collect();
    assert_eq!(agents, ["Browser A", "Browser B", "Browser C"]);
    assert_eq!(list.iter().map(|s| s["current"].as_bool().unwrap()).collect::<Vec<_>>(), [true, false, false]);
    for s in list {
        let keys: std::collections::BTreeSet<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["created_at", "current", "id", "last_seen_at", "user_agent"].into());
        let id = s["id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok());
        assert!(![&a, &b, &third].iter().any(|t| t.as_str() == id), "the id is never the token");
    }
    let b_id = list[1]["id"].as_str().unwrap().to_owned();

    // Someone else's session, or no such id: 404; no cookie: 401.
    let (_, their_list) = call(&c, Get, "/api/v1/sessions", Some(&theirs), None).await;
    let their_id = their_list["sessions"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(&c, Delete, &format!("/api/v1/sessions/{their_id}"), Some(&a), None).await;
    assert_eq!((status, body["error"].as_str()), (Status::NotFound, Some("session_not_found")));
    let (status, _) = call(&c, Delete, "/api/v1/sessions/not-a-uuid", Some(&a), None).await;
    assert_eq!(status, Status::NotFound);
    assert_eq!(call(&c, Delete, &format!("/api/v1/sessions/{b_id}"), None, None).await.0, Status::Unauthorized);
    assert_eq!(call(&c, Get, "/api/v1/sessions", None, None).await.0, Status::Unauthorized);
    assert_eq!(call(&c, Get, "/api/v1/profile", Some(&theirs), None).await.0, Status::Ok, "theirs untouched");

    // End one.
    let (status, body) = call(&c, Delete, &format!("/api/v1/sessions/{b_id}"), Some(&a), None).await;
    assert_eq!((status, body), (Status::Ok, json!({"message": "session ended"})));
    assert_eq!(call(&c, Get, "/api/v1/profile", Some(&b), None).await.0, Status::Unauthorized);
    assert_eq!(call(&c, Delete, &format!("/api/v1/sessions/{b_id}"), Some(&a), None).await.0, Status::NotFound);

    // End all the others.
    let (status, body) = call(&c, Delete, "/api/v1/sessions", Some(&a), None).await;
    assert_eq!((status, body), (Status::Ok, json!({"message": "other sessions ended", "ended": 1})));
    assert_eq!(call(&c, Get, "/api/v1/profile", Some(&third), None).await.0, Status::Unauthorized);
    assert_eq!(call(&c, Get, "/api/v1/profile", Some(&a), None).await.0, Status::Ok, "this one stays");
    let (_, body) = call(&c, Delete, "/api/v1/sessions", Some(&a), None).await;
    assert_eq!(body["ended"], 0);
}

async fn password_change(backend: Backend) {
    let db = TestDb::new(backend);
    let (c, svc) = untracked_client_with(&db.url, &[("login_max_failures", json!(3))]).await;
    svc.register("pw@example.com", PASSWORD).await.unwrap();
    let here = api_login(&c, "pw@example.com", PASSWORD, Some("here")).await;
    let there = api_login(&c, "pw@example.com", PASSWORD, Some("there")).await;
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    assert_eq!(
        call(&c, Post, "/api/v1/password", None, Some(change(PASSWORD, "a new long password"))).await.0,
        Status::Unauthorized
    );
    let (status, body) = call(&c, Post, "/api/v1/password", Some(&here), Some(change(PASSWORD, "short"))).await;
    assert_eq!((status, body["error"].as_str()), (Status::BadRequest, Some("invalid_password")));
    let (status, body) = call(&c, Post, "/api/v1/password", Some(&here), Some(json!({"new_password": "x"}))).await;
    assert_eq!((status, body["error"].as_str()), (Status::BadRequest, Some("missing_field")));
    let (status, body) =
        call(&c, Post, "/api/v1/password", Some(&here), Some(change("wrong password!", "a new long password"))).await;
    assert_eq!((status, body["error"].as_str()), (Status::Unauthorized, Some("invalid_credentials")));

    let (status, body) =
        call(&c, Post, "/api/v1/password", Some(&here), Some(change(PASSWORD, "a new long password"))).await;
    assert_eq!((status, body), (Status::Ok, json!({"email": "pw@example.com", "message": "password changed"})));
    assert_eq!(call(&c, Get, "/api/v1/profile", Some(&here), None).await.0, Status::Ok, "this session stays");
    assert_eq!(call(&c, Get, "/api/v1/profile", Some(&there), None).await.0, Status::Unauthorized, "the other ends");
    assert!(matches!(svc.login("pw@example.com", PASSWORD).await, Err(AuthError::InvalidCredentials)));
    assert!(svc.login("pw@example.com", "a new long password").await.is_ok());

    // Wrong current passwords count toward the lockout, then 429 even with the right one.
    for _ in 0..3 {
        let wrong = change("wrong password!", "another long password");
        assert_eq!(call(&c, Post, "/api/v1/password", Some(&here), Some(wrong)).await.0, Status::Unauthorized);
    }
    let (status, body) =
        call(&c, Post, "/api/v1/password", Some(&here), Some(change("a new long password", "another long password")))
            .await;
    assert_eq!((status, body["error"].as_str()), (Status::TooManyRequests, Some("account_locked")));
}

/// 30 concurrent wrong current passwords, limit 3: at most 3 bcrypt verifications.
async fn password_change_lockout_holds_under_concurrency(backend: Backend) {
    let db = TestDb::new(backend);
    let cfg = crate::common::settings(&db.url, &[("login_max_failures", json!(3))]);
    let svc = crate::common::service_for(&cfg).await;
    svc.register("race@example.com", PASSWORD).await.unwrap();
    let session = svc.login("race@example.com", PASSWORD).await.unwrap();
    let before = svc.hasher().verifications();
    let tries = (0..30).map(|i| {
        let (svc, token) = (svc.clone(), session.token.expose().to_owned());
        tokio::spawn(
            async move { svc.change_password(&token, &format!("guess {i} guess"), "the newer password").await },
        )
    });
    let results: Vec<_> = futures_util::future::join_all(tries).await.into_iter().map(|r| r.unwrap()).collect();
    let wrong = results.iter().filter(|r| matches!(r, Err(AuthError::InvalidCredentials))).count();
    let locked = results.iter().filter(|r| matches!(r, Err(AuthError::AccountLocked { .. }))).count();
    assert_eq!((wrong, locked), (3, 27), "{results:?}");
    assert_eq!(svc.hasher().verifications() - before, 3);
}

crate::backend_tests!(sessions_are_listed_and_ended, password_change, password_change_lockout_holds_under_concurrency);

/// Sessions opened before the public ids existed keep working and get an id.
#[tokio::test]
async fn sessions_from_before_the_migration_keep_working() {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;
    let db = TestDb::sqlite_file();
    let loaded = crate::common::settings(&db.url, &[]);
    let conn = userauth::service::db::connect(&loaded.db).await.unwrap();
    Migrator::up(&conn, Some(2)).await.unwrap();
    // A user and a session as the previous schema held them.
    let token = "ab".repeat(32);
    let digest = userauth::service::domain::presented_token_digest(&token).unwrap();
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let id = uuid::Uuid::new_v4();
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::hours(1);
    let stmt = |sql: &str, values: Vec<sea_orm::Value>| {
        sea_orm::Statement::from_sql_and_values(conn.get_database_backend(), sql, values)
    };
    conn.execute_raw(stmt(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        vec![id.into(), "old@example.com".into(), hash.into(), now.into(), now.into()],
    ))
    .await
    .unwrap();
    conn.execute_raw(stmt(
        "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        vec![digest.into(), id.into(), now.into(), now.into(), later.into()],
    ))
    .await
    .unwrap();
    drop(conn);
    let svc = crate::common::service_for(&loaded).await; // applies the rest
    assert_eq!(svc.authenticate(&token).await.unwrap().email, "old@example.com");
    let sessions = svc.list_sessions(&token).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].current && sessions[0].user_agent.is_none());
    assert_eq!(svc.list_sessions(&token).await.unwrap()[0].id, sessions[0].id, "the id stays");
}
