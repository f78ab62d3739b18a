//! Reset links by email (api.md §7), with lettre over tokio and rustls.
//!
//! Requests never wait for the mail server: reset requests are stored in the durable outbox
//! (`outbox.rs`) and sent from there by whichever instance claims them. Temporary failures
//! (connection refused, 4xx replies) are retried with back-off until the token expires; permanent
//! ones (5xx) are logged with the server's reply. The raw token lives only in memory, in the
//! message and (encrypted with the server key) in the outbox; it is never logged.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::db::redact_url;
use super::domain::SecretToken;

mod messages;

pub use messages::LinkMessage;

/// How self-service reset tokens reach their owner (api.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResetDelivery {
    /// In the API's answer (the original service's behaviour).
    #[default]
    Response,
    /// By email to the account's address; the API answers the same for every address.
    Email,
}

pub(crate) const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Where and as whom to send mail.
#[derive(Clone)]
pub struct MailSettings {
    smtp_url: String,
    from: Mailbox,
    /// The base of links, without a trailing slash.
    public_url: String,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp_url", &redact_url(&self.smtp_url))
            .field("from", &self.from.to_string())
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl MailSettings {
    /// Checks both values as lettre will read them; errors name the key (never the password).
    pub fn parse(smtp_url: &str, mail_from: &str, public_url: &str) -> Result<Self, MailSettingsError> {
        // lettre's own message for another scheme names its internals ("tls parameter 'None'").
        let scheme = smtp_url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("smtp" | "smtps")) {
            return Err(MailSettingsError::NotSmtp { url: redact_url(smtp_url) });
        }
        AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|error| MailSettingsError::InvalidSmtpUrl { url: redact_url(smtp_url), error })?;
        let from = mail_from
            .parse::<Mailbox>()
            .map_err(|error| MailSettingsError::InvalidFrom { from: mail_from.to_owned(), error })?;
        Ok(Self { smtp_url: smtp_url.to_owned(), from, public_url: public_url.trim_end_matches('/').to_owned() })
    }

    /// The server, for messages: the URL without its password.
    pub fn server(&self) -> String {
        redact_url(&self.smtp_url)
    }
}

/// Why `smtp_url` or `mail_from` was refused. Each message names its key; URLs are shown
/// redacted (never the password).
#[derive(Debug, thiserror::Error)]
pub enum MailSettingsError {
    #[error(
        "smtp_url {url} is not an SMTP URL: use smtp://host:port (plain or ?tls=required for STARTTLS) \
         or smtps://host:465 (TLS)"
    )]
    NotSmtp { url: String },
    #[error("smtp_url {url} is not a valid SMTP URL: {error}")]
    InvalidSmtpUrl { url: String, error: lettre::transport::smtp::Error },
    #[error("mail_from {from:?} is not a mailbox like \"Accounts <no-reply@example.com>\": {error}")]
    InvalidFrom { from: String, error: lettre::address::AddressError },
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0:?} is not an address mail can be sent to")]
    Address(String),
    #[error("the message could not be built: {0}")]
    Build(String),
    /// The server's answer, or why it could not be reached.
    #[error("{0}")]
    Smtp(String),
}

/// Counts of what happened to reset messages (for the log and metrics).
#[derive(Debug, Default)]
pub struct MailStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub retried: AtomicU64,
}

/// How a send failed: a temporary failure is retried, a permanent one is not.
#[derive(Debug)]
pub struct SendFailure {
    pub permanent: bool,
    pub error: MailError,
}

#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    settings: MailSettings,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// Wakes this instance's outbox worker when a request was stored here.
    wake: Notify,
    stats: MailStats,
}

fn smtp_error(e: &lettre::transport::smtp::Error) -> MailError {
    MailError::Smtp(e.to_string())
}

fn reply(r: &Response) -> String {
    let text: Vec<&str> = r.message().collect();
    format!("{} {}", r.code(), text.join(" "))
}

