//! Email confirmation in a real browser (api.md §13): Chromium over WebDriver against the real
//! binary with `email_verification = "required"` and the real SMTP sink; axe-core on every new
//! page. Reuses the helpers of `browser.rs`.

use crate::browser::{Driver, assert_accessible, expect_path, fill, path_of, press, text_of};
use crate::common::{PASSWORD, Server, sqlite_url};
use crate::mail::SmtpSink;
use crate::prereq::{Prereq, require};
use crate::waiting::{secs, within_async};

#[test]
fn confirming_an_address_in_a_browser() {
    if !require(Prereq::Browser) {
        return;
    }
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("verify.db"));
    let smtp = sink.url();
    let env = [
        ("ROCKET_EMAIL_VERIFICATION", "required"),
        ("ROCKET_SMTP_URL", &smtp),
        ("ROCKET_MAIL_FROM", "Accounts <no-reply@example.com>"),
    ];
    let server = Server::start_with_public_url(dir.path(), &url, "127.0.0.1", &env);
    let base = server.origin.clone();
    let driver = Driver::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = driver.browser().await;
        b.goto(&format!("{base}/register")).await.unwrap();
        assert_accessible(&b, "/register (confirmation required)").await;
        assert!(text_of(&b, ".notice").await.contains("confirm your address"));
        fill(&b, "email", "clicker@example.com").await;
        fill(&b, "password", PASSWORD).await;
        press(&b, "form[action='/register'] button").await;
        expect_path(&b, "/verify", "after registering").await;
        assert_accessible(&b, "/verify (check your email)").await;

        // Logging in before confirming: the resend form.
        b.goto(&format!("{base}/login")).await.unwrap();
        fill(&b, "email", "clicker@example.com").await;
        fill(&b, "password", PASSWORD).await;
        press(&b, "form[action='/login'] button").await;
        let browser = &b;
        let resend =
            || async move { browser.find(fantoccini::Locator::Css("form[action='/verify/resend']")).await.ok() };
        if within_async(secs(10), resend).await.is_none() {
            panic!("no resend form at {}", path_of(&b).await);
        }
        assert_accessible(&b, "/login (email not confirmed)").await;

        let messages = sink.wait_for(1, 30);
        assert_eq!(messages.len(), 1);
        let text = messages[0]["text"].as_str().unwrap();
        let at = text.find("/verify?token=").expect("a link");
        let link: String = text[at..].split_whitespace().next().unwrap().to_owned();
        b.goto(&format!("{base}{link}")).await.unwrap();
        assert_accessible(&b, "/verify?token=…").await;
        press(&b, "form[action='/verify'] button").await;
        expect_path(&b, "/login?registered=1", "after confirming").await;
        fill(&b, "email", "clicker@example.com").await;
        fill(&b, "password", PASSWORD).await;
        press(&b, "form[action='/login'] button").await;
        expect_path(&b, "/account", "logged in once confirmed").await;
        b.close().await.unwrap();
    });
    drop(server);
}
