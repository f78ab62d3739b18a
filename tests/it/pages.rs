//! The account pages (api.md §8) through Rocket's local client: every form's success and failure
//! path, CSRF, `next`, headers and labels.

use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use serde_json::json;

use crate::common::{PASSWORD, TestDb, client_with, form_body, untracked_client_with};
use userauth::service::RequestContext;

struct Got {
    status: Status,
    location: Option<String>,
    html: String,
}

async fn got(resp: LocalResponse<'_>) -> Got {
    let status = resp.status();
    let location = resp.headers().get_one("Location").map(str::to_owned);
    let html = resp.into_string().await.unwrap_or_default();
    Got { status, location, html }
}

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf_token" value=""#).expect("a CSRF field") + r#"name="csrf_token" value=""#.len();
    html[at..at + 64].to_owned()
}

async fn page(c: &Client, path: &str) -> Got {
    got(c.get(path.to_owned()).dispatch().await).await
}

async fn submit(c: &Client, path: &str, pairs: &[(&str, &str)]) -> Got {
    got(c.post(path.to_owned()).header(ContentType::Form).body(form_body(pairs)).dispatch().await).await
}

/// Every input but the hidden ones has a `<label for=…>`.
fn assert_labelled(html: &str, path: &str) {
    for input in html.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap()];
        if tag.contains(r#"type="hidden""#) {
            continue;
        }
        let id = tag.split(r#"id=""#).nth(1).map(|r| &r[..r.find('"').unwrap()]).expect("an id");
        assert!(html.contains(&format!(r#"<label for="{id}""#)), "{path}: input {id} has no label");
    }
}

#[tokio::test]
async fn every_page_renders_with_its_headers_and_labels() {
    let db = TestDb::sqlite_file();
    let (c, svc) = client_with(&db.url, &[]).await;
    svc.register(&RequestContext::operator(), "look@example.com", PASSWORD).await.unwrap();
    let issued = svc.operator_reset("look@example.com").await.unwrap();
    let reset = format!("/reset?token={}", issued.token.expose());
    for path in ["/login", "/register", "/forgot", reset.as_str()] {
        let resp = c.get(path).dispatch().await;
        assert_eq!(resp.status(), Status::Ok, "{path}");
        assert_eq!(resp.content_type(), Some(ContentType::HTML));
        let h = resp.headers();
        assert_eq!(
            h.get_one("Content-Security-Policy"),
            Some("default-src 'self'; script-src 'self'; frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h.get_one("X-Frame-Options"), Some("DENY"));
        assert_eq!(h.get_one("Cache-Control"), Some("no-store"));
        let html = resp.into_string().await.unwrap();
        assert_labelled(&html, path);
        // No inline script: at most the passkeys script file (api.md §11).
        let scripts: Vec<&str> = html.match_indices("<script").map(|(i, _)| &html[i..]).collect();
        assert!(
            scripts.iter().all(|t| t.starts_with(r#"<script src="/static/passkeys.js" defer></script>"#)),
            "{path}: only the passkeys script file"
        );
    }
    let css = c.get("/static/style.css").dispatch().await;
    assert_eq!(css.content_type(), Some(ContentType::CSS));
    assert!(css.headers().get_one("Cache-Control").is_some_and(|v| v.contains("max-age")));
    // Logged in, the account page too.
    let login = page(&c, "/login").await;
    let done = submit(
        &c,
        "/login",
        &[
            ("csrf_token", &csrf_of(&login.html)),
            ("email", "look@example.com"),
            ("password", PASSWORD),
            ("next", "/account"),
        ],
    )
    .await;
    assert_eq!(done.status, Status::SeeOther);
    let account = page(&c, "/account").await;
    assert_eq!(account.status, Status::Ok);
    assert_labelled(&account.html, "/account");
    assert!(account.html.contains("look@example.com"));
}

#[tokio::test]
async fn register_log_in_manage_sessions_change_password_log_out() {
    let db = TestDb::sqlite_file();
    let (c, svc) = client_with(&db.url, &[]).await;
    // Register: failures beside the form with the API's status, then success → 303.
    let form = page(&c, "/register").await;
    let csrf = csrf_of(&form.html);
    let short =
        submit(&c, "/register", &[("csrf_token", &csrf), ("email", "web@example.com"), ("password", "short")]).await;
    assert_eq!(short.status, Status::BadRequest);
    assert!(short.html.contains("at least 12 characters") && short.html.contains("web@example.com"), "{}", short.html);
    let ok =
        submit(&c, "/register", &[("csrf_token", &csrf), ("email", "web@example.com"), ("password", PASSWORD)]).await;
    assert_eq!((ok.status, ok.location.as_deref()), (Status::SeeOther, Some("/login?registered=1")));
    let dup =
        submit(&c, "/register", &[("csrf_token", &csrf), ("email", "web@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(dup.status, Status::BadRequest);

    // Log in: wrong password 401 on the page, right one 303 to next.
    let wrong = submit(
        &c,
        "/login",
        &[("csrf_token", &csrf), ("email", "web@example.com"), ("password", "wrong password!"), ("next", "/account")],
    )
    .await;
    assert_eq!(wrong.status, Status::Unauthorized);
    assert!(wrong.html.contains("Invalid email or password"), "{}", wrong.html);
    let other = svc.login(&RequestContext::operator(), "web@example.com", PASSWORD).await.unwrap(); // another browser
    let ok = submit(
        &c,
        "/login",
        &[("csrf_token", &csrf), ("email", "web@example.com"), ("password", PASSWORD), ("next", "/account")],
    )
    .await;
    assert_eq!((ok.status, ok.location.as_deref()), (Status::SeeOther, Some("/account")));

    // The account page: email and both sessions; the form token is now bound to the session.
    let account = page(&c, "/account").await;
    assert_eq!(account.html.matches(r#"<li class="session">"#).count(), 2);
    let csrf = csrf_of(&account.html);
    // End one session by its button: the other browser's.
    let third = svc.login(&RequestContext::operator(), "web@example.com", PASSWORD).await.unwrap();
    let account = page(&c, "/account").await;
    let ids: Vec<&str> = account
        .html
        .split(r#"action="/account/sessions/"#)
        .skip(1)
        .map(|r| &r[..36.min(r.len())])
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .collect();
    assert_eq!(ids.len(), 2, "an End button for each other session");
    for id in &ids {
        let r = submit(&c, &format!("/account/sessions/{id}/end"), &[("csrf_token", &csrf)]).await;
        assert_eq!((r.status, r.location.as_deref()), (Status::SeeOther, Some("/account?done=ended")));
    }
    assert!(svc.authenticate(third.token.expose()).await.is_err());
    assert!(svc.authenticate(other.token.expose()).await.is_err());
    let again = submit(&c, &format!("/account/sessions/{}/end", ids[0]), &[("csrf_token", &csrf)]).await;
    assert_eq!(again.status, Status::NotFound, "already ended: the page shows the API's 404");
    let other = svc.login(&RequestContext::operator(), "web@example.com", PASSWORD).await.unwrap(); // yet another browser
    let ended = submit(&c, "/account/sessions/end-others", &[("csrf_token", &csrf)]).await;
    assert_eq!((ended.status, ended.location.as_deref()), (Status::SeeOther, Some("/account?done=others")));
    assert!(svc.authenticate(other.token.expose()).await.is_err(), "the other browser is logged out");

    // Change the password: wrong current → 401 beside the form; right → 303.
    let bad = submit(
        &c,
        "/account/password",
        &[("csrf_token", &csrf), ("current_password", "not it at all"), ("new_password", "the web password")],
    )
    .await;
    assert_eq!(bad.status, Status::Unauthorized);
    let changed = submit(
        &c,
        "/account/password",
        &[("csrf_token", &csrf), ("current_password", PASSWORD), ("new_password", "the web password")],
    )
    .await;
    assert_eq!((changed.status, changed.location.as_deref()), (Status::SeeOther, Some("/account?done=password")));
    assert!(svc.login(&RequestContext::operator(), "web@example.com", "the web password").await.is_ok());

    // Log out → 303 to /login; the account page then sends you to log in.
    let out = submit(&c, "/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!((out.status, out.location.as_deref()), (Status::SeeOther, Some("/login?logged_out=1")));
    let gone = page(&c, "/account").await;
    assert_eq!((gone.status, gone.location.as_deref()), (Status::SeeOther, Some("/login?next=/account")));
}

#[tokio::test]
async fn posts_without_a_valid_csrf_token_get_403() {
    let db = TestDb::sqlite_file();
    let (c, svc) = client_with(&db.url, &[]).await;
    svc.register(&RequestContext::operator(), "csrf@example.com", PASSWORD).await.unwrap();
    let form = page(&c, "/login").await;
    let creds = |token: &str| {
        vec![("csrf_token", token.to_owned()), ("email", "csrf@example.com".into()), ("password", PASSWORD.into())]
    };
    for token in ["", "0".repeat(64).as_str(), "not hex"] {
        let pairs = creds(token);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = submit(&c, "/login", &pairs).await;
        assert_eq!(r.status, Status::Forbidden, "{token:?}");
        assert!(r.html.contains("CSRF"));
    }
    // Another user's token (their session) is refused for this browser.
    let (c2, _) = client_with(&db.url, &[]).await;
    let theirs = csrf_of(&page(&c2, "/login").await.html);
    let pairs = creds(&theirs);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(submit(&c, "/login", &pairs).await.status, Status::Forbidden);
    // Logged-in forms: a token from before the login (pre-session) no longer works.
    let pre = csrf_of(&form.html);
    let pairs = creds(&pre);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(submit(&c, "/login", &pairs).await.status, Status::SeeOther);
    let stale = submit(&c, "/account/sessions/end-others", &[("csrf_token", &pre)]).await;
    assert_eq!(stale.status, Status::Forbidden);
    for path in ["/register", "/logout", "/account/password", "/forgot", "/reset"] {
        assert_eq!(submit(&c, path, &[]).await.status, Status::Forbidden, "{path}");
    }
    // A cross-site post is refused before the token is even read.
    let cross = c
        .post("/login")
        .header(ContentType::Form)
        .header(Header::new("Origin", "https://evil.example"))
        .body(form_body(&[("csrf_token", &pre)]))
        .dispatch()
        .await;
    assert_eq!(cross.status(), Status::Forbidden);
}

#[tokio::test]
async fn next_is_followed_only_on_this_site() {
    let db = TestDb::sqlite_file();
    let (c, svc) = untracked_client_with(&db.url, &[("login_max_failures", json!(100))]).await;
    svc.register(&RequestContext::operator(), "next@example.com", PASSWORD).await.unwrap();
    for (next, expected) in [
        ("/account?tab=sessions", "/account?tab=sessions"),
        ("//evil.example", "/account"),
        ("https://evil.example", "/account"),
        ("/\\evil.example", "/account"),
        ("javascript:alert(1)", "/account"),
    ] {
        let form = c.get("/login").dispatch().await;
        let pre = form.cookies().get("csrf").unwrap().value().to_owned();
        let csrf = csrf_of(&form.into_string().await.unwrap());
        let resp = c
            .post("/login")
            .header(ContentType::Form)
            .cookie(rocket::http::Cookie::new("csrf", pre))
            .body(form_body(&[
                ("csrf_token", &csrf),
                ("email", "next@example.com"),
                ("password", PASSWORD),
                ("next", next),
            ]))
            .dispatch()
            .await;
        assert_eq!(resp.status(), Status::SeeOther, "{next}");
        assert_eq!(resp.headers().get_one("Location"), Some(expected), "{next}");
    }
}

#[tokio::test]
async fn forgot_and_reset_pages() {
    let db = TestDb::sqlite_file();
    // Response mode: /forgot explains what the operator does; it never shows a token.
    let (c, svc) = client_with(&db.url, &[]).await;
    svc.register(&RequestContext::operator(), "fr@example.com", PASSWORD).await.unwrap();
    let forgot = page(&c, "/forgot").await;
    assert!(forgot.html.contains("userauth user reset"), "{}", forgot.html);
    // The reset page takes the operator's token.
    let issued = svc.operator_reset("fr@example.com").await.unwrap();
    let form = page(&c, &format!("/reset?token={}", issued.token.expose())).await;
    assert!(form.html.contains(issued.token.expose()), "the link's token is filled in");
    let csrf = csrf_of(&form.html);
    let bad =
        submit(&c, "/reset", &[("csrf_token", &csrf), ("reset_token", "nope"), ("new_password", "the reset password")])
            .await;
    assert_eq!(bad.status, Status::BadRequest);
    let ok = submit(
        &c,
        "/reset",
        &[("csrf_token", &csrf), ("reset_token", issued.token.expose()), ("new_password", "the reset password")],
    )
    .await;
    assert_eq!((ok.status, ok.location.as_deref()), (Status::SeeOther, Some("/login?reset=1")));
    assert!(svc.login(&RequestContext::operator(), "fr@example.com", "the reset password").await.is_ok());

    // Email mode: the form posts and answers alike for any address.
    let db = TestDb::sqlite_file();
    let down = crate::waiting::ClosedPort::bind();
    let extra = [
        ("reset_delivery", json!("email")),
        ("smtp_url", json!(down.smtp_url())),
        ("mail_from", json!("Accounts <no-reply@example.com>")),
    ];
    let (c, _) = client_with(&db.url, &extra).await;
    let form = page(&c, "/forgot").await;
    assert!(form.html.contains(r#"action="/forgot""#));
    let csrf = csrf_of(&form.html);
    for email in ["nobody@example.com", "fr@example.com"] {
        let sent = submit(&c, "/forgot", &[("csrf_token", &csrf), ("email", email)]).await;
        assert_eq!((sent.status, sent.location.as_deref()), (Status::SeeOther, Some("/forgot?sent=1")));
    }
    assert!(page(&c, "/forgot?sent=1").await.html.contains("a reset link is on its way"));
}

#[tokio::test]
async fn pages_can_be_turned_off() {
    let db = TestDb::sqlite_file();
    let (c, _) = client_with(&db.url, &[("pages", json!(false))]).await;
    for path in ["/login", "/register", "/account", "/forgot", "/reset", "/static/style.css"] {
        assert_eq!(c.get(path).dispatch().await.status(), Status::NotFound, "{path}");
    }
}

/// An account form refused because the server is busy says when to retry, as the API and the
/// login page do: the password change and the two-factor forms alike.
#[tokio::test]
async fn busy_account_forms_say_when_to_retry() {
    let db = TestDb::sqlite_file();
    let (c, svc) = client_with(&db.url, &[("hash_concurrency", json!(1)), ("hash_queue_max", json!(0))]).await;
    svc.register(&RequestContext::operator(), "busy@example.com", PASSWORD).await.unwrap();
    let login = page(&c, "/login").await;
    let pairs = [("email", "busy@example.com"), ("password", PASSWORD), ("csrf_token", &csrf_of(&login.html))];
    assert_eq!(submit(&c, "/login", &pairs).await.status, Status::SeeOther);
    let csrf = csrf_of(&page(&c, "/account").await.html);
    let held = svc.hasher().admit(None).unwrap();
    let forms: [(&str, &[(&str, &str)]); 3] = [
        ("/account/password", &[("current_password", PASSWORD), ("new_password", "another good password")]),
        ("/account/totp", &[("current_password", PASSWORD)]),
        ("/account/recovery-codes", &[("current_password", PASSWORD)]),
    ];
    for (path, fields) in forms {
        let mut pairs = fields.to_vec();
        pairs.push(("csrf_token", &csrf));
        let resp = c.post(path).header(ContentType::Form).body(form_body(&pairs)).dispatch().await;
        assert_eq!(resp.status(), Status::ServiceUnavailable, "{path}");
        assert_eq!(resp.headers().get_one("Retry-After"), Some("1"), "{path}");
        assert_eq!(resp.content_type(), Some(ContentType::HTML), "{path}: a page");
    }
    drop(held);
    assert!(svc.login(&RequestContext::operator(), "busy@example.com", PASSWORD).await.is_ok(), "nothing changed");
}