impl Mailer {
    pub fn new(settings: MailSettings) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url)
            .map_err(|e| smtp_error(&e))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self { inner: Arc::new(Inner { settings, transport, wake: Notify::new(), stats: MailStats::default() }) })
    }

    pub fn settings(&self) -> &MailSettings {
        &self.inner.settings
    }

    pub fn stats(&self) -> &MailStats {
        &self.inner.stats
    }

    /// Connects and greets the server without sending anything (`userauth doctor`).
    pub async fn check_server(&self) -> Result<(), MailError> {
        match self.inner.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Smtp("the server did not answer NOOP".into())),
            Err(e) => Err(smtp_error(&e)),
        }
    }

    /// Sends at once and returns the server's reply: for the operator's commands.
    pub async fn send_now(&self, message: Message) -> Result<String, MailError> {
        let response = self.inner.transport.send(message).await.map_err(|e| smtp_error(&e))?;
        Ok(reply(&response))
    }

    /// Tells this instance's outbox worker that something is waiting.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Waits until [`Mailer::wake`] is called (or a wake-up was pending).
    pub async fn woken(&self) {
        self.inner.wake.notified().await;
    }

    /// The sender of every message.
    pub(crate) fn sender(&self) -> &Mailbox {
        &self.inner.settings.from
    }

    /// The base of links, without a trailing slash.
    pub(crate) fn public_url(&self) -> &str {
        &self.inner.settings.public_url
    }

    /// Sends any message, telling a temporary failure (retry) from a permanent one.
    pub(crate) async fn send_message(&self, message: Message) -> Result<(), SendFailure> {
        match self.inner.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(SendFailure { permanent: e.is_permanent(), error: smtp_error(&e) }),
        }
    }

    /// Sends a reset message, telling a temporary failure (retry) from a permanent one.
    pub async fn send_reset(
        &self,
        to: &str,
        token: &SecretToken,
        expires_at: DateTime<Utc>,
    ) -> Result<(), SendFailure> {
        let message =
            self.reset_message(to, token, expires_at).map_err(|error| SendFailure { permanent: true, error })?;
        self.send_message(message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MailSettings {
        MailSettings::parse("smtp://127.0.0.1:2525", "Accounts <no-reply@example.com>", "https://auth.example.com/")
            .unwrap()
    }

    #[test]
    fn settings_are_checked_and_never_show_the_password() {
        assert!(MailSettings::parse("smtps://u:hunter2@smtp.example.com", "a@b.c", "x").is_ok());
        let err = MailSettings::parse("ftp://u:hunter2@x", "a@b.c", "x").unwrap_err().to_string();
        assert!(err.contains("smtp_url") && !err.contains("hunter2"), "{err}");
        let err = MailSettings::parse("smtp://x", "not a mailbox", "x").unwrap_err().to_string();
        assert!(err.contains("mail_from"), "{err}");
        let s = MailSettings::parse("smtp://u:hunter2@x:25", "a@b.c", "x").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn settings_errors_say_what_they_said_as_strings() {
        let err = MailSettings::parse("ftp://u:hunter2@x", "a@b.c", "x").unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "smtp_url {} is not an SMTP URL: use smtp://host:port (plain or ?tls=required for STARTTLS) or \
                 smtps://host:465 (TLS)",
                redact_url("ftp://u:hunter2@x")
            )
        );
        let err = MailSettings::parse("smtp://x", "not a mailbox", "x").unwrap_err().to_string();
        let cause = "not a mailbox".parse::<Mailbox>().unwrap_err();
        assert_eq!(
            err,
            format!("mail_from \"not a mailbox\" is not a mailbox like \"Accounts <no-reply@example.com>\": {cause}")
        );
        let raw = "smtp://u:hunter2@x:notaport";
        let err = MailSettings::parse(raw, "a@b.c", "x").unwrap_err().to_string();
        assert!(err.starts_with(&format!("smtp_url {} is not a valid SMTP URL: ", redact_url(raw))), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn reset_message_has_both_parts_the_link_and_the_token() {
        let mailer = Mailer::new(settings()).unwrap();
        let token = SecretToken::generate().unwrap();
        let expires = Utc::now();
        let raw =
            String::from_utf8(mailer.reset_message("bob@example.com", &token, expires).unwrap().formatted()).unwrap();
        assert!(raw.contains("Subject: Reset your password"), "{raw}");
        assert!(raw.contains("multipart/alternative") && raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("To: bob@example.com"));
        assert!(raw.contains("From: Accounts <no-reply@example.com>"));
    }
}
