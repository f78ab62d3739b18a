//! Two-factor authentication in a real browser (api.md §10): enable TOTP on /account (the key read
//! from the page, the code computed here with totp-rs as an authenticator app would), the recovery
//! codes shown once with their .txt download, log out, log in with password + code, log in with a
//! recovery code, disable. axe-core on every new page. Screenshots of the setup and second-factor
//! pages go to `target/screenshots-totp/`; `UPDATE_SCREENSHOTS=1` copies them to `docs/screenshots/`.

use std::path::Path;

use chrono::Utc;
use fantoccini::{Client, Locator};

use crate::browser::{Driver, Shots, assert_accessible, expect_path, fill, press, text_of};
use crate::common::{PASSWORD, Server, form_body, sqlite_url};
use crate::prereq::{Prereq, require};
use crate::second_factor::code_at;

const EMAIL: &str = "phone@example.com";

#[test]
fn two_factor_in_a_browser() {
    if !require(Prereq::Browser) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("browser-totp.db"));
    let server = Server::start_with_public_url(dir.path(), &url, "127.0.0.1", &[]);
    let base = server.origin.clone();
    let creds = form_body(&[("email", EMAIL), ("password", PASSWORD)]);
    assert_eq!(server.form("POST", "/api/v1/register", &creds, None).status, 201);
    let driver = Driver::start();
    let shots_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots-totp");
    std::fs::create_dir_all(&shots_dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(walk(&driver, &server, &base, &shots_dir));
    drop(server);
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        for entry in std::fs::read_dir(&shots_dir).unwrap().flatten() {
            let name = format!("totp-{}", entry.file_name().to_string_lossy());
            std::fs::copy(entry.path(), docs.join(name)).unwrap();
        }
    }
}

async fn log_in(b: &Client, base: &str) {
    b.goto(&format!("{base}/login")).await.unwrap();
    fill(b, "email", EMAIL).await;
    fill(b, "password", PASSWORD).await;
    press(b, "form[action='/login'] button").await;
}

/// The tests' HTTP client is a blocking one: run it where blocking is allowed.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn cookie_header(b: &Client) -> String {
    let cookies = b.get_all_cookies().await.expect("cookies");
    cookies.iter().map(|c| format!("{}={}", c.name(), c.value())).collect::<Vec<_>>().join("; ")
}

