//! Password reset by email (api.md §7) against a real SMTP server: Debian's python3-aiosmtpd,
//! started per test on a free loopback port, writing each message it receives as JSON.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{PASSWORD, Server, eventually, form_body, run, secs, sqlite_url};
use crate::prereq::{Prereq, require};
use crate::waiting::{ClosedPort, listening_port};

const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/smtp_sink.py");
const FROM: &str = "Accounts <no-reply@example.com>";
const EMAILED: &str = "if that address has an account, a reset link is on its way";

/// The SMTP server; stopped on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl SmtpSink {
    /// On a port of its own choosing (port 0).
    pub fn start() -> SmtpSink {
        Self::start_on(0, None)
    }

    /// On `port` (0: any free port), with STARTTLS required when a certificate and key are given.
    /// A non-zero port is for a sink coming back on the port of one that was stopped.
    pub fn start_on(port: u16, tls: Option<(&Path, &Path)>) -> SmtpSink {
        let dir = tempfile::tempdir().expect("mail dir");
        let python = crate::prereq::smtp_python().expect("python3 with aiosmtpd (apt-get install python3-aiosmtpd)");
        let mut cmd = Command::new(python);
        cmd.arg(SINK).arg(dir.path()).arg(port.to_string());
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        let log = std::fs::File::create(dir.path().join("sink.log")).expect("log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the SMTP sink");
        let mut sink = SmtpSink { child, port, dir };
        sink.port = eventually(secs(20), "the SMTP sink to listen", || {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("the SMTP sink exited ({status}): {}", sink.log());
            }
            listening_port(&sink.log())
        });
        sink
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sink.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
    }

    /// Waits until at least `n` messages arrived (at most `secs`), then returns them all.
    pub fn wait_for(&self, n: usize, timeout: u64) -> Vec<Value> {
        eventually(secs(timeout), &format!("{n} messages at the SMTP sink"), || {
            Some(self.messages()).filter(|got| got.len() >= n)
        })
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ClosedPort {
    /// The mail server comes up on this port (released just before, so the race is the
    /// sink's start-up time, not the test's).
    pub fn bring_up(self) -> SmtpSink {
        let port = self.port;
        drop(self);
        SmtpSink::start_on(port, None)
    }
}

/// How many messages wait in the outbox of a SQLite database.
pub fn outbox_len(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).expect("open the database");
    c.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0)).expect("count the outbox")
}

fn email_env(smtp_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ROCKET_RESET_DELIVERY", "email".into()),
        ("ROCKET_SMTP_URL", smtp_url.into()),
        ("ROCKET_MAIL_FROM", FROM.into()),
        ("ROCKET_PUBLIC_URL", "https://auth.example.com".into()),
    ]
}

pub(crate) fn start_server(dir: &Path, url: &str, env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(dir, url, &env)
}

pub(crate) fn token_in(text: &str) -> String {
    let at = text.find("/reset?token=").expect("a reset link") + "/reset?token=".len();
    text[at..at + 64].to_owned()
}

#[test]
fn email_mode_answers_alike_and_mails_only_registered_addresses() {
    if !require(Prereq::Smtp) {
        return;
    }
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mail.db");
    let url = sqlite_url(&db);
    let server = start_server(dir.path(), &url, &email_env(&sink.url()));
    let creds = form_body(&[("email", "reader@example.com"), ("password", PASSWORD)]);
    assert_eq!(server.form("POST", "/api/v1/register", &creds, None).status, 201);

    let registered = server.form("POST", "/api/v1/reset_password", "email=Reader%40Example.com", None);
    let unknown = server.form("POST", "/api/v1/reset_password", "email=ghost%40example.com", None);
    for r in [&registered, &unknown] {
        assert_eq!(r.status, 202);
        assert_eq!(r.json(), serde_json::json!({"message": EMAILED}));
    }
    assert_eq!(registered.body, unknown.body, "byte for byte the same answer");
    // The classic route answers 200 with the same body.
    let classic = server.form("POST", "/reset_password", "email=ghost%40example.com", None);
    assert_eq!((classic.status, classic.body.clone()), (200, unknown.body.clone()));
    // Malformed emails are still a 400.
    assert_eq!(server.form("POST", "/api/v1/reset_password", "email=nope", None).status, 400);

    sink.wait_for(1, 20);
    // Every accepted request is in the outbox before it is answered: once that is empty, every
    // message that will ever be sent has been.
    eventually(secs(20), "the outbox to empty", || (outbox_len(&db) == 0).then_some(()));
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "exactly one message, to the registered address: {messages:?}");
    let m = &messages[0];
    assert_eq!(m["rcpt_tos"], serde_json::json!(["reader@example.com"]));
    assert_eq!(m["subject"], "Reset your password");
    assert_eq!(m["from"], FROM);
    assert_eq!(m["content_type"], "multipart/alternative");
    let (text, html) = (m["text"].as_str().expect("a text part"), m["html"].as_str().expect("an HTML part"));
    let token = token_in(text);
    assert!(text.contains(&format!("https://auth.example.com/reset?token={token}")), "{text}");
    assert!(html.contains(&format!("https://auth.example.com/reset?token={token}")), "{html}");
    assert!(text.contains(&format!("reset token: {token}")), "the token itself: {text}");
    assert!(text.contains("expires at 20"), "the expiry: {text}");

    // The token works once.
    let upd = form_body(&[("reset_token", &token), ("new_password", "the emailed new password")]);
    assert_eq!(server.form("POST", "/api/v1/update_password", &upd, None).status, 200);
    assert_eq!(server.form("POST", "/api/v1/update_password", &upd, None).status, 400);
    let new = form_body(&[("email", "reader@example.com"), ("password", "the emailed new password")]);
    assert_eq!(server.form("POST", "/api/v1/session", &new, None).status, 200);

    // The raw token is in neither the database nor the log.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    assert!(!String::from_utf8_lossy(&bytes).contains(&token), "raw token at rest");
    let log = server.log_text();
    assert!(log.contains("reset email sent"), "{log}");
    assert!(!log.contains(&token), "raw token in the log: {log}");
}

