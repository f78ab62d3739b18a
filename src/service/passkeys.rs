//! Passkeys (api.md §11): WebAuthn registration and passwordless login, on webauthn-rs.
//!
//! Ceremony state lives in `passkey_challenges` (serialised with webauthn-rs'
//! `danger-allow-state-serialisation`), keyed by the SHA-256 of a random challenge id that only the
//! client holds: any instance can finish what another started, each challenge is claimed by one
//! atomic delete (single use) and expires after [`CHALLENGE_TTL`]. Credentials are discoverable
//! (the login needs no email) and user verification is required, so a passkey is both factors.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, SqlErr, TransactionTrait,
};
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url,
    Webauthn, WebauthnBuilder,
};

use super::audit::{EventKind, NewEvent};
use super::domain::{Email, SecretToken, presented_token_digest};
use super::throttle::{self, Kind};
use super::{AuthError, AuthService, NewSession, UserView};
use crate::entity::{passkey, passkey_challenge, user};

/// How long a started registration or login may be finished (api.md §11).
pub const CHALLENGE_TTL: chrono::Duration = chrono::Duration::minutes(5);
/// The longest passkey name, in characters.
pub const NAME_MAX_CHARS: usize = 64;

const REGISTER: &str = "register";
const LOGIN: &str = "login";

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
    pub fn from_public_url(public_url: &str) -> Result<Self, String> {
        let url = Url::parse(public_url).map_err(|e| format!("public_url {public_url:?}: {e}"))?;
        let Some(host) = url.domain().map(str::to_owned) else {
            return Err(format!("public_url {public_url:?} has no domain name (an IP address cannot hold passkeys)"));
        };
        let origin = url.origin().ascii_serialization();
        let origin_url = Url::parse(&origin).map_err(|e| format!("public_url {public_url:?}: {e}"))?;
        let webauthn = WebauthnBuilder::new(&host, &origin_url)
            .and_then(|b| b.rp_name("userauth").build())
            .map_err(|e| format!("public_url {public_url:?}: {e}"))?;
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

    /// Stores a ceremony's state under the digest of a fresh challenge id; clears expired ones on
    /// the way, so abandoned ceremonies do not pile up.
    async fn store_challenge(
        &self,
        kind: &str,
        user_id: Option<Uuid>,
        state: &impl serde::Serialize,
    ) -> Result<String, AuthError> {
        let at = self.now();
        passkey_challenge::Entity::delete_many()
            .filter(passkey_challenge::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await?;
        let token = SecretToken::generate().map_err(|e| AuthError::Internal(e.to_string()))?;
        let state = serde_json::to_string(state).map_err(|e| AuthError::Internal(e.to_string()))?;
        passkey_challenge::ActiveModel {
            id_hash: Set(token.digest()),
            kind: Set(kind.to_owned()),
            user_id: Set(user_id),
            state: Set(state),
            created_at: Set(at),
            expires_at: Set(at + CHALLENGE_TTL),
        }
        .insert(&self.db)
        .await?;
        Ok(token.expose().to_owned())
    }

    /// Claims a challenge: one atomic delete decides, so it works once on any instance, and only
    /// before it expires. Returns its state; `None` for unknown, used, expired or another kind.
    async fn claim_challenge(
        &self,
        presented: &str,
        kind: &str,
        user_id: Option<Uuid>,
    ) -> Result<Option<String>, AuthError> {
        let Some(digest) = presented_token_digest(presented) else { return Ok(None) };
        let mut claim = passkey_challenge::Entity::delete_many()
            .filter(passkey_challenge::Column::IdHash.eq(digest))
            .filter(passkey_challenge::Column::Kind.eq(kind))
            .filter(passkey_challenge::Column::ExpiresAt.gt(self.now()));
        if let Some(u) = user_id {
            claim = claim.filter(passkey_challenge::Column::UserId.eq(u));
        }
        let claimed = claim.exec_with_returning(&self.db).await?;
        Ok(claimed.into_iter().next().map(|c| c.state))
    }

    /// Checks the caller's current password as a login does (api.md §6): a place in the hashing
    /// queue, the attempt reserved against the account's lockout, then bcrypt; a wrong one counts.
    async fn confirm_password(&self, caller: &UserView, current_password: &str) -> Result<user::Model, AuthError> {
        let ticket = self.hasher.admit(self.hash_client())?;
        let email = Email::parse(&caller.email)?;
        let (max, window) = (self.policy.login_max_failures, self.policy.login_failure_window);
        if let Some(retry_after_secs) =
            throttle::reserve(&self.db, self.now(), Kind::Login, email.as_str(), max, window).await?
        {
            return Err(AuthError::AccountLocked { retry_after_secs });
        }
        let user = user::Entity::find_by_id(caller.id).one(&self.db).await?.ok_or(AuthError::NotAuthenticated)?;
        if !ticket.verify(current_password, Some(&user.password_hash)).await? {
            drop(ticket);
            self.audit_alone(vec![NewEvent::new(EventKind::LoginFailed, Some(user.id), &user.email)]).await?;
            return Err(AuthError::InvalidCredentials);
        }
        drop(ticket);
        throttle::clear(&self.db, Kind::Login, email.as_str()).await?;
        Ok(user)
    }

    /// `POST /api/v1/passkeys/register/start`: the caller (a full session) confirms their password
    /// and gets creation options for a discoverable credential with user verification required.
    pub async fn start_passkey_registration(
        &self,
        session: &str,
        current_password: &str,
    ) -> Result<Challenge, AuthError> {
        let rp = self.rp()?;
        let caller = self.authenticate(session).await?.user;
        let user = self.confirm_password(&caller, current_password).await?;
        let existing = passkey::Entity::find().filter(passkey::Column::UserId.eq(user.id)).all(&self.db).await?;
        let exclude: Vec<_> = existing
            .iter()
            .filter_map(|p| serde_json::from_str::<Passkey>(&p.credential).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        // The user handle is the account's id: a login's authenticator hands it back.
        let (ccr, state) = rp
            .start_passkey_registration(user.id, &user.email, &user.email, Some(exclude))
            .map_err(|e| AuthError::Internal(format!("starting a passkey registration: {e}")))?;
        let mut options = serde_json::to_value(&ccr.public_key).map_err(|e| AuthError::Internal(e.to_string()))?;
        // Discoverable: the login asks for no email, so the credential must live on the authenticator.
        if let Some(sel) = options.get_mut("authenticatorSelection").and_then(|s| s.as_object_mut()) {
            sel.insert("residentKey".into(), "required".into());
            sel.insert("requireResidentKey".into(), true.into());
        }
        let challenge_id = self.store_challenge(REGISTER, Some(user.id), &state).await?;
        Ok(Challenge { challenge_id, options })
    }

    /// `POST /api/v1/passkeys/register/finish`: verifies the browser's credential against the
    /// caller's own unused challenge and stores the passkey under `name`.
    pub async fn finish_passkey_registration(
        &self,
        session: &str,
        challenge_id: &str,
        name: &str,
        credential: &serde_json::Value,
    ) -> Result<PasskeyInfo, AuthError> {
        let rp = self.rp()?;
        let caller = self.authenticate(session).await?.user;
        let name = parse_name(name)?;
        // Claimed before anything else is checked: a challenge is spent by any attempt.
        let state =
            self.claim_challenge(challenge_id, REGISTER, Some(caller.id)).await?.ok_or(AuthError::InvalidPasskey)?;
        let state: PasskeyRegistration =
            serde_json::from_str(&state).map_err(|e| AuthError::Internal(format!("stored passkey state: {e}")))?;
        let reg: RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| AuthError::InvalidPasskey)?;
        let key = rp.finish_passkey_registration(&reg, &state).map_err(|e| {
            tracing::info!(error = %e, "passkey registration refused");
            AuthError::InvalidPasskey
        })?;
        let json = serde_json::to_string(&key).map_err(|e| AuthError::Internal(e.to_string()))?;
        let at = self.now();
        let txn = self.db.begin().await?;
        let model = passkey::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(caller.id),
            credential_id: Set(cred_id_text(key.cred_id())),
            name: Set(name),
            credential: Set(json),
            created_at: Set(at),
            last_used_at: Set(None),
        };
        let stored = match model.insert(&txn).await {
            Ok(m) => m,
            // The same credential registered before (to this or another account).
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(AuthError::InvalidPasskey);
            }
            Err(e) => return Err(e.into()),
        };
        self.audit_in(&txn, vec![NewEvent::new(EventKind::PasskeyAdded, Some(caller.id), &caller.email)]).await?;
        txn.commit().await?;
        Ok(stored.into())
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
        let caller = self.authenticate(session).await?.user;
        self.list_passkeys(caller.id).await
    }

    /// Removes one of the caller's passkeys (`PasskeyNotFound` for anyone else's).
    pub async fn remove_passkey(&self, session: &str, id: Uuid) -> Result<(), AuthError> {
        let caller = self.authenticate(session).await?.user;
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

    /// `POST /api/v1/passkeys/login/start`: request options for any discoverable credential of
    /// this relying party, user verification required.
    pub async fn start_passkey_login(&self) -> Result<Challenge, AuthError> {
        let rp = self.rp()?;
        let (rcr, state) = rp
            .start_discoverable_authentication()
            .map_err(|e| AuthError::Internal(format!("starting a passkey login: {e}")))?;
        let options = serde_json::to_value(&rcr.public_key).map_err(|e| AuthError::Internal(e.to_string()))?;
        let challenge_id = self.store_challenge(LOGIN, None, &state).await?;
        Ok(Challenge { challenge_id, options })
    }

    /// `POST /api/v1/passkeys/login/finish`: verifies the assertion against an unused login
    /// challenge and opens a full session for the passkey's owner. With `expected_user` (a pending
    /// login of §10), the passkey must belong to that user. Every failure is `PasskeyLoginFailed`.
    pub async fn finish_passkey_login(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        expected_user: Option<Uuid>,
    ) -> Result<NewSession, AuthError> {
        let result = self.finish_passkey_login_checked(challenge_id, credential, expected_user).await;
        let outcome = match &result {
            Ok(_) => Some("success"),
            Err(AuthError::PasskeyLoginFailed) => Some("invalid"),
            Err(_) => None,
        };
        if let Some(outcome) = outcome {
            self.count(|m| m.login(outcome));
        }
        result
    }

    async fn finish_passkey_login_checked(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        expected_user: Option<Uuid>,
    ) -> Result<NewSession, AuthError> {
        let rp = self.rp()?;
        let state = self.claim_challenge(challenge_id, LOGIN, None).await?.ok_or(AuthError::PasskeyLoginFailed)?;
        let state: DiscoverableAuthentication =
            serde_json::from_str(&state).map_err(|e| AuthError::Internal(format!("stored passkey state: {e}")))?;
        let assertion: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| AuthError::PasskeyLoginFailed)?;
        let (user_id, cred_id) =
            rp.identify_discoverable_authentication(&assertion).map_err(|_| AuthError::PasskeyLoginFailed)?;
        if expected_user.is_some_and(|u| u != user_id) {
            return Err(AuthError::PasskeyLoginFailed);
        }
        let found = passkey::Entity::find()
            .filter(passkey::Column::CredentialId.eq(cred_id_text(cred_id)))
            .filter(passkey::Column::UserId.eq(user_id))
            .find_also_related(user::Entity)
            .one(&self.db)
            .await?;
        let Some((stored, Some(user))) = found else {
            return Err(AuthError::PasskeyLoginFailed);
        };
        let mut key: Passkey = serde_json::from_str(&stored.credential)
            .map_err(|e| AuthError::Internal(format!("stored passkey {}: {e}", stored.id)))?;
        let verified = match rp.finish_discoverable_authentication_v2(&assertion, state, &key) {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(error = %e, passkey = %stored.id, "passkey assertion refused");
                self.audit_alone(vec![NewEvent::new(EventKind::LoginFailed, Some(user.id), &user.email)]).await?;
                return Err(AuthError::PasskeyLoginFailed);
            }
        };
        // webauthn-rs refuses a counter that went backwards (a cloned authenticator); a new counter
        // or backup state is stored, as it advises.
        let mut update = passkey::Entity::update_many().col_expr(passkey::Column::LastUsedAt, Expr::value(self.now()));
        if key.update_credential(&verified) == Some(true) {
            let json = serde_json::to_string(&key).map_err(|e| AuthError::Internal(e.to_string()))?;
            update = update.col_expr(passkey::Column::Credential, Expr::value(json));
        }
        update.filter(passkey::Column::Id.eq(stored.id)).exec(&self.db).await?;
        self.open_session(&self.legacy_ctx(), user, None, super::LoginMethod::Passkey).await
    }

    /// Deletes expired passkey challenges. Returns rows removed.
    pub async fn purge_passkey_challenges(&self) -> Result<u64, AuthError> {
        Ok(passkey_challenge::Entity::delete_many()
            .filter(passkey_challenge::Column::ExpiresAt.lte(self.now()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