async fn walk(driver: &Driver, server: &Server, base: &str, shots_dir: &Path) {
    let mut shots = Shots { dir: shots_dir.to_path_buf(), n: 0 };
    let b = driver.browser().await;
    log_in(&b, base).await;
    expect_path(&b, "/account", "").await;
    assert!(text_of(&b, "#two-factor-status").await.contains("off"));

    // Enable: the setup page with the QR code inline and the key grouped for reading.
    fill(&b, "enable_password", PASSWORD).await;
    press(&b, "form[action='/account/totp'] button").await;
    expect_path(&b, "/account/two-factor", "").await;
    assert_accessible(&b, "/account/two-factor").await;
    assert_eq!(b.find_all(Locator::Css(".qr svg path")).await.unwrap().len(), 1, "the QR code is inline SVG");
    assert!(b.find_all(Locator::Css("img")).await.unwrap().is_empty(), "no image to load");
    let shown = text_of(&b, "#totp-secret").await;
    assert!(shown.contains(' '), "grouped: {shown}");
    let secret: String = shown.split_whitespace().collect();
    assert_eq!(secret.len(), 32);
    shots.take(&b, "setup").await;

    // A wrong code first: the same page, with the error and 400's message.
    fill(&b, "code", "000000").await;
    if code_at(&secret, Utc::now()) != "000000" {
        press(&b, "form[action='/account/totp/confirm'] button").await;
        expect_path(&b, "/account/totp/confirm", "").await;
        assert!(text_of(&b, "#form-error").await.contains("does not match"));
        assert_accessible(&b, "setup page with an error").await;
    }
    fill(&b, "code", &code_at(&secret, Utc::now())).await;
    press(&b, "form[action='/account/totp/confirm'] button").await;
    expect_path(&b, "/account/recovery-codes", "").await;
    assert_accessible(&b, "/account/recovery-codes").await;
    shots.take(&b, "recovery-codes").await;
    let mut codes = Vec::new();
    for el in b.find_all(Locator::Css("#recovery-codes code")).await.unwrap() {
        codes.push(el.text().await.unwrap());
    }
    assert_eq!(codes.len(), 10);

    // The download: an attachment, for this session only, while the codes are on offer.
    let cookies = cookie_header(&b).await;
    let txt = blocking(|| server.request("GET", "/account/recovery-codes.txt", &[("Cookie", &cookies)], b""));
    assert_eq!(txt.status, 200);
    assert!(txt.header("content-disposition").unwrap().starts_with("attachment"));
    assert!(txt.header("content-type").unwrap().starts_with("text/plain"));
    let body = String::from_utf8(txt.body.clone()).unwrap();
    assert!(codes.iter().all(|c| body.contains(c.as_str())));
    let session_only: String =
        cookies.split("; ").filter(|c| c.starts_with("session_id=")).collect::<Vec<_>>().join("; ");
    let without = blocking(|| server.request("GET", "/account/recovery-codes.txt", &[("Cookie", &session_only)], b""));
    assert_eq!(without.status, 303, "no codes without the cookie that carries them");
    let other = blocking(|| {
        server.form("POST", "/api/v1/session", &form_body(&[("email", EMAIL), ("password", PASSWORD)]), None)
    });
    assert_eq!(other.json()["message"], "second factor required");

    press(&b, "form[action='/account/recovery-codes/done'] button").await;
    expect_path(&b, "/account", "").await;
    assert!(text_of(&b, "#two-factor-status").await.contains("on"));
    assert_eq!(text_of(&b, "#recovery-left").await, "10");
    assert_accessible(&b, "/account with two-factor on").await;
    let cookies = cookie_header(&b).await;
    let after = blocking(|| server.request("GET", "/account/recovery-codes.txt", &[("Cookie", &cookies)], b""));
    assert_eq!(after.status, 303, "shown once: gone after 'saved'");

    // Log out; log in with password + code.
    press(&b, "form[action='/logout'] button").await;
    expect_path(&b, "/login?logged_out=1", "").await;
    log_in(&b, base).await;
    expect_path(&b, "/login/second-factor?next=%2Faccount", "the second step").await;
    assert_accessible(&b, "/login/second-factor").await;
    let code_input = b.find(Locator::Id("code")).await.unwrap();
    assert_eq!(code_input.attr("autocomplete").await.unwrap().as_deref(), Some("one-time-code"));
    assert_eq!(code_input.attr("inputmode").await.unwrap().as_deref(), Some("numeric"));
    shots.take(&b, "second-factor").await;
    // The account page is not reachable half-logged-in.
    b.goto(&format!("{base}/account")).await.unwrap();
    expect_path(&b, "/login/second-factor?next=%2Faccount", "pending is not a session").await;
    // The confirm step used the current step: the app's next code is the fresh one.
    fill(&b, "code", &code_at(&secret, Utc::now() + chrono::Duration::seconds(30))).await;
    press(&b, "form[action='/login/second-factor'] button").await;
    expect_path(&b, "/account", "logged in with the code").await;

    // Log out; log in with a recovery code.
    press(&b, "form[action='/logout'] button").await;
    expect_path(&b, "/login?logged_out=1", "").await;
    log_in(&b, base).await;
    expect_path(&b, "/login/second-factor?next=%2Faccount", "").await;
    fill(&b, "recovery_code", &codes[0]).await;
    let forms = b.find_all(Locator::Css("form[action='/login/second-factor'] button")).await.unwrap();
    forms[1].click().await.unwrap();
    expect_path(&b, "/account", "logged in with a recovery code").await;
    assert_eq!(text_of(&b, "#recovery-left").await, "9");

    // Disable.
    fill(&b, "disable_password", PASSWORD).await;
    press(&b, "form[action='/account/totp/disable'] button").await;
    expect_path(&b, "/account?done=totp-off", "").await;
    assert!(text_of(&b, "#two-factor-status").await.contains("off"));
    assert_accessible(&b, "/account after disabling").await;
    press(&b, "form[action='/logout'] button").await;
    expect_path(&b, "/login?logged_out=1", "").await;
    log_in(&b, base).await;
    expect_path(&b, "/account", "the password alone again").await;
    b.close().await.unwrap();
}