#[test]
fn mail_server_down_then_up_the_message_arrives_after_a_retry() {
    if !require(Prereq::Smtp) {
        return;
    }
    let down = ClosedPort::bind();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("retry.db"));
    let server = start_server(dir.path(), &url, &email_env(&down.smtp_url()));
    let creds = form_body(&[("email", "patient@example.com"), ("password", PASSWORD)]);
    assert_eq!(server.form("POST", "/api/v1/register", &creds, None).status, 201);
    let started = Instant::now();
    let r = server.form("POST", "/api/v1/reset_password", "email=patient%40example.com", None);
    assert_eq!(r.status, 202, "answered at once, the mail server being down");
    assert!(started.elapsed() < Duration::from_secs(5));
    eventually(secs(30), "a failed delivery attempt", || server.log_text().contains("will retry").then_some(()));
    let sink = down.bring_up();
    let messages = sink.wait_for(1, 30);
    assert_eq!(messages.len(), 1, "delivered after the server came up: {}", server.log_text());
    assert_eq!(messages[0]["rcpt_tos"], serde_json::json!(["patient@example.com"]));
    assert!(server.log_text().contains("will retry"));
}

#[test]
fn reset_requests_are_throttled_alike_for_any_address() {
    if !require(Prereq::Smtp) {
        return;
    }
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("throttle.db"));
    let mut env = email_env(&sink.url());
    env.push(("ROCKET_RESET_MAX_REQUESTS", "2".into()));
    let server = start_server(dir.path(), &url, &env);
    let creds = form_body(&[("email", "often@example.com"), ("password", PASSWORD)]);
    assert_eq!(server.form("POST", "/api/v1/register", &creds, None).status, 201);
    for email in ["often%40example.com", "never%40example.com"] {
        let body = format!("email={email}");
        for _ in 0..2 {
            assert_eq!(server.form("POST", "/api/v1/reset_password", &body, None).status, 202);
        }
        let limited = server.form("POST", "/api/v1/reset_password", &body, None);
        assert_eq!(limited.status, 429, "{email}");
        assert!(limited.header("retry-after").is_some());
    }
    assert_eq!(sink.wait_for(2, 20).len(), 2, "two messages to the registered address only");
}

#[test]
fn operator_send_and_mail_test_against_a_real_server_and_a_closed_port() {
    if !require(Prereq::Smtp) {
        return;
    }
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("op.db"));
    assert_eq!(run(dir.path(), &["--database-url", &url, "db-setup"], "", &[]).code, 0);
    let add =
        run(dir.path(), &["--database-url", &url, "user", "add", "op@example.com"], &format!("{PASSWORD}\n"), &[]);
    assert_eq!(add.code, 0, "{}", add.stderr);
    let good = [("ROCKET_SMTP_URL", sink.url()), ("ROCKET_MAIL_FROM", FROM.to_owned())];
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let out = run(dir.path(), &["--database-url", &url, "user", "reset", "op@example.com", "--send"], "", &good);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("op@example.com") && out.stdout.contains("250"), "{}", out.stdout);
    let messages = sink.wait_for(1, 10);
    let token = token_in(messages[0]["text"].as_str().unwrap());
    assert!(!out.stdout.contains(&token), "--send prints where it went, not the token");

    let out = run(dir.path(), &["--database-url", &url, "mail-test", "ops@example.com"], "", &good);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("250"), "the server's answer: {}", out.stdout);
    assert_eq!(sink.wait_for(2, 10)[1]["rcpt_tos"], serde_json::json!(["ops@example.com"]));

    // A refusal is reported with the server's reply.
    let out = run(dir.path(), &["--database-url", &url, "mail-test", "reject@example.com"], "", &good);
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: ") && out.stderr.contains("550"), "{}", out.stderr);

    let down = ClosedPort::bind();
    let closed = down.smtp_url();
    let bad = [("ROCKET_SMTP_URL", closed.as_str()), ("ROCKET_MAIL_FROM", FROM)];
    let out = run(dir.path(), &["--database-url", &url, "mail-test", "ops@example.com"], "", &bad);
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let out = run(dir.path(), &["--database-url", &url, "user", "reset", "op@example.com", "--send"], "", &bad);
    assert_eq!(out.code, 1, "{}", out.stdout);
}

