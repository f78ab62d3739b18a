//! The account pages in a real browser: Chromium driven over WebDriver (Debian's chromium and
//! chromium-driver) against the real binary on a real socket, with reset links by email through
//! the real SMTP sink, and axe-core's WCAG A/AA rules run on every page. Screenshots of each step
//! go to `target/screenshots/`; `UPDATE_SCREENSHOTS=1` also copies them to `docs/screenshots/`
//! for the README.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common::{PASSWORD, Server, sqlite_url};
use crate::mail::SmtpSink;
use crate::prereq::{Prereq, require};

use crate::prereq::AXE;
use crate::waiting::{eventually, secs, within_async};

/// chromedriver on a free port; stopped on drop.
pub(crate) struct Driver {
    child: Child,
    pub(crate) port: u16,
}

impl Driver {
    pub(crate) fn start() -> Driver {
        let log = tempfile::NamedTempFile::new().expect("chromedriver log");
        let out = log.reopen().expect("log");
        // Its own process group, so that the browsers it starts can be stopped with it even when
        // the test fails half-way (they would otherwise outlive it). Port 0: it says which it got.
        let child = Command::new(crate::prereq::path_of("chromedriver"))
            .process_group(0)
            .arg("--port=0")
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver)");
        let mut driver = Driver { child, port: 0 };
        driver.port = eventually(secs(20), "chromedriver to start", || {
            let text = std::fs::read_to_string(log.path()).unwrap_or_default();
            let line = text.lines().find(|l| l.contains("started successfully on port "))?;
            line.rsplit(' ').next()?.trim_end_matches('.').parse().ok()
        });
        driver
    }

    /// A new browser: its own profile, so its own cookies (another "device").
    pub(crate) async fn browser(&self) -> Client {
        // Only loopback HTTP to chromedriver, but the client is built with TLS support.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": crate::prereq::path_of("chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,900"]
            }),
        );
        ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct Shots {
    pub(crate) dir: PathBuf,
    pub(crate) n: usize,
}

impl Shots {
    pub(crate) async fn take(&mut self, b: &Client, name: &str) {
        self.n += 1;
        let png = b.screenshot().await.expect("screenshot");
        std::fs::write(self.dir.join(format!("{:02}-{name}.png", self.n)), png).expect("write screenshot");
    }
}

/// axe-core's WCAG 2.x A and AA rules on the current page: no violations.
pub(crate) async fn assert_accessible(b: &Client, page: &str) {
    let axe = std::fs::read_to_string(AXE).expect("axe-core (npm install in tests/it/support/npm)");
    b.execute(&axe, vec![]).await.expect("inject axe-core");
    let found = b
        .execute(
            "return axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})\
             .then(r => r.violations.map(v => v.id + ': ' + v.help + ' (' + v.nodes.length + ')'));",
            vec![],
        )
        .await
        .expect("run axe-core");
    let violations: Vec<String> = serde_json::from_value(found).expect("axe-core returned its violations");
    assert!(violations.is_empty(), "{page}: accessibility violations: {violations:#?}");
}

pub(crate) async fn fill(b: &Client, id: &str, value: &str) {
    let field = b.find(Locator::Id(id)).await.unwrap_or_else(|_| panic!("field #{id}"));
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

pub(crate) async fn press(b: &Client, css: &str) {
    b.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("button {css}")).click().await.expect("click");
}

pub(crate) async fn path_of(b: &Client) -> String {
    let url = b.current_url().await.expect("url");
    if std::env::var_os("BROWSER_DEBUG").is_some() {
        eprintln!("{url}: {}", b.source().await.unwrap_or_default());
    }
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Waits (at most 10 s) for the browser to arrive at `expected`: a click may return before the
/// navigation it starts has finished.
pub(crate) async fn expect_path(b: &Client, expected: &str, why: &str) {
    let arrived = within_async(secs(10), || async move { (path_of(b).await == expected).then_some(()) }).await;
    if arrived.is_none() {
        panic!("{why}: at {}, expected {expected}", path_of(b).await);
    }
}

pub(crate) async fn text_of(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("{css}")).text().await.expect("text")
}

