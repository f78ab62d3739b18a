//! Domain types that can only be built by parsing: holding one proves the input met api.md §3.

use std::fmt;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// api.md §3: at most 254 bytes.
pub const EMAIL_MAX_BYTES: usize = 254;
/// bcrypt reads at most 72 bytes; longer passwords are refused, never truncated.
pub const PASSWORD_MAX_BYTES: usize = 72;

/// A normalised email address: trimmed, lower-cased, one `@`, non-empty local part and domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email is empty")]
    Empty,
    #[error("email is longer than {EMAIL_MAX_BYTES} bytes")]
    TooLong,
    #[error("email must contain exactly one '@'")]
    At,
    #[error("email needs a non-empty local part and domain")]
    EmptyPart,
    #[error("email must not contain spaces or control characters")]
    BadCharacter,
    #[error("email must not contain invisible formatting characters (zero-width or bidi controls)")]
    FormatCharacter,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        // Check the length before lower-casing, which can grow a string, to bound the work.
        if trimmed.len() > EMAIL_MAX_BYTES {
            return Err(EmailError::TooLong);
        }
        let email = trimmed.to_lowercase();
        if email.len() > EMAIL_MAX_BYTES {
            return Err(EmailError::TooLong);
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::BadCharacter);
        }
        // Unicode category Cf (zero-width joiners, bidi overrides, soft hyphens…) renders as
        // nothing or reorders text: "alice@example.com" and a copy with a U+200B inside would look
        // identical to a person while being two accounts.
        if email.chars().any(|c| c.general_category() == GeneralCategory::Format) {
            return Err(EmailError::FormatCharacter);
        }
        let mut parts = email.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::At);
        };
        if local.is_empty() || domain.is_empty() {
            return Err(EmailError::EmptyPart);
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that meets the policy. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {0} characters long")]
    TooShort(usize),
    #[error("password must be at most {PASSWORD_MAX_BYTES} bytes in UTF-8")]
    TooLong,
}

impl Password {
    /// `min_chars` counts Unicode scalar values; the upper bound is bcrypt's 72 bytes.
    pub fn parse(raw: String, min_chars: usize) -> Result<Self, PasswordError> {
        if raw.len() > PASSWORD_MAX_BYTES {
            return Err(PasswordError::TooLong);
        }
        if raw.chars().count() < min_chars {
            return Err(PasswordError::TooShort(min_chars));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A session or reset token as handed to the client. Only its hash is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// 256 bits from the OS CSPRNG, hex-encoded.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(hex::encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A token read back from the (encrypted) mail outbox.
    pub(crate) fn from_outbox(raw: String) -> Self {
        Self(raw)
    }

    pub fn digest(&self) -> String {
        token_digest(&self.0)
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

/// SHA-256 (hex) of a presented token, or `None` when it cannot be one of ours. Rejecting
/// malformed values here keeps hostile cookies (huge, binary) away from the database.
pub fn presented_token_digest(presented: &str) -> Option<String> {
    let ok = presented.len() == 64 && presented.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| token_digest(&presented.to_ascii_lowercase()))
}

fn token_digest(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let e = Email::parse("  Alice@Example.COM \n").unwrap();
        assert_eq!(e.as_str(), "alice@example.com");
    }

    #[test]
    fn email_rejects_malformed() {
        assert_eq!(Email::parse(""), Err(EmailError::Empty));
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
        assert_eq!(Email::parse("no-at-sign"), Err(EmailError::At));
        assert_eq!(Email::parse("a@b@c"), Err(EmailError::At));
        assert_eq!(Email::parse("@example.com"), Err(EmailError::EmptyPart));
        assert_eq!(Email::parse("alice@"), Err(EmailError::EmptyPart));
        assert_eq!(Email::parse("al ice@example.com"), Err(EmailError::BadCharacter));
        assert_eq!(Email::parse("al\0ice@example.com"), Err(EmailError::BadCharacter));
    }

    #[test]
    fn email_rejects_invisible_format_characters() {
        for c in ['\u{200B}', '\u{200D}', '\u{202E}', '\u{2066}', '\u{FEFF}', '\u{00AD}', '\u{E0041}'] {
            let raw = format!("ali{c}ce@example.com");
            assert_eq!(Email::parse(&raw), Err(EmailError::FormatCharacter), "U+{:04X}", c as u32);
        }
        // Letters from other scripts stay allowed.
        assert!(Email::parse("أحمد@example.com").is_ok());
    }

    #[test]
    fn email_length_limit_is_254_bytes() {
        let ok = format!("{}@example.com", "a".repeat(254 - 12));
        assert_eq!(ok.len(), 254);
        assert!(Email::parse(&ok).is_ok());
        let long = format!("{}@example.com", "a".repeat(254 - 11));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
        assert_eq!(Email::parse(&"a".repeat(10_000)), Err(EmailError::TooLong));
    }

    #[test]
    fn unicode_email_is_lowercased() {
        assert_eq!(Email::parse("ÉLODIE@Exemple.fr").unwrap().as_str(), "élodie@exemple.fr");
    }

    #[test]
    fn password_policy() {
        assert_eq!(Password::parse("short".into(), 12), Err(PasswordError::TooShort(12)));
        assert!(Password::parse("twelve chars".into(), 12).is_ok());
        // 12 scalar values but 24 bytes: length counts characters, not bytes.
        assert!(Password::parse("éééééééééééé".into(), 12).is_ok());
        assert!(Password::parse("a".repeat(72), 12).is_ok());
        assert_eq!(Password::parse("a".repeat(73), 12), Err(PasswordError::TooLong));
        // 36 two-byte characters = 72 bytes: accepted; one more byte is refused.
        assert!(Password::parse("é".repeat(36), 12).is_ok());
        assert_eq!(Password::parse(format!("{}a", "é".repeat(36)), 12), Err(PasswordError::TooLong));
    }

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::parse("correct horse battery".into(), 12).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn tokens_are_random_hex_and_digests_match() {
        let a = SecretToken::generate().unwrap();
        let b = SecretToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert_eq!(presented_token_digest(a.expose()), Some(a.digest()));
        assert_ne!(a.digest(), a.expose());
        assert!(!format!("{a:?}").contains(a.expose()));
        assert_eq!(presented_token_digest("not-a-token"), None);
        assert_eq!(presented_token_digest(&"g".repeat(64)), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn email_parse_never_panics_and_normalises(raw in "\\PC{0,300}") {
                if let Ok(e) = Email::parse(&raw) {
                    let s = e.as_str();
                    prop_assert!(s.len() <= EMAIL_MAX_BYTES);
                    prop_assert_eq!(s.matches('@').count(), 1);
                    prop_assert_eq!(s, s.trim());
                    prop_assert_eq!(Email::parse(s).unwrap(), e.clone());
                }
            }

            #[test]
            fn plausible_emails_parse(local in "[a-zA-Z0-9._%+-]{1,64}", domain in "[a-zA-Z0-9.-]{1,100}") {
                let e = Email::parse(&format!(" {local}@{domain} ")).unwrap();
                prop_assert_eq!(e.as_str(), format!("{local}@{domain}").to_lowercase());
            }

            #[test]
            fn password_policy_is_exactly_length(raw in "\\PC{0,100}", min in 1usize..20) {
                let ok = raw.len() <= PASSWORD_MAX_BYTES && raw.chars().count() >= min;
                prop_assert_eq!(Password::parse(raw.clone(), min).is_ok(), ok);
            }

            #[test]
            fn presented_tokens_never_panic(raw in "\\PC{0,200}") {
                let _ = presented_token_digest(&raw);
            }
        }
    }
}
