//! The server key (api.md §14): 32 random bytes that every instance on one database shares. It
//! encrypts what must be readable again later (TOTP secrets, queued emails) and keys the digests
//! that must not be recomputable from a copy of the database alone (CSRF tokens, recovery codes,
//! the audit chain). Each use gets its own subkey (HMAC of the key with a purpose label), so a
//! value made for one purpose is never accepted for another.
//!
//! Loading from configuration (`key_file`, `key`), the fingerprint stored in the database and the
//! permission checks live with the configuration and the database code; this file is the key itself.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Length of the key in bytes.
pub const KEY_LEN: usize = 32;
/// First byte of every ciphertext: the format, so a later change of cipher can read old values.
const CIPHERTEXT_V1: u8 = 1;
const NONCE_LEN: usize = 24;

type HmacSha256 = Hmac<Sha256>;

/// Why a key could not be loaded or a ciphertext not opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("key file {path} is readable by group or others (mode {mode:o}); run: chmod 600 {path}")]
    Permissions { path: String, mode: u32 },
    #[error("key file {path} holds {len} bytes; a server key is exactly 32 random bytes")]
    Length { path: String, len: usize },
    #[error("key: not base64 of 32 bytes")]
    Base64,
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("a stored ciphertext does not open with this server key (wrong key, or the value was altered)")]
    Decrypt,
}

/// The 32-byte server key. Its bytes are wiped when dropped and never printed.
#[derive(Clone)]
pub struct ServerKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKey({})", self.fingerprint())
    }
}

impl ServerKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes: Zeroizing::new(bytes) }
    }

    /// A fresh key from the OS random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// The `key` configuration value: base64 (standard or URL-safe, padding optional) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| KeyError::Base64)?,
        );
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| KeyError::Base64)?;
        Ok(Self::from_bytes(bytes))
    }

    /// Reads the key file, refusing one that group or others can read. With `create`, a missing
    /// file is created with mode 0600 and a fresh key (never overwriting one that appeared
    /// meanwhile: `create_new`).
    pub fn load_file(path: &Path, create: bool) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let io = |source| KeyError::Io { path: shown.clone(), source };
        match std::fs::metadata(path) {
            Ok(meta) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = meta.permissions().mode() & 0o777;
                    if mode & 0o077 != 0 {
                        return Err(KeyError::Permissions { path: shown, mode });
                    }
                }
                let _ = meta;
                let data = Zeroizing::new(std::fs::read(path).map_err(io)?);
                let bytes: [u8; KEY_LEN] = data
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::Length { path: shown.clone(), len: data.len() })?;
                Ok(Self::from_bytes(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = Self::generate()?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                match options.open(path) {
                    Ok(mut file) => {
                        file.write_all(key.bytes.as_slice()).map_err(io)?;
                        file.sync_all().map_err(io)?;
                        Ok(key)
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_file(path, false),
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A subkey for one purpose: HMAC-SHA-256(key, "userauth/" ‖ purpose).
    fn subkey(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.bytes.as_slice()).expect("HMAC takes any key length");
        mac.update(b"userauth/");
        mac.update(purpose.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// What the database stores and error messages show to tell keys apart without revealing
    /// them: 16 hex digits of a subkey.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.subkey("fingerprint")[..8])
    }

    /// A keyed digest (HMAC-SHA-256 under the purpose's subkey). Use it for values that are looked
    /// up or compared (recovery codes, CSRF tokens, audit links).
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let sub = self.subkey(purpose);
        let mut mac = <HmacSha256 as Mac>::new_from_slice(sub.as_slice()).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Checks `tag` against the keyed digest of `data`, in constant time.
    pub fn verify_mac(&self, purpose: &str, data: &[u8], tag: &[u8]) -> bool {
        let sub = self.subkey(purpose);
        let mut mac = <HmacSha256 as Mac>::new_from_slice(sub.as_slice()).expect("HMAC takes any key length");
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }

    /// Encrypts `plaintext` for `purpose` (XChaCha20-Poly1305 with a random nonce; the purpose is
    /// the associated data, so a ciphertext made for one purpose does not open as another).
    /// Layout: version byte ‖ 24-byte nonce ‖ ciphertext and tag.
    pub fn encrypt(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let sub = self.subkey("encryption");
        let cipher = XChaCha20Poly1305::new_from_slice(sub.as_slice()).map_err(|_| KeyError::Decrypt)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: purpose.as_bytes() })
            .map_err(|_| KeyError::Decrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(CIPHERTEXT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`ServerKey::encrypt`] made for the same purpose. The plaintext is wiped when dropped.
    pub fn decrypt(&self, purpose: &str, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if data.len() < 1 + NONCE_LEN || data[0] != CIPHERTEXT_V1 {
            return Err(KeyError::Decrypt);
        }
        let sub = self.subkey("encryption");
        let cipher = XChaCha20Poly1305::new_from_slice(sub.as_slice()).map_err(|_| KeyError::Decrypt)?;
        let (nonce, sealed) = data[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyError::Decrypt)?;
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: purpose.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ServerKey {
        ServerKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn encryption_round_trips_and_binds_key_and_purpose() {
        let k = key(1);
        let sealed = k.encrypt("totp", b"secret bytes").unwrap();
        assert_eq!(k.decrypt("totp", &sealed).unwrap().as_slice(), b"secret bytes");
        assert!(matches!(k.decrypt("outbox", &sealed), Err(KeyError::Decrypt)));
        assert!(matches!(key(2).decrypt("totp", &sealed), Err(KeyError::Decrypt)));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(k.decrypt("totp", &tampered), Err(KeyError::Decrypt)));
        assert!(matches!(k.decrypt("totp", &sealed[..10]), Err(KeyError::Decrypt)));
        // A random nonce each time: the same plaintext never gives the same ciphertext.
        assert_ne!(sealed, k.encrypt("totp", b"secret bytes").unwrap());
        assert!(!sealed.windows(12).any(|w| w == b"secret bytes"));
    }

    #[test]
    fn macs_depend_on_key_and_purpose() {
        let a = key(1).mac("csrf", b"x");
        assert_eq!(a, key(1).mac("csrf", b"x"));
        assert_ne!(a, key(2).mac("csrf", b"x"));
        assert_ne!(a, key(1).mac("audit", b"x"));
        assert!(key(1).verify_mac("csrf", b"x", &a));
        assert!(!key(1).verify_mac("csrf", b"y", &a));
        assert_ne!(key(1).fingerprint(), key(2).fingerprint());
        assert_eq!(key(1).fingerprint().len(), 16);
    }

    #[test]
    fn base64_forms_are_accepted_and_wrong_lengths_refused() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(ServerKey::from_base64(&b64).unwrap().fingerprint(), key(7).fingerprint());
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_eq!(ServerKey::from_base64(&url).unwrap().fingerprint(), key(7).fingerprint());
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        assert!(matches!(ServerKey::from_base64(&short), Err(KeyError::Base64)));
        assert!(matches!(ServerKey::from_base64("not base64!"), Err(KeyError::Base64)));
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_private_and_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("userauth.key");
        assert!(matches!(ServerKey::load_file(&path, false), Err(KeyError::Io { .. })));
        let created = ServerKey::load_file(&path, true).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        assert_eq!(ServerKey::load_file(&path, true).unwrap().fingerprint(), created.fingerprint());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = ServerKey::load_file(&path, false).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { mode: 0o640, .. }), "{err}");
        assert!(err.to_string().contains("userauth.key"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(ServerKey::load_file(&path, false), Err(KeyError::Length { len: 5, .. })));
    }
}
