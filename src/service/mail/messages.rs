//! The messages userauth sends, rendered from the askama templates in `templates/mail/`: each
//! template holds a message's plain-text part (block `text`) and its HTML part (block `html`).

use askama::Template;
use chrono::{DateTime, Utc};
use lettre::Address;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart, header::ContentType};

use super::{MailError, Mailer};
use crate::service::domain::SecretToken;
use crate::service::rfc3339;

/// The messages that carry a link with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMessage {
    /// The reset message (api.md §7): the link to the reset page, and the token itself.
    Reset,
    /// The confirmation message (api.md §13): the link to the confirm page (a button there confirms).
    Verification,
}

/// The reset message (api.md §7): the link, the token and its expiry.
#[derive(Template)]
#[template(path = "mail/reset.html", blocks = ["text", "html"])]
struct Reset<'a> {
    to: &'a str,
    link: &'a str,
    token: &'a str,
    expiry: &'a str,
}

/// The confirmation message (api.md §13): the link to the confirm page and its expiry.
#[derive(Template)]
#[template(path = "mail/verification.html", blocks = ["text", "html"])]
struct Verification<'a> {
    to: &'a str,
    link: &'a str,
    expiry: &'a str,
}

/// The notice to the owner of an address someone tried to register again.
#[derive(Template)]
#[template(path = "mail/notice.html", blocks = ["text", "html"])]
struct Notice<'a> {
    to: &'a str,
    base: &'a str,
}

/// `userauth mail-test`'s message.
#[derive(Template)]
#[template(path = "mail/test.txt")]
struct Test<'a> {
    base: &'a str,
}

fn rendered(r: askama::Result<String>) -> Result<String, MailError> {
    r.map_err(|e| MailError::Build(e.to_string()))
}

fn mailbox(to: &str) -> Result<Mailbox, MailError> {
    let address: Address = to.parse().map_err(|_| MailError::Address(to.to_owned()))?;
    Ok(Mailbox::new(None, address))
}

impl Mailer {
    /// A message to `to` with a plain-text and an HTML part.
    fn alternative(&self, to: &str, subject: &str, text: String, html: String) -> Result<Message, MailError> {
        Message::builder()
            .from(self.sender().clone())
            .to(mailbox(to)?)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| MailError::Build(e.to_string()))
    }

    /// The reset message for `to`: a text and an HTML part with the link, the token and its expiry.
    pub fn reset_message(
        &self,
        to: &str,
        token: &SecretToken,
        expires_at: DateTime<Utc>,
    ) -> Result<Message, MailError> {
        self.link_message(LinkMessage::Reset, to, token, expires_at)
    }

    /// A message whose link carries `token`, with the token's expiry.
    pub fn link_message(
        &self,
        kind: LinkMessage,
        to: &str,
        token: &SecretToken,
        expires_at: DateTime<Utc>,
    ) -> Result<Message, MailError> {
        let expiry = rfc3339(expires_at);
        let (subject, text, html) = match kind {
            LinkMessage::Reset => {
                let link = format!("{}/reset?token={}", self.public_url(), token.expose());
                let m = Reset { to, link: &link, token: token.expose(), expiry: &expiry };
                ("Reset your password", m.as_text().render(), m.as_html().render())
            }
            LinkMessage::Verification => {
                let link = format!("{}/verify?token={}", self.public_url(), token.expose());
                let m = Verification { to, link: &link, expiry: &expiry };
                ("Confirm your email address", m.as_text().render(), m.as_html().render())
            }
        };
        self.alternative(to, subject, rendered(text)?, rendered(html)?)
    }

    /// The notice to the owner of an address someone tried to register again. It carries no link.
    pub fn notice_message(&self, to: &str) -> Result<Message, MailError> {
        let m = Notice { to, base: self.public_url() };
        let (text, html) = (rendered(m.as_text().render())?, rendered(m.as_html().render())?);
        self.alternative(to, "Someone tried to register with your address", text, html)
    }

    /// A short message that proves the setup works (`userauth mail-test`).
    pub fn test_message(&self, to: &str) -> Result<Message, MailError> {
        Message::builder()
            .from(self.sender().clone())
            .to(mailbox(to)?)
            .subject("userauth mail test")
            .header(ContentType::TEXT_PLAIN)
            .body(rendered(Test { base: self.public_url() }.render())?)
            .map_err(|e| MailError::Build(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::mail::MailSettings;

    fn mailer() -> Mailer {
        let settings = MailSettings::parse(
            "smtp://127.0.0.1:2525",
            "Accounts <no-reply@example.com>",
            "https://auth.example.com/",
        );
        Mailer::new(settings.unwrap()).unwrap()
    }

    #[test]
    fn the_text_part_is_written_as_is_and_the_html_part_escaped() {
        let m = Notice { to: "a<b>&'\"c@example.com", base: "https://x" };
        assert!(m.as_text().render().unwrap().contains("address a<b>&'\"c@example.com, which"));
        assert!(m.as_html().render().unwrap().contains("address a&#60;b&#62;&#38;&#39;&#34;c@example.com, which"));
    }

    /// A message as sent, but for what changes from one build of it to the next (the Date and
    /// Message-ID headers and the MIME boundary).
    fn normalised(message: Message) -> String {
        let raw = String::from_utf8(message.formatted()).unwrap();
        let boundary = raw.split("boundary=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned);
        let mut out: String = raw
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("Date: ") && !l.starts_with("Message-ID: "))
            .map(|l| l.replace("\r\n", "\n"))
            .collect();
        if let Some(b) = boundary {
            out = out.replace(&b, "BOUNDARY");
        }
        out
    }

    /// The messages byte for byte as they were when written with `format!` (captured before the
    /// switch to templates; askama drops one final newline of a template file, hence the blank
    /// last line of `test.txt`).
    #[test]
    fn messages_are_byte_identical_to_the_captured_ones() {
        let mailer = mailer();
        let token = SecretToken::from_outbox("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into());
        let expires = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let got = [
            normalised(mailer.reset_message("o'brien@example.com", &token, expires).unwrap()),
            normalised(mailer.test_message("bob@example.com").unwrap()),
            normalised(mailer.link_message(LinkMessage::Verification, "bob@example.com", &token, expires).unwrap()),
            normalised(mailer.notice_message("bob@example.com").unwrap()),
        ];
        assert_eq!(got, GOLDEN);
    }

    /// Captured from the `format!` version, with CRLF as LF (see `normalised`).
    const GOLDEN: [&str; 4] = [
        include_str!("golden/reset.eml"),
        include_str!("golden/test.eml"),
        include_str!("golden/verification.eml"),
        include_str!("golden/notice.eml"),
    ];
}
