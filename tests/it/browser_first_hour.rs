//! Issue 21 in a real browser: the account page at phone width (390×844) and desktop width
//! (1280×800), in the light and the dark scheme, with axe-core's WCAG A/AA rules in both schemes.
//! Screenshots go to `target/screenshots/`; `UPDATE_SCREENSHOTS=1` copies them to
//! `docs/screenshots/` for the README.

use std::path::Path;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::browser::{Driver, assert_accessible, expect_path, fill, press, text_of};
use crate::common::{PASSWORD, Server, sqlite_url};
use crate::prereq::{Prereq, require};

/// What Chromium 156 on Linux sends when it is not headless (headless says "HeadlessChrome").
const CHROME_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

async fn browser(driver: &Driver, width: u32, height: u32, dark: bool) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        format!("--window-size={width},{height}"),
        format!("--user-agent={CHROME_UA}"),
        "--hide-scrollbars".into(),
    ];
    if dark {
        args.push("--force-dark-mode".into());
    }
    let mut options = json!({ "binary": crate::prereq::path_of("chromium"), "args": args });
    if width < 500 {
        // Chromium's windows are at least 500 px wide: a phone's viewport is emulated instead.
        options["mobileEmulation"] =
            json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 3.0 }, "userAgent": CHROME_UA });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::rustls()
        .expect("TLS roots")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

async fn number(b: &Client, script: &str) -> f64 {
    b.execute(script, vec![]).await.expect("script").as_f64().expect("a number")
}

async fn log_in(b: &Client, base: &str) {
    b.goto(&format!("{base}/login")).await.unwrap();
    fill(b, "email", "phone@example.com").await;
    fill(b, "password", PASSWORD).await;
    press(b, "form[action='/login'] button").await;
    expect_path(b, "/account", "logged in").await;
}

#[test]
fn the_account_page_at_phone_and_desktop_width_light_and_dark() {
    if !require(Prereq::Browser) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("phone.db"));
    let server = Server::start(dir.path(), &url, &[]);
    let base = server.origin.clone();
    let add = crate::common::run(
        dir.path(),
        &["--database-url", &url, "user", "add", "phone@example.com"],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    let driver = Driver::start();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let taken = rt.block_on(async {
        // Another device first, so the page lists a session with an "End" button.
        let other = browser(&driver, 1280, 800, false).await;
        log_in(&other, &base).await;
        let mut taken = Vec::new();
        for (width, height, dark, name) in [
            (390, 844, false, "09-account-phone"),
            (1280, 800, false, "10-account-desktop"),
            (390, 844, true, "11-account-phone-dark"),
        ] {
            let b = browser(&driver, width, height, dark).await;
            let scheme_dark =
                b.execute("return matchMedia('(prefers-color-scheme: dark)').matches", vec![]).await.unwrap();
            assert_eq!(scheme_dark, json!(dark), "the browser reports the scheme under test");
            log_in(&b, &base).await;
            let viewport = number(&b, "return window.innerWidth").await;
            assert!((viewport - f64::from(width)).abs() <= 20.0, "viewport {viewport} for {width}");
            // Nothing wider than the screen: no sideways scrolling, every End button reachable.
            let scroll = number(&b, "return document.documentElement.scrollWidth").await;
            assert!(scroll <= viewport, "{name}: scrollWidth {scroll} > {viewport}");
            let rightmost = number(
                &b,
                "return Math.max(...[...document.querySelectorAll('li.session, li.session button, main')]\
                 .map(e => e.getBoundingClientRect().right))",
            )
            .await;
            assert!(rightmost <= viewport, "{name}: an element ends at {rightmost} > {viewport}");
            let sessions = b.find_all(Locator::Css("li.session")).await.unwrap();
            assert!(sessions.len() >= 2, "{name}: both devices listed");
            assert_eq!(b.find_all(Locator::Css("li.session form button")).await.unwrap().len(), sessions.len() - 1);
            // The session summary a person reads.
            let first = text_of(&b, "li.session .browser").await;
            assert!(first.starts_with("Chrome 156 on Linux"), "{name}: {first}");
            let meta = text_of(&b, "li.session .meta").await;
            assert!(meta.starts_with("from 127.0.0.1 · since ") && meta.contains("just now"), "{meta}");
            let exact = b.find(Locator::Css("li.session time")).await.unwrap().attr("datetime").await.unwrap();
            assert!(exact.is_some_and(|t| chrono::DateTime::parse_from_rfc3339(&t).is_ok()));
            assert_accessible(&b, &format!("/account ({name})")).await;
            // In the dark scheme, the login and error pages too.
            if dark {
                b.goto(&format!("{base}/nope")).await.unwrap();
                assert_eq!(text_of(&b, "h1").await, "Page not found");
                assert_accessible(&b, "404 (dark)").await;
                b.goto(&format!("{base}/account")).await.unwrap();
            }
            let png = b.screenshot().await.expect("screenshot");
            let file = format!("{name}.png");
            std::fs::write(shots.join(&file), png).unwrap();
            taken.push(file);
            // Logging out from the page says so.
            press(&b, "form[action='/logout'] button").await;
            expect_path(&b, "/login?logged_out=1", "logged out").await;
            assert_eq!(text_of(&b, "p.notice").await, "You are logged out.");
            if dark {
                assert_accessible(&b, "/login (dark)").await;
            }
            b.close().await.unwrap();
        }
        other.close().await.unwrap();
        taken
    });
    drop(server);
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        for file in taken {
            std::fs::copy(shots.join(&file), docs.join(&file)).unwrap();
        }
    }
}