#[test]
fn a_person_with_only_a_browser() {
    if !require(Prereq::Browser) {
        return;
    }
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("browser.db"));
    let smtp = sink.url();
    let env = [
        ("ROCKET_RESET_DELIVERY", "email"),
        ("ROCKET_SMTP_URL", &smtp),
        ("ROCKET_MAIL_FROM", "Accounts <no-reply@example.com>"),
    ];
    // Processes first (their readiness checks block), then the browser steps on a runtime.
    let server = Server::start_with_public_url(dir.path(), &url, "127.0.0.1", &env);
    let base = server.origin.clone();
    let driver = Driver::start();
    let shots_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots_dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(walk(&driver, &sink, &base, &shots_dir));
    drop(server);
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        for entry in std::fs::read_dir(&shots_dir).unwrap().flatten() {
            std::fs::copy(entry.path(), docs.join(entry.file_name())).unwrap();
        }
    }
}

/// register → log in → account → a second device → change password (the other is logged out)
/// → log out → forgot (email) → the emailed link → reset → log in with the new password.
async fn walk(driver: &Driver, sink: &SmtpSink, base: &str, shots_dir: &Path) {
    let mut shots = Shots { dir: shots_dir.to_path_buf(), n: 0 };

    let b = driver.browser().await;
    // Register.
    b.goto(&format!("{base}/register")).await.unwrap();
    assert_accessible(&b, "/register").await;
    shots.take(&b, "register").await;
    fill(&b, "email", "walker@example.com").await;
    fill(&b, "password", PASSWORD).await;
    press(&b, "form[action='/register'] button").await;
    expect_path(&b, "/login?registered=1", "").await;

    // Log in.
    assert_accessible(&b, "/login").await;
    shots.take(&b, "login").await;
    fill(&b, "email", "walker@example.com").await;
    fill(&b, "password", PASSWORD).await;
    press(&b, "form[action='/login'] button").await;
    expect_path(&b, "/account", "").await;
    assert_eq!(text_of(&b, "#account-email").await, "walker@example.com");
    assert_eq!(b.find_all(Locator::Css("li.session")).await.unwrap().len(), 1);
    assert_accessible(&b, "/account").await;
    shots.take(&b, "account").await;

    // A second browser (another device) logs in too.
    let other = driver.browser().await;
    other.goto(&format!("{base}/login")).await.unwrap();
    fill(&other, "email", "walker@example.com").await;
    fill(&other, "password", PASSWORD).await;
    press(&other, "form[action='/login'] button").await;
    expect_path(&other, "/account", "").await;
    b.goto(&format!("{base}/account")).await.unwrap();
    assert_eq!(b.find_all(Locator::Css("li.session")).await.unwrap().len(), 2);
    shots.take(&b, "account-two-sessions").await;

    // Change the password: the other device is logged out, this one stays.
    fill(&b, "current_password", PASSWORD).await;
    fill(&b, "new_password", "a browser's new password").await;
    press(&b, "form[action='/account/password'] button").await;
    expect_path(&b, "/account?done=password", "").await;
    assert_eq!(b.find_all(Locator::Css("li.session")).await.unwrap().len(), 1);
    shots.take(&b, "password-changed").await;
    other.goto(&format!("{base}/account")).await.unwrap();
    expect_path(&other, "/login?next=/account", "the other device was logged out").await;
    other.close().await.unwrap();

    // Log out.
    press(&b, "form[action='/logout'] button").await;
    expect_path(&b, "/login?logged_out=1", "").await;

    // Forgot: the link comes by email.
    b.goto(&format!("{base}/forgot")).await.unwrap();
    assert_accessible(&b, "/forgot").await;
    shots.take(&b, "forgot").await;
    fill(&b, "email", "walker@example.com").await;
    press(&b, "form[action='/forgot'] button").await;
    expect_path(&b, "/forgot?sent=1", "").await;
    let mail = sink.wait_for(1, 20);
    assert_eq!(mail.len(), 1, "the reset email arrived");
    let text = mail[0]["text"].as_str().unwrap();
    let link_at = text.find(&format!("{base}/reset?token=")).expect("a link to this server");
    let link: String = text[link_at..].split_whitespace().next().unwrap().to_owned();

    // The reset page the link lands on.
    b.goto(&link).await.unwrap();
    assert_accessible(&b, "/reset").await;
    shots.take(&b, "reset").await;
    fill(&b, "new_password", "the password from the email").await;
    press(&b, "form[action='/reset'] button").await;
    expect_path(&b, "/login?reset=1", "").await;

    // Log in with the new password.
    fill(&b, "email", "walker@example.com").await;
    fill(&b, "password", "the password from the email").await;
    press(&b, "form[action='/login'] button").await;
    expect_path(&b, "/account", "").await;
    shots.take(&b, "logged-in-again").await;
    b.close().await.unwrap();
}
