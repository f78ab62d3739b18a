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

    const GOLDEN: [&str; 4] = [
        r#"From: Accounts <no-reply@example.com>
To: o'brien@example.com
Subject: Reset your password
MIME-Version: 1.0
Content-Type: multipart/alternative;
 boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Someone asked to reset the password of the account o'brien@example.com.

Choose a new password here:
https://auth.example.com/reset?token=3D0123456789abcdef0123456789abcdef0123=
456789abcdef0123456789abcdef

Or use this reset token: 0123456789abcdef0123456789abcdef0123456789abcdef01=
23456789abcdef
It works once and expires at 2027-01-15T08:00:00Z.

If you did not ask for this, ignore this message: your password stays as it=
 is.

--BOUNDARY
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<!doctype html><html><body><p>Someone asked to reset the password of the ac=
count o&#39;brien@example.com.</p><p><a href=3D"https://auth.example.com/re=
set?token=3D0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde=
f">Choose a new password</a></p><p>Or use this reset token: <code>012345678=
9abcdef0123456789abcdef0123456789abcdef0123456789abcdef</code><br>It works =
once and expires at 2027-01-15T08:00:00Z.</p><p>If you did not ask for this=
, ignore this message: your password stays as it is.</p></body></html>
--BOUNDARY--
"#,
        r#"From: Accounts <no-reply@example.com>
To: bob@example.com
Subject: userauth mail test
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

This is a test message from userauth. Reset links will point to https://aut=
h.example.com/reset.
"#,
        r#"From: Accounts <no-reply@example.com>
To: bob@example.com
Subject: Confirm your email address
MIME-Version: 1.0
Content-Type: multipart/alternative;
 boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Someone registered an account with the address bob@example.com.

To confirm that this address is yours, open this page and press "Confirm":
https://auth.example.com/verify?token=3D0123456789abcdef0123456789abcdef012=
3456789abcdef0123456789abcdef

The link works once and expires at 2027-01-15T08:00:00Z.

If you did not register, ignore this message: the account stays unconfirmed.

--BOUNDARY
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<!doctype html><html><body><p>Someone registered an account with the addres=
s bob@example.com.</p><p><a href=3D"https://auth.example.com/verify?token=
=3D0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef">Confir=
m your email address</a> (the page has a button to press).</p><p>The link w=
orks once and expires at 2027-01-15T08:00:00Z.</p><p>If you did not registe=
r, ignore this message: the account stays unconfirmed.</p></body></html>
--BOUNDARY--
"#,
        r#"From: Accounts <no-reply@example.com>
To: bob@example.com
Subject: Someone tried to register with your address
MIME-Version: 1.0
Content-Type: multipart/alternative;
 boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Someone tried to register a new account with the address bob@example.com, w=
hich already has one.

Nothing was changed. If it was you, log in at https://auth.example.com/logi=
n (or reset your password at https://auth.example.com/forgot). If it was no=
t, you can ignore this message.

--BOUNDARY
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<!doctype html><html><body><p>Someone tried to register a new account with =
the address bob@example.com, which already has one.</p><p>Nothing was chang=
ed. If it was you, log in or reset your password on the site. If it was not=
, you can ignore this message.</p></body></html>
--BOUNDARY--
"#,
    ];
}