#[test]
fn email_mode_needs_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("keys.db"));
    let out = run(
        dir.path(),
        &["--database-url", &url, "serve", "--port", "1"],
        "",
        &[("ROCKET_RESET_DELIVERY", "email"), ("ROCKET_MAIL_FROM", FROM)],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("smtp_url"), "{}", out.stderr);
    let out = run(
        dir.path(),
        &["--database-url", &url, "serve", "--port", "1"],
        "",
        &[("ROCKET_RESET_DELIVERY", "email"), ("ROCKET_SMTP_URL", "smtp://127.0.0.1:1")],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("mail_from"), "{}", out.stderr);
    let out = run(
        dir.path(),
        &["--database-url", &url, "db-setup"],
        "",
        &[("ROCKET_SMTP_URL", "smtp://user:hunter2@[bad"), ("ROCKET_MAIL_FROM", FROM)],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("smtp_url") && !out.stderr.contains("hunter2"), "{}", out.stderr);
}

/// STARTTLS (`?tls=required`) against the same server with a certificate made here, trusted
/// through `SSL_CERT_FILE` (read by rustls-native-certs).
#[test]
fn starttls_with_a_certificate_made_in_the_test() {
    if !require(Prereq::Smtp) {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let p = |name: &str| certs.path().join(name);
    let (ca, ca_key, cert, key, csr) = (p("ca.pem"), p("ca-key.pem"), p("cert.pem"), p("key.pem"), p("req.csr"));
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl").args(args).output().expect("openssl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    // A CA, and a certificate for localhost signed by it.
    openssl(
        &[os("req"), os("-x509"), os("-newkey"), os("rsa:2048"), os("-nodes"), os("-days"), os("1")]
            .into_iter()
            .chain([
                os("-subj"),
                os("/CN=userauth test CA"),
                os("-keyout"),
                ca_key.as_os_str(),
                os("-out"),
                ca.as_os_str(),
            ])
            .collect::<Vec<_>>(),
    );
    openssl(
        &[os("req"), os("-newkey"), os("rsa:2048"), os("-nodes"), os("-subj"), os("/CN=localhost")]
            .into_iter()
            .chain([os("-keyout"), key.as_os_str(), os("-out"), csr.as_os_str()])
            .collect::<Vec<_>>(),
    );
    let ext = p("ext.cnf");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        &[os("x509"), os("-req"), os("-days"), os("1"), os("-CAcreateserial"), os("-in"), csr.as_os_str()]
            .into_iter()
            .chain([os("-CA"), ca.as_os_str(), os("-CAkey"), ca_key.as_os_str(), os("-extfile"), ext.as_os_str()])
            .chain([os("-out"), cert.as_os_str()])
            .collect::<Vec<_>>(),
    );
    let sink = SmtpSink::start_on(0, Some((&cert, &key)));
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("tls.db"));
    let smtp = format!("smtp://localhost:{}?tls=required", sink.port);
    let cert_file = ca.to_string_lossy().into_owned();
    let env = [("ROCKET_SMTP_URL", smtp.as_str()), ("ROCKET_MAIL_FROM", FROM), ("SSL_CERT_FILE", cert_file.as_str())];
    let out = run(dir.path(), &["--database-url", &url, "mail-test", "tls@example.com"], "", &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let messages = sink.wait_for(1, 10);
    assert_eq!(messages[0]["tls"], true, "the message went over TLS");
    // Without trusting the certificate the connection is refused, not downgraded.
    let env = [("ROCKET_SMTP_URL", smtp.as_str()), ("ROCKET_MAIL_FROM", FROM)];
    let out = run(dir.path(), &["--database-url", &url, "mail-test", "tls@example.com"], "", &env);
    assert_eq!(out.code, 1, "{}", out.stdout);
}
