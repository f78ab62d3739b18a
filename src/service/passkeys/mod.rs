//! Passkeys (api.md §11): WebAuthn registration and passwordless login, on webauthn-rs.
//!
//! Ceremony state lives in `passkey_challenges` (serialised with webauthn-rs'
//! `danger-allow-state-serialisation`), keyed by the SHA-256 of a random challenge id that only the
//! client holds: any instance can finish what another started, each challenge is claimed by one
//! atomic delete (single use) and expires after [`CHALLENGE_TTL`]. Credentials are discoverable
//! (the login needs no email) and user verification is required, so a passkey is both factors.

mod challenges;
mod login;
mod registration;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use uuid::Uuid;
use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

pub use challenges::CHALLENGE_TTL;

use super::audit::{EventKind, NewEvent};
use super::{AuthError, AuthService};
use crate::entity::{passkey, passkey_challenge, user};

/// The longest passkey name, in characters.
pub const NAME_MAX_CHARS: usize = 64;

/// Why `public_url` cannot be the relying party; each message names the key and its value.
#[derive(Debug, thiserror::Error)]
pub enum RelyingPartyError {
    #[error("public_url {url:?}: {error}")]
    Url { url: String, error: url::ParseError },
    #[error("public_url {url:?} has no domain name (an IP address cannot hold passkeys)")]
    NoDomain { url: String },
    #[error("public_url {url:?}: {error}")]
    Webauthn { url: String, error: webauthn_rs::prelude::WebauthnError },
}

/// The relying party: id = the host of `public_url`, origin = `public_url`'s origin.
pub struct RelyingParty {
    webauthn: Webauthn,
    id: String,
    origin: String,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelyingParty({} at {})", self.id, self.origin)
    }
}

impl RelyingParty {
    /// From the service's public URL (`public_url`, or `http://localhost:<port>`). An IP-literal host
    /// cannot be a relying-party id (browsers refuse it): that is an error, which `doctor` reports.
    pub fn from_public_url(public_url: &str) -> Result<Self, RelyingPartyError> {
        let url = |error| RelyingPartyError::Url { url: public_url.to_owned(), error };
        let parsed = Url::parse(public_url).map_err(url)?;
        let Some(host) = parsed.domain().map(str::to_owned) else {
            return Err(RelyingPartyError::NoDomain { url: public_url.to_owned() });
        };
        let origin = parsed.origin().ascii_serialization();
        let origin_url = Url::parse(&origin).map_err(url)?;
        let webauthn = WebauthnBuilder::new(&host, &origin_url)
            .and_then(|b| b.rp_name("userauth").build())
            .map_err(|error| RelyingPartyError::Webauthn { url: public_url.to_owned(), error })?;
        Ok(Self { webauthn, id: host, origin })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// A passkey as its owner sees it: never the key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<passkey::Model> for PasskeyInfo {
    fn from(m: passkey::Model) -> Self {
        Self { id: m.id, name: m.name, created_at: m.created_at, last_used_at: m.last_used_at }
    }
}

/// A started ceremony: the id the client sends back, and the options for
/// `navigator.credentials.create/get` (`PublicKeyCredentialCreation/RequestOptions` as JSON).
#[derive(Debug)]
pub struct Challenge {
    pub challenge_id: String,
    pub options: serde_json::Value,
}

fn cred_id_text(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// A passkey name: trimmed, 1 to 64 characters, no control characters.
pub fn parse_name(raw: &str) -> Result<String, AuthError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(AuthError::InvalidPasskeyName(format!(
            "a passkey name has 1 to {NAME_MAX_CHARS} characters and no control characters"
        )));
    }
    Ok(name.to_owned())
}

