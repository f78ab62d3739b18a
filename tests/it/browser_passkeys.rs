//! Passkeys in a real browser (api.md §11): Chromium over WebDriver against the real binary, with
//! a virtual authenticator per browser added through the W3C WebAuthn automation command
//! (`POST /session/{id}/webauthn/authenticator`: CTAP2, internal, resident keys, user verification).
//! The relying party is `localhost` (WebAuthn refuses IP hosts), so the browser browses
//! `http://localhost:<port>`. Screenshots go to `target/screenshots/` (and to `docs/screenshots/`
//! with `UPDATE_SCREENSHOTS=1`).

use std::path::Path;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{Driver, Shots, assert_accessible, expect_path, fill, path_of, press, text_of};
use crate::common::{PASSWORD, Server, http, sqlite_url};
use crate::prereq::{Prereq, require};
use crate::waiting::{secs, within_async};

/// The WebAuthn automation command that gives this browser session a virtual platform
/// authenticator holding discoverable credentials and verifying its user.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/webauthn/authenticator", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        (http::Method::POST, Some(body.to_string()))
    }
}

async fn with_authenticator(b: &Client) {
    let answer = b.issue_cmd(AddVirtualAuthenticator).await.expect("a virtual authenticator");
    assert!(answer.as_str().is_some_and(|id| !id.is_empty()), "the authenticator's id: {answer}");
}

/// Waits (at most 20 s) for the passkey status line to say something other than the prompt.
async fn status_after_prompt(b: &Client, id: &str) -> String {
    let answered = || async move {
        let text = b.find(Locator::Id(id)).await.ok()?.text().await.unwrap_or_default();
        Some(text).filter(|t| !t.is_empty() && !t.starts_with("Follow your browser"))
    };
    match within_async(secs(20), answered).await {
        Some(text) => text,
        None => panic!("no answer in #{id} at {}", path_of(b).await),
    }
}

#[test]
fn a_person_logs_in_with_a_passkey() {
    if !require(Prereq::Browser) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("passkeys.db"));
    let server = Server::start_with_public_url(dir.path(), &url, "localhost", &[]);
    let (port, base) = (server.port, server.origin.clone());
    let body = json!({"email": "keyholder@example.com", "password": PASSWORD}).to_string();
    let made = http(port, "POST", "/api/v1/register", &[("Content-Type", "application/json")], body.as_bytes());
    assert_eq!(made.status, 201);
    let driver = Driver::start();
    let shots_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots_dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(walk(&driver, &base, &shots_dir));
    drop(server);
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        for entry in std::fs::read_dir(&shots_dir).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("passkeys-") {
                std::fs::copy(entry.path(), docs.join(entry.file_name())).unwrap();
            }
        }
    }
}

/// log in with the password → add a passkey → log out → log in with it → a second browser with
/// its own authenticator cannot → remove it → it no longer logs in.
async fn walk(driver: &Driver, base: &str, shots_dir: &Path) {
    let mut shots = Shots { dir: shots_dir.to_path_buf(), n: 0 };
    let b = driver.browser().await;
    with_authenticator(&b).await;

    b.goto(&format!("{base}/login")).await.unwrap();
    fill(&b, "email", "keyholder@example.com").await;
    fill(&b, "password", PASSWORD).await;
    press(&b, "form[action='/login'] button").await;
    expect_path(&b, "/account", "").await;
    assert!(text_of(&b, "#no-passkeys").await.contains("no passkeys"));
    assert_accessible(&b, "/account with no passkeys").await;

    // Add one: the script asks the authenticator, the API verifies and stores it.
    fill(&b, "passkey_name", "This laptop").await;
    fill(&b, "passkey_password", PASSWORD).await;
    press(&b, "#add-passkey button").await;
    expect_path(&b, "/account?done=passkey_added", "the passkey was added").await;
    assert_eq!(b.find_all(Locator::Css("tr.passkey")).await.unwrap().len(), 1);
    assert_eq!(text_of(&b, "tr.passkey .passkey-name").await, "This laptop");
    assert!(text_of(&b, "tr.passkey").await.contains("never"), "not used yet");
    assert_accessible(&b, "/account with a passkey").await;
    save(&mut shots, &b, "passkeys-account").await;

    // Log out, then in with the passkey alone.
    press(&b, "form[action='/logout'] button").await;
    expect_path(&b, "/login?logged_out=1", "").await;
    let button = b.find(Locator::Id("passkey-login")).await.expect("the passkey button");
    assert!(button.is_displayed().await.unwrap(), "shown when the script runs");
    assert_accessible(&b, "/login with the passkey button").await;
    save(&mut shots, &b, "passkeys-login").await;
    button.click().await.unwrap();
    expect_path(&b, "/account", "logged in with the passkey").await;
    assert_eq!(text_of(&b, "#account-email").await, "keyholder@example.com");
    assert!(!text_of(&b, "tr.passkey").await.contains("never"), "last used is set");

    // Another browser with its own authenticator: that passkey is not on it.
    let other = driver.browser().await;
    with_authenticator(&other).await;
    other.goto(&format!("{base}/login")).await.unwrap();
    press(&other, "#passkey-login").await;
    let said = status_after_prompt(&other, "passkey-login-status").await;
    assert!(said.contains("not allowed") || said.contains("not accepted"), "{said}");
    other.goto(&format!("{base}/account")).await.unwrap();
    expect_path(&other, "/login?next=/account", "the other browser is not logged in").await;
    other.close().await.unwrap();

    // Remove it (a plain form): the authenticator still holds it, the service no longer accepts it.
    press(&b, "tr.passkey form button").await;
    expect_path(&b, "/account?done=passkey_removed", "the passkey was removed").await;
    assert!(b.find_all(Locator::Css("tr.passkey")).await.unwrap().is_empty());
    press(&b, "form[action='/logout'] button").await;
    expect_path(&b, "/login?logged_out=1", "").await;
    press(&b, "#passkey-login").await;
    let said = status_after_prompt(&b, "passkey-login-status").await;
    assert!(said.contains("not accepted"), "{said}");
    assert_accessible(&b, "/login after a refused passkey").await;
    save(&mut shots, &b, "passkeys-refused").await;
    b.goto(&format!("{base}/account")).await.unwrap();
    expect_path(&b, "/login?next=/account", "not logged in").await;
    b.close().await.unwrap();
}

/// Screenshots named `passkeys-…` (the other browser test numbers its own).
async fn save(shots: &mut Shots, b: &Client, name: &str) {
    shots.n += 1;
    // The passkeys section is below the fold of the account page.
    let _ =
        b.execute("var h = document.getElementById('passkeys-heading'); if (h) { h.scrollIntoView(); }", vec![]).await;
    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(shots.dir.join(format!("{name}.png")), png).expect("write screenshot");
}
