//! The real binary serving on a real socket.

use serde_json::json;

use crate::common::{PASSWORD, Server, form_body, run, sqlite_url};

#[test]
fn full_flow_over_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("e2e.db"));
    let server = Server::start(dir.path(), &url, &[]);

    let r = server.form(
        "POST",
        "/api/v1/register",
        &form_body(&[("email", "eve@example.com"), ("password", PASSWORD)]),
        None,
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"email": "eve@example.com", "message": "user created"}));

    let r = server.request(
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        json!({"email": "EVE@example.com", "password": PASSWORD}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    let cookie = r.session_cookie().expect("session cookie");
    assert_eq!(cookie.len(), 64);

    let r = server.form("GET", "/api/v1/profile", "", Some(&cookie));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["email"], "eve@example.com");

    let r = server.form("POST", "/api/v1/reset_password", "email=eve%40example.com", None);
    assert_eq!(r.status, 200);
    let token = r.json()["reset_token"].as_str().unwrap().to_owned();
    let r = server.form(
        "POST",
        "/api/v1/update_password",
        &form_body(&[("reset_token", &token), ("new_password", "a brand new password")]),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"email": "eve@example.com", "message": "password updated"}));
    assert_eq!(server.form("GET", "/api/v1/profile", "", Some(&cookie)).status, 401, "password change ends sessions");

    let r = server.form(
        "POST",
        "/api/v1/session",
        &form_body(&[("email", "eve@example.com"), ("password", "a brand new password")]),
        None,
    );
    let cookie = r.session_cookie().unwrap();
    let r = server.form("POST", "/api/v1/logout", "", Some(&cookie));
    assert_eq!(r.status, 200);
    assert!(r.headers_named("set-cookie").iter().any(|c| c.starts_with("session_id=;")));
    assert_eq!(server.form("GET", "/api/v1/profile", "", Some(&cookie)).status, 401);

    let r = server.request("GET", "/definitely/not/here", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
    let r = server.request("GET", "/", &[], b"");
    assert_eq!(r.json(), json!({"message": "Bienvenue"}));
    let r = server.request("GET", "/health", &[], b"");
    assert_eq!(r.json(), json!({"status": "ok"}));

    // The CLI sees what the server wrote (same database, another process).
    let list = run(dir.path(), &["--database-url", &url, "user", "list", "--json"], "", &[]);
    assert!(list.stdout.contains("eve@example.com"), "{}", list.stdout);

    let log = server.log_text();
    assert!(log.contains(&format!("listening on http://127.0.0.1:{}", server.port)), "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains(&token) && !log.contains(&cookie), "no secrets in the log");
}

#[test]
fn oversized_and_half_sent_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("e2e.db"));
    let server = Server::start(dir.path(), &url, &[]);
    let big = vec![b'a'; 100_000];
    let r = server.request("POST", "/api/v1/register", &[("Content-Type", "application/x-www-form-urlencoded")], &big);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "payload_too_large");

    // A client that announces a body, sends half and hangs up must not hurt the server.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.write_all(b"POST /api/v1/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nemail=half").unwrap();
    }
    let r = server.request("GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
}