/// `SELECT COUNT(*) FROM passkeys WHERE user_id = users.id`, for `user list`'s `factors`.
pub(super) fn passkey_count_query() -> sea_orm::sea_query::SelectStatement {
    use sea_orm::ExprTrait;
    use sea_orm::sea_query::Query;
    Query::select()
        .expr(Expr::col((passkey::Entity, passkey::Column::Id)).count())
        .from(passkey::Entity)
        .and_where(Expr::col((passkey::Entity, passkey::Column::UserId)).equals((user::Entity, user::Column::Id)))
        .to_owned()
}

impl AuthService {
    /// The same service with passkeys for this relying party (without one, passkey calls answer
    /// `PasskeysUnavailable`).
    pub fn with_relying_party(mut self, rp: Option<Arc<RelyingParty>>) -> Self {
        self.passkeys = rp;
        self
    }

    pub fn relying_party(&self) -> Option<&RelyingParty> {
        self.passkeys.as_deref()
    }

    fn rp(&self) -> Result<&Webauthn, AuthError> {
        self.passkeys.as_deref().map(|rp| &rp.webauthn).ok_or(AuthError::PasskeysUnavailable)
    }

    /// The user's passkeys, oldest first (for `GET /api/v1/passkeys`, pages and `user factors`).
    pub async fn list_passkeys(&self, user_id: Uuid) -> Result<Vec<PasskeyInfo>, AuthError> {
        let rows = passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user_id))
            .order_by_asc(passkey::Column::CreatedAt)
            .order_by_asc(passkey::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(PasskeyInfo::from).collect())
    }

    /// Whether the user has a passkey (a login then offers `"passkey"` among the second factors).
    pub async fn has_passkeys(&self, user_id: Uuid) -> Result<bool, AuthError> {
        Ok(passkey::Entity::find().filter(passkey::Column::UserId.eq(user_id)).count(&self.db).await? > 0)
    }

    /// The caller's passkeys.
    pub async fn my_passkeys(&self, session: &str) -> Result<Vec<PasskeyInfo>, AuthError> {
        let caller = self.authenticate(session).await?;
        self.list_passkeys(caller.id).await
    }

    /// Removes one of the caller's passkeys (`PasskeyNotFound` for anyone else's).
    pub async fn remove_passkey(&self, session: &str, id: Uuid) -> Result<(), AuthError> {
        let caller = self.authenticate(session).await?;
        let txn = self.db.begin().await?;
        let removed = passkey::Entity::delete_many()
            .filter(passkey::Column::UserId.eq(caller.id))
            .filter(passkey::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        if removed.rows_affected == 0 {
            return Err(AuthError::PasskeyNotFound);
        }
        self.audit_in(&txn, vec![NewEvent::new(EventKind::PasskeyRemoved, Some(caller.id), &caller.email)]).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Removes every passkey of the user, and their registrations in progress, in the caller's
    /// transaction (`user factors --reset`). Returns how many passkeys were removed.
    pub async fn remove_all_passkeys<C: ConnectionTrait>(&self, txn: &C, user_id: Uuid) -> Result<u64, DbErr> {
        passkey_challenge::Entity::delete_many()
            .filter(passkey_challenge::Column::UserId.eq(user_id))
            .exec(txn)
            .await?;
        Ok(passkey::Entity::delete_many().filter(passkey::Column::UserId.eq(user_id)).exec(txn).await?.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_party_errors_name_the_key_and_its_value() {
        let ip = RelyingParty::from_public_url("http://127.0.0.1:8000").unwrap_err().to_string();
        assert_eq!(ip, "public_url \"http://127.0.0.1:8000\" has no domain name (an IP address cannot hold passkeys)");
        let bad = RelyingParty::from_public_url("not a url").unwrap_err().to_string();
        assert_eq!(bad, format!("public_url \"not a url\": {}", Url::parse("not a url").unwrap_err()));
        let rp = RelyingParty::from_public_url("https://auth.example.com:8443/base/").unwrap();
        assert_eq!((rp.id(), rp.origin()), ("auth.example.com", "https://auth.example.com:8443"));
    }
}
