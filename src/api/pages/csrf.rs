//! CSRF tokens for the pages (api.md §8, §14): keyed with the server key and, once logged in,
//! bound to the session.
//!
//! token = HMAC-SHA-256(K, binding ‖ 0 ‖ secret), K derived from the server key for this purpose
//! only. The secret is one the browser holds in an HttpOnly cookie that a cross-site page cannot
//! read: the session token when a session cookie is present, otherwise a random pre-session
//! `csrf` cookie. With a session cookie present *only* the session-bound token is accepted, so an
//! attacker who plants `csrf=<known>` beside a real session gains nothing; an empty or malformed
//! secret is never accepted; and a failing random source sets no cookie and yields an empty token
//! that no post can match (fail closed). Stateless, so it works across instances that share the key.

use hmac::{Hmac, Mac};
use rocket::http::{Cookie, CookieJar, SameSite};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::api::guard::SESSION_COOKIE;
use crate::service::domain::SecretToken;
use crate::service::key::ServerKey;

pub const PRE_SESSION_COOKIE: &str = "csrf";

/// The key for CSRF tokens, derived from the server key (never printed).
#[derive(Clone)]
pub struct CsrfKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

/// What a token is bound to.
#[derive(Clone, Copy)]
enum Binding {
    Session,
    PreSession,
}

impl CsrfKey {
    pub fn new(key: &ServerKey) -> Self {
        Self(Zeroizing::new(key.mac("csrf", b"userauth page form tokens")))
    }

    fn token(&self, binding: Binding, secret: &str) -> String {
        let tag: &[u8] = match binding {
            Binding::Session => b"session",
            Binding::PreSession => b"pre-session",
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice()).expect("HMAC takes any key length");
        mac.update(tag);
        mac.update(&[0]);
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn matches(&self, binding: Binding, secret: &str, sent: &str) -> bool {
        crate::api::protect::secrets_equal(sent, &self.token(binding, secret))
    }
}

/// A secret as this service makes them (64 hex digits): an empty or planted short cookie is not one.
fn well_formed(secret: &str) -> bool {
    secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The token for the forms of this request, minting the pre-session cookie when needed.
pub fn form_token(jar: &CookieJar<'_>, key: &CsrfKey, cookie_secure: bool, cookie_domain: Option<&str>) -> String {
    form_token_with(jar, key, cookie_secure, cookie_domain, SecretToken::generate)
}

/// The same with the random source given (tests make it fail). An empty string means no token
/// could be made: the form then cannot be posted.
pub fn form_token_with(
    jar: &CookieJar<'_>,
    key: &CsrfKey,
    cookie_secure: bool,
    cookie_domain: Option<&str>,
    generate: impl FnOnce() -> Result<SecretToken, getrandom::Error>,
) -> String {
    if let Some(session) = jar.get(SESSION_COOKIE) {
        return if well_formed(session.value()) { key.token(Binding::Session, session.value()) } else { String::new() };
    }
    if let Some(pre) = jar.get(PRE_SESSION_COOKIE).filter(|c| well_formed(c.value())) {
        return key.token(Binding::PreSession, pre.value());
    }
    let secret = match generate() {
        Ok(t) => t.expose().to_owned(),
        Err(e) => {
            tracing::error!(error = %e, "the random source failed: no CSRF token, the form cannot be posted");
            return String::new();
        }
    };
    let mut cookie = Cookie::build((PRE_SESSION_COOKIE, secret.clone()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(cookie_secure)
        .build();
    // `cookie_domain` (api.md §12) applies to every cookie we set.
    if let Some(domain) = cookie_domain {
        cookie.set_domain(domain.to_owned());
    }
    jar.add(cookie);
    key.token(Binding::PreSession, &secret)
}

/// Whether `sent` is the token for this browser: bound to the session when a session cookie is
/// present (and then nothing else counts), otherwise to the pre-session cookie.
pub fn check(jar: &CookieJar<'_>, key: &CsrfKey, sent: Option<&str>) -> bool {
    let Some(sent) = sent.filter(|s| !s.is_empty()) else { return false };
    if let Some(session) = jar.get(SESSION_COOKIE) {
        return well_formed(session.value()) && key.matches(Binding::Session, session.value(), sent);
    }
    jar.get(PRE_SESSION_COOKIE)
        .is_some_and(|pre| well_formed(pre.value()) && key.matches(Binding::PreSession, pre.value(), sent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::http::Status;
    use rocket::local::blocking::Client;

    fn key() -> CsrfKey {
        CsrfKey::new(&ServerKey::generate().unwrap())
    }

    #[rocket::get("/failing")]
    fn failing(jar: &CookieJar<'_>, key: &rocket::State<CsrfKey>) -> String {
        form_token_with(jar, key, false, None, || Err(getrandom::Error::UNSUPPORTED))
    }

    #[rocket::post("/check?<t>")]
    fn checked(jar: &CookieJar<'_>, key: &rocket::State<CsrfKey>, t: Option<&str>) -> Status {
        if check(jar, key, t) { Status::Ok } else { Status::Forbidden }
    }

    /// A failing random source sets no cookie and gives an empty token, which never passes.
    #[test]
    fn a_failing_random_source_fails_closed() {
        let rocket = rocket::build().manage(key()).mount("/", rocket::routes![failing, checked]);
        let client = Client::untracked(rocket).unwrap();
        let r = client.get("/failing").dispatch();
        assert!(r.headers().get_one("Set-Cookie").is_none(), "no pre-session cookie without randomness");
        assert_eq!(r.into_string().unwrap(), "");
        assert_eq!(client.post("/check?t=").dispatch().status(), Status::Forbidden);
        assert_eq!(client.post("/check").dispatch().status(), Status::Forbidden);
        assert_eq!(
            client.post("/check?t=").cookie(rocket::http::Cookie::new("csrf", "")).dispatch().status(),
            Status::Forbidden
        );
    }

    #[test]
    fn tokens_are_keyed_and_bound() {
        let (a, b) = (key(), key());
        let secret = "ab".repeat(32);
        assert_ne!(a.token(Binding::PreSession, &secret), b.token(Binding::PreSession, &secret), "keyed");
        assert_ne!(a.token(Binding::PreSession, &secret), a.token(Binding::Session, &secret), "bound");
        assert!(a.matches(Binding::Session, &secret, &a.token(Binding::Session, &secret)));
        assert!(!well_formed("") && !well_formed("attacker") && well_formed(&secret));
    }
}
