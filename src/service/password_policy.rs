//! Common passwords (api.md §13, NIST SP 800-63B): a new password is refused when it is in the
//! built-in list, in the operator's `password_blocklist_file`, or equal to the account's email or
//! its local part. Compared after Unicode NFKC and lower-casing, so `PASSWORD` and the full-width
//! `ｐａｓｓｗｏｒｄ` are the same entry. Membership is one hash lookup; the built-in set is built
//! once, on first use.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use unicode_normalization::UnicodeNormalization;

/// The 30,000 most common passwords of the `zxcvbn` crate's frequency list (MIT licence, see
/// `data/common-passwords.LICENSE`), one per line.
const BUILT_IN_TEXT: &str = include_str!("../../data/common-passwords.txt");

static BUILT_IN: LazyLock<HashSet<String>> = LazyLock::new(|| entries(BUILT_IN_TEXT));

/// The form passwords are compared in: NFKC, lower case, NFKC again (lower-casing can leave a
/// string that is not in NFKC).
pub fn normalise(s: &str) -> String {
    s.nfkc().collect::<String>().to_lowercase().nfkc().collect()
}

fn entries(text: &str) -> HashSet<String> {
    text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()).map(normalise).collect()
}

/// How many entries the built-in list holds (after normalising, so duplicates count once).
pub fn built_in_len() -> usize {
    BUILT_IN.len()
}

/// The operator's list (`password_blocklist_file`), read once at start.
#[derive(Clone, Default)]
pub struct Blocklist {
    operator: Arc<HashSet<String>>,
}

impl std::fmt::Debug for Blocklist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blocklist({} operator entries)", self.operator.len())
    }
}

/// `password_blocklist_file` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("password_blocklist_file {}: {error}", path.display())]
pub struct BlocklistError {
    path: std::path::PathBuf,
    error: std::io::Error,
}

impl Blocklist {
    /// Reads one password per line; empty lines are skipped.
    pub fn read(path: &Path) -> Result<Self, BlocklistError> {
        let text = std::fs::read_to_string(path).map_err(|error| BlocklistError { path: path.to_path_buf(), error })?;
        Ok(Self { operator: Arc::new(entries(&text)) })
    }

    pub fn operator_len(&self) -> usize {
        self.operator.len()
    }

    /// Whether `password` may not be set for the account `email`.
    pub fn refuses(&self, password: &str, email: &str) -> bool {
        let p = normalise(password);
        if BUILT_IN.contains(&p) || self.operator.contains(&p) {
            return true;
        }
        let email = normalise(email);
        let local = email.rsplit_once('@').map_or(email.as_str(), |(l, _)| l);
        p == email || p == local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_list_is_large_and_case_insensitive() {
        assert!(built_in_len() >= 10_000, "{}", built_in_len());
        let b = Blocklist::default();
        for p in ["1qaz2wsx3edc", "qwerty123456", "123qweasdzxc"] {
            assert!(b.refuses(p, "a@b.c"), "{p}");
            assert!(b.refuses(&p.to_uppercase(), "a@b.c"), "{p}");
        }
        // Full-width forms fold to the same entry under NFKC.
        assert!(b.refuses("ｐａｓｓｗｏｒｄ", "a@b.c"));
        assert!(!b.refuses("violet staple orbit 4417", "a@b.c"));
    }

    #[test]
    fn email_and_local_part_are_refused() {
        let b = Blocklist::default();
        assert!(b.refuses("Margaret.Hamilton@example.com", "margaret.hamilton@example.com"));
        assert!(b.refuses("MARGARET.HAMILTON", "margaret.hamilton@example.com"));
        assert!(!b.refuses("margaret.hamilton1", "margaret.hamilton@example.com"));
    }
}
