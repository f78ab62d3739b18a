//! Second factors (api.md §10): TOTP (RFC 6238: SHA-1, 6 digits, 30 s), recovery codes, and the
//! pending login that sits between a right password and the second step.
//!
//! Three rules hold on every backend and across instances, each decided by one statement:
//! - a TOTP step is accepted at most once per account (`UPDATE … WHERE totp_last_step < :step`);
//! - a recovery code works once (`DELETE … WHERE user_id AND digest`, one row or none);
//! - every code attempt is counted against the account's login lockout before it is checked
//!   (`throttle::reserve`), so wrong codes and wrong passwords share `login_max_failures`.
//!
//! Pending logins live in their own table: the session reads (`authenticate`, the fast path)
//! never see them, so a pending login authorises nothing but finishing the login.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, PaginatorTrait,
    QueryFilter, SqlErr, TransactionTrait,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::audit::{EventKind, NewEvent};
use super::domain::{Email, SecretToken, presented_token_digest};
use super::throttle::{self, Kind};
use super::{AuthError, AuthService, NewSession, UserView, chrono_dur, rfc3339};
use crate::entity::{pending_login, recovery_code, session, totp_factor, user};

/// RFC 6238 time step, seconds.
pub const TOTP_STEP_SECS: u64 = 30;
/// 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;
/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;
/// Below this many unused recovery codes the account page warns.
pub const RECOVERY_CODES_LOW: u64 = 3;
/// Purposes under the server key (api.md §14).
const TOTP_PURPOSE: &str = "totp";
const RECOVERY_PURPOSE: &str = "recovery";
/// The issuer shown in authenticator apps.
const ISSUER: &str = "userauth";
/// Lowercase RFC 4648 base32: no 0/1/8/9 to confuse with letters.
const CODE_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What `POST /api/v1/totp` hands out: the new, not yet active, secret in three forms.
pub struct TotpEnrolment {
    /// Base32 (RFC 4648, no padding), as authenticator apps take it by hand.
    pub secret: Zeroizing<String>,
    pub otpauth_url: Zeroizing<String>,
    /// The otpauth URL as a QR code, a self-contained `<svg>` element (no external image).
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(<redacted>)")
    }
}

/// How the second step of a login is proven.
#[derive(Clone, Copy)]
pub enum SecondFactorProof<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

impl SecondFactorProof<'_> {
    fn method(&self) -> &'static str {
        match self {
            SecondFactorProof::Totp(_) => "totp",
            SecondFactorProof::RecoveryCode(_) => "recovery_code",
        }
    }
}

/// What a user has set up, for the account page and `user factors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FactorStatus {
    /// `password`, then each other factor that is on (`totp`, `passkey`).
    pub factors: Vec<&'static str>,
    /// An enrolment was started and not confirmed.
    pub totp_pending: bool,
    pub recovery_codes_left: u64,
}

/// A user's factors, as `userauth user factors` shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserFactors {
    pub email: String,
    #[serde(flatten)]
    pub status: FactorStatus,
    /// The user's passkeys, oldest first (api.md §11).
    pub passkeys: Vec<PasskeyListing>,
}

/// One passkey as the operator sees it: never the key material.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PasskeyListing {
    pub id: Uuid,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// What `user factors --reset` removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FactorsRemoved {
    pub totp: u64,
    pub recovery_codes: u64,
    pub passkeys: u64,
    pub sessions: u64,
}

fn unix_secs(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

/// A `Totp` for `secret`, labelled with the account's email for authenticator apps.
fn totp_for(secret: &[u8], email: &str) -> Result<totp_rs::Totp, AuthError> {
    // The otpauth label may not contain ':' (it separates issuer and account).
    let label = email.replace(':', "_");
    totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .with_digits(6)
        .with_step_duration(TOTP_STEP_SECS)
        .with_skew(1)
        .with_issuer(Some(ISSUER))
        .with_account_name(label)
        .build()
        .map_err(|e| AuthError::Internal(format!("totp: {e}")))
}

/// The step a code matches at `now` (current, previous or next), if any. Anything but six ASCII
/// digits (spaces allowed, as apps show "123 456") matches nothing.
fn matching_step(totp: &totp_rs::Totp, code: &str, now: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp.check(&code, now)
}

/// An otpauth URL drawn as a QR code in SVG: one path of unit squares on a white field with a
/// four-module quiet zone. Presentation attributes only (no `style`), so the pages' CSP allows it.
pub fn qr_svg(text: &str) -> Result<String, AuthError> {
    use std::fmt::Write;
    let qr = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium)
        .map_err(|e| AuthError::Internal(format!("qr code: {e:?}")))?;
    let border = 4;
    let dim = qr.size() + 2 * border;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + border, y + border);
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {dim} {dim}\" width=\"{px}\" height=\"{px}\" \
         role=\"img\" aria-label=\"QR code for your authenticator app\" shape-rendering=\"crispEdges\">\
         <rect width=\"{dim}\" height=\"{dim}\" fill=\"#ffffff\"/><path d=\"{path}\" fill=\"#000000\"/></svg>",
        px = dim * 5
    ))
}

/// One recovery code: 50 random bits as ten lowercase base32 characters, `xxxxx-xxxxx`.
fn new_recovery_code() -> Result<Zeroizing<String>, AuthError> {
    let mut bytes = Zeroizing::new([0u8; 8]);
    getrandom::fill(&mut bytes[..7]).map_err(|e| AuthError::Internal(e.to_string()))?;
    let bits = u64::from_le_bytes(*bytes);
    let mut code = Zeroizing::new(String::with_capacity(11));
    for i in 0..10 {
        if i == 5 {
            code.push('-');
        }
        code.push(char::from(CODE_ALPHABET[((bits >> (5 * i)) & 31) as usize]));
    }
    Ok(code)
}

/// The form a recovery code is compared in: lowercase, without separators or spaces.
fn normalise_recovery_code(code: &str) -> Option<Zeroizing<String>> {
    let code: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect();
    let code = Zeroizing::new(code);
    (code.len() == 10 && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

/// `SELECT COUNT(*) FROM totp_factors WHERE user_id = users.id AND confirmed_at IS NOT NULL`, for
/// `user list`'s `factors`.
pub(super) fn totp_count_query() -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::Query;
    Query::select()
        .expr(Expr::col((totp_factor::Entity, totp_factor::Column::UserId)).count())
        .from(totp_factor::Entity)
        .and_where(
            Expr::col((totp_factor::Entity, totp_factor::Column::UserId)).equals((user::Entity, user::Column::Id)),
        )
        .and_where(Expr::col((totp_factor::Entity, totp_factor::Column::ConfirmedAt)).is_not_null())
        .to_owned()
}

impl AuthService {
    fn recovery_digest(&self, normalised: &str) -> String {
        hex::encode(self.key().mac(RECOVERY_PURPOSE, normalised.as_bytes()))
    }

    fn count_second_factor(&self, method: &'static str, result: &'static str) {
        self.count(|m| m.second_factor(method, result));
    }

    /// The second factors a login of this user may finish with, in the order the login answer
    /// lists them (api.md §10): `totp` and `recovery_code` when TOTP is on, then `passkey` when the
    /// user has one (§11).
    pub async fn available_second_factors(&self, user_id: Uuid) -> Result<Vec<&'static str>, AuthError> {
        let mut out = Vec::new();
        if self.totp_enabled(&self.db, user_id).await? {
            out.extend(["totp", "recovery_code"]);
        }
        if self.has_passkeys(user_id).await? {
            out.push("passkey");
        }
        Ok(out)
    }

    async fn totp_enabled<C: ConnectionTrait>(&self, db: &C, user_id: Uuid) -> Result<bool, DbErr> {
        Ok(totp_factor::Entity::find()
            .filter(totp_factor::Column::UserId.eq(user_id))
            .filter(totp_factor::Column::ConfirmedAt.is_not_null())
            .count(db)
            .await?
            > 0)
    }

    /// Called by `login` once the password is right. For a user with a second factor: gives back
    /// the one attempt the password used (so wrong passwords and wrong codes share one budget, and
    /// a right password does not reset the count of wrong codes) and opens a pending login instead
    /// of a session. `None`: the password alone logs in. `new_hash` is the password re-hashed at
    /// the configured cost (api.md §6), stored now: the password was right, whatever the second step.
    pub(super) async fn begin_second_factor(
        &self,
        user: &user::Model,
        new_hash: Option<&str>,
    ) -> Result<Option<NewSession>, AuthError> {
        let factors = self.available_second_factors(user.id).await?;
        // Only TOTP makes the password a first factor. A passkey is a whole login of its own
        // (§11: both factors), not a second step the password needs: a user with passkeys and no
        // TOTP still logs in with the password alone.
        if !factors.contains(&"totp") {
            return Ok(None);
        }
        throttle::release(&self.db, Kind::Login, &user.email).await?;
        if let Some(h) = new_hash {
            // Only over the credential just verified, as `open_session` does: a racing change wins.
            user::Entity::update_many()
                .col_expr(user::Column::PasswordHash, Expr::value(h))
                .filter(user::Column::Id.eq(user.id))
                .filter(user::Column::CredentialVersion.eq(user.credential_version))
                .exec(&self.db)
                .await?;
        }
        let token = SecretToken::generate().map_err(|e| AuthError::Internal(e.to_string()))?;
        let at = self.now();
        let expires_at = at + chrono_dur(self.policy.second_factor_timeout);
        pending_login::ActiveModel {
            token_hash: Set(token.digest()),
            user_id: Set(user.id),
            created_at: Set(at),
            expires_at: Set(expires_at),
        }
        .insert(&self.db)
        .await?;
        // Housekeeping on this user's own rows.
        pending_login::Entity::delete_many()
            .filter(pending_login::Column::UserId.eq(user.id))
            .filter(pending_login::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await?;
        Ok(Some(NewSession { token, user: UserView::from(user.clone()), expires_at, second_factor: factors }))
    }

    /// Whether `presented` is a live pending login: guards use it, on their failure path only, to
    /// answer `second_factor_required` instead of a plain 401.
    pub async fn is_pending_login(&self, presented: &str) -> Result<bool, AuthError> {
        let Some(digest) = presented_token_digest(presented) else { return Ok(false) };
        Ok(pending_login::Entity::find_by_id(digest)
            .filter(pending_login::Column::ExpiresAt.gt(self.now()))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// The user of a live pending login, if `presented` is one.
    pub async fn pending_login_user(&self, presented: &str) -> Result<Option<Uuid>, AuthError> {
        let Some(digest) = presented_token_digest(presented) else { return Ok(None) };
        Ok(pending_login::Entity::find_by_id(digest)
            .filter(pending_login::Column::ExpiresAt.gt(self.now()))
            .one(&self.db)
            .await?
            .map(|p| p.user_id))
    }

    /// `POST /api/v1/passkeys/login/finish` with the caller's cookie, if any (api.md §10, §11).
    /// When `presented` is a live pending login, the passkey must be its user's (another user's is
    /// `PasskeyLoginFailed`, and the pending login stays); success spends the pending login and
    /// opens a full session with a new token. Otherwise it is a plain passkey login.
    pub async fn finish_passkey_login_from(
        &self,
        presented: Option<&str>,
        challenge_id: &str,
        credential: &serde_json::Value,
    ) -> Result<NewSession, AuthError> {
        let pending = match presented {
            Some(token) => self.pending_login_user(token).await?.map(|user| (token, user)),
            None => None,
        };
        let result = self.finish_passkey_login(challenge_id, credential, pending.map(|(_, user)| user)).await;
        let Some((token, _)) = pending else { return result };
        match &result {
            Ok(session) => {
                self.count_second_factor("passkey", "success");
                // Spent: the new full session replaces it. (A racing request that also proved a
                // passkey of this user gets a session of its own, as a plain passkey login would.)
                if let Some(digest) = presented_token_digest(token) {
                    pending_login::Entity::delete_by_id(digest).exec(&self.db).await?;
                }
                // The wrong passwords and codes before a passkey proved the user stop counting,
                // as after a second step with a code.
                throttle::clear(&self.db, Kind::Login, &session.user.email).await?;
            }
            Err(AuthError::PasskeyLoginFailed) => self.count_second_factor("passkey", "invalid"),
            Err(_) => {}
        }
        result
    }

    /// The caller's user (a full session) and the digest of their token.
    async fn full_session_user(&self, presented: &str) -> Result<(UserView, String), AuthError> {
        let user = self.authenticate(presented).await?.user;
        let digest = presented_token_digest(presented).ok_or(AuthError::NotAuthenticated)?;
        Ok((user, digest))
    }

    /// The current password of a full session's user, checked like a login (api.md §6): a place
    /// in the hashing queue, the attempt counted before bcrypt runs, a wrong one stays counted.
    async fn check_current_password(&self, presented: &str, password: &str) -> Result<user::Model, AuthError> {
        let ticket = self.hasher.admit(self.hash_client())?;
        let (caller, _) = self.full_session_user(presented).await?;
        let email = Email::parse(&caller.email)?;
        let (max, window) = (self.policy.login_max_failures, self.policy.login_failure_window);
        if let Some(retry_after_secs) =
            throttle::reserve(&self.db, self.now(), Kind::Login, email.as_str(), max, window).await?
        {
            return Err(AuthError::AccountLocked { retry_after_secs });
        }
        let user = user::Entity::find_by_id(caller.id).one(&self.db).await?.ok_or(AuthError::NotAuthenticated)?;
        if !ticket.verify(password, Some(&user.password_hash)).await? {
            drop(ticket);
            self.audit_alone(vec![NewEvent::new(EventKind::LoginFailed, Some(user.id), &user.email)]).await?;
            return Err(AuthError::InvalidCredentials);
        }
        drop(ticket);
        // Give back this attempt rather than clearing the window: wrong codes counted in it stay.
        throttle::release(&self.db, Kind::Login, email.as_str()).await?;
        Ok(user)
    }

    /// Starts (or restarts) TOTP enrolment: a new 160-bit secret from the OS, stored encrypted and
    /// inactive until confirmed. Replaces an unconfirmed secret; `AlreadyEnabled` over a confirmed one.
    pub async fn totp_enrol(&self, presented: &str, current_password: &str) -> Result<TotpEnrolment, AuthError> {
        let user = self.check_current_password(presented, current_password).await?;
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        getrandom::fill(&mut secret[..]).map_err(|e| AuthError::Internal(e.to_string()))?;
        let sealed = self.key().encrypt(TOTP_PURPOSE, &secret[..]).map_err(|e| AuthError::Internal(e.to_string()))?;
        let at = self.now();
        let txn = self.db.begin().await?;
        if self.totp_enabled(&txn, user.id).await? {
            return Err(AuthError::AlreadyEnabled);
        }
        totp_factor::Entity::delete_many()
            .filter(totp_factor::Column::UserId.eq(user.id))
            .filter(totp_factor::Column::ConfirmedAt.is_null())
            .exec(&txn)
            .await?;
        let inserted = totp_factor::ActiveModel {
            user_id: Set(user.id),
            secret: Set(sealed),
            created_at: Set(at),
            confirmed_at: Set(None),
            totp_last_step: Set(0),
        }
        .insert(&txn)
        .await;
        match inserted {
            Ok(_) => {}
            // A concurrent enrolment of the same user got there first.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(AuthError::AlreadyEnabled);
            }
            Err(e) => return Err(e.into()),
        }
        txn.commit().await?;
        let totp = totp_for(&secret[..], &user.email)?;
        let url = Zeroizing::new(totp.to_url().map_err(|e| AuthError::Internal(format!("totp: {e}")))?);
        let qr_svg = qr_svg(&url)?;
        Ok(TotpEnrolment { secret: Zeroizing::new(totp.secret().to_base32()), otpauth_url: url, qr_svg })
    }

    /// The caller's unconfirmed enrolment again (the setup page after its redirect), or `None`.
    pub async fn pending_enrolment(&self, presented: &str) -> Result<Option<TotpEnrolment>, AuthError> {
        let (caller, _) = self.full_session_user(presented).await?;
        let row = totp_factor::Entity::find_by_id(caller.id)
            .filter(totp_factor::Column::ConfirmedAt.is_null())
            .one(&self.db)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let secret = self.open_secret(&row)?;
        let totp = totp_for(&secret, &caller.email)?;
        let url = Zeroizing::new(totp.to_url().map_err(|e| AuthError::Internal(format!("totp: {e}")))?);
        let qr_svg = qr_svg(&url)?;
        Ok(Some(TotpEnrolment { secret: Zeroizing::new(totp.secret().to_base32()), otpauth_url: url, qr_svg }))
    }

    /// Decrypts a stored secret.
    fn open_secret(&self, row: &totp_factor::Model) -> Result<Zeroizing<Vec<u8>>, AuthError> {
        self.key()
            .decrypt(TOTP_PURPOSE, &row.secret)
            .map_err(|_| AuthError::Internal("a stored TOTP secret does not open with this server key".into()))
    }

    /// Confirms the enrolment with a code from the authenticator: TOTP is on, and the first set of
    /// recovery codes is returned (the only time they exist in clear). The code's step is used up.
    pub async fn totp_confirm(&self, presented: &str, code: &str) -> Result<Vec<Zeroizing<String>>, AuthError> {
        let (caller, _) = self.full_session_user(presented).await?;
        let row = totp_factor::Entity::find_by_id(caller.id)
            .filter(totp_factor::Column::ConfirmedAt.is_null())
            .one(&self.db)
            .await?
            .ok_or(AuthError::NothingToConfirm)?;
        // Counted like every code attempt; a right code gives the attempt back.
        let (max, window) = (self.policy.login_max_failures, self.policy.login_failure_window);
        if let Some(retry_after_secs) =
            throttle::reserve(&self.db, self.now(), Kind::Login, &caller.email, max, window).await?
        {
            return Err(AuthError::AccountLocked { retry_after_secs });
        }
        let secret = self.open_secret(&row)?;
        let totp = totp_for(&secret, &caller.email)?;
        let at = self.now();
        let Some(step) = matching_step(&totp, code, unix_secs(at)) else {
            return Err(AuthError::InvalidCode);
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let txn = self.db.begin().await?;
        let confirmed = totp_factor::Entity::update_many()
            .col_expr(totp_factor::Column::ConfirmedAt, Expr::value(at))
            .col_expr(totp_factor::Column::TotpLastStep, Expr::value(step))
            .filter(totp_factor::Column::UserId.eq(caller.id))
            .filter(totp_factor::Column::ConfirmedAt.is_null())
            // The same secret as the one checked: a re-enrolment in between wins.
            .filter(totp_factor::Column::Secret.eq(row.secret.clone()))
            .filter(totp_factor::Column::TotpLastStep.lt(step))
            .exec(&txn)
            .await?;
        if confirmed.rows_affected != 1 {
            return Err(AuthError::NothingToConfirm);
        }
        let codes = self.replace_recovery_codes(&txn, caller.id).await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::TotpEnabled, Some(caller.id), &caller.email)]).await?;
        txn.commit().await?;
        throttle::release(&self.db, Kind::Login, &caller.email).await?;
        Ok(codes)
    }

    /// A fresh set of recovery codes for `user_id`, stored as keyed digests in place of the old set.
    async fn replace_recovery_codes<C: ConnectionTrait>(
        &self,
        db: &C,
        user_id: Uuid,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(db).await?;
        let at = self.now();
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut rows = Vec::with_capacity(RECOVERY_CODES);
        while codes.len() < RECOVERY_CODES {
            let code = new_recovery_code()?;
            let Some(normalised) = normalise_recovery_code(&code) else { continue };
            let digest = self.recovery_digest(&normalised);
            // 2^-50 odds of a repeat; skip it rather than fail the insert.
            if rows.iter().any(|r: &recovery_code::ActiveModel| r.digest.as_ref() == &digest) {
                continue;
            }
            rows.push(recovery_code::ActiveModel { user_id: Set(user_id), digest: Set(digest), created_at: Set(at) });
            codes.push(code);
        }
        recovery_code::Entity::insert_many(rows).exec(db).await?;
        Ok(codes)
    }

    /// Turns TOTP off (and removes the recovery codes and any pending logins), after the password.
    pub async fn totp_disable(&self, presented: &str, current_password: &str) -> Result<(), AuthError> {
        let user = self.check_current_password(presented, current_password).await?;
        let txn = self.db.begin().await?;
        if !self.totp_enabled(&txn, user.id).await? {
            return Err(AuthError::NotEnabled);
        }
        self.remove_totp(&txn, user.id).await?;
        pending_login::Entity::delete_many().filter(pending_login::Column::UserId.eq(user.id)).exec(&txn).await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::TotpDisabled, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Removes the user's TOTP secret (confirmed or not) and recovery codes. Returns (secrets, codes).
    async fn remove_totp<C: ConnectionTrait>(&self, db: &C, user_id: Uuid) -> Result<(u64, u64), DbErr> {
        let totp = totp_factor::Entity::delete_many().filter(totp_factor::Column::UserId.eq(user_id)).exec(db).await?;
        let codes =
            recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(db).await?;
        Ok((totp.rows_affected, codes.rows_affected))
    }

    /// A new set of recovery codes after the password; the old ones stop working.
    pub async fn regenerate_recovery_codes(
        &self,
        presented: &str,
        current_password: &str,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        let user = self.check_current_password(presented, current_password).await?;
        let txn = self.db.begin().await?;
        if !self.totp_enabled(&txn, user.id).await? {
            return Err(AuthError::NotEnabled);
        }
        let codes = self.replace_recovery_codes(&txn, user.id).await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::RecoveryCodesRegenerated, Some(user.id), &user.email)])
            .await?;
        txn.commit().await?;
        Ok(codes)
    }

    /// Finishes a pending login with a TOTP code or a recovery code: a new full session (a new
    /// token: the pending one is gone). `NotAuthenticated` without a live pending login,
    /// `InvalidCode` for a wrong, replayed or used code (counted toward the lockout),
    /// `AccountLocked` once the window is used up (nothing checked).
    pub async fn complete_second_factor(
        &self,
        presented: &str,
        proof: SecondFactorProof<'_>,
    ) -> Result<NewSession, AuthError> {
        let method = proof.method();
        let result = self.complete_second_factor_checked(presented, proof).await;
        match &result {
            Ok(_) => self.count_second_factor(method, "success"),
            Err(AuthError::InvalidCode) => self.count_second_factor(method, "invalid"),
            Err(AuthError::AccountLocked { .. }) => self.count_second_factor(method, "locked"),
            Err(_) => {}
        }
        result
    }

    async fn complete_second_factor_checked(
        &self,
        presented: &str,
        proof: SecondFactorProof<'_>,
    ) -> Result<NewSession, AuthError> {
        let digest = presented_token_digest(presented).ok_or(AuthError::NotAuthenticated)?;
        let at = self.now();
        let pending = pending_login::Entity::find_by_id(digest.clone()).one(&self.db).await?;
        let Some(pending) = pending else { return Err(AuthError::NotAuthenticated) };
        if at >= pending.expires_at {
            pending_login::Entity::delete_by_id(digest).exec(&self.db).await?;
            return Err(AuthError::NotAuthenticated);
        }
        let user = user::Entity::find_by_id(pending.user_id).one(&self.db).await?.ok_or(AuthError::NotAuthenticated)?;
        let (max, window) = (self.policy.login_max_failures, self.policy.login_failure_window);
        if let Some(retry_after_secs) = throttle::reserve(&self.db, at, Kind::Login, &user.email, max, window).await? {
            return Err(AuthError::AccountLocked { retry_after_secs });
        }
        let accepted = match proof {
            SecondFactorProof::Totp(code) => self.use_totp_code(user.id, &user.email, code, at).await?,
            SecondFactorProof::RecoveryCode(code) => self.use_recovery_code(user.id, code).await?,
        };
        if !accepted {
            self.audit_alone(vec![NewEvent::new(EventKind::SecondFactorFailed, Some(user.id), &user.email)]).await?;
            return Err(AuthError::InvalidCode);
        }
        // The pending login is spent by exactly one request, whatever else raced with it.
        let spent = pending_login::Entity::delete_many()
            .filter(pending_login::Column::TokenHash.eq(digest))
            .exec(&self.db)
            .await?;
        if spent.rows_affected != 1 {
            return Err(AuthError::NotAuthenticated);
        }
        throttle::clear(&self.db, Kind::Login, &user.email).await?;
        if matches!(proof, SecondFactorProof::RecoveryCode(_)) {
            self.audit_alone(vec![NewEvent::new(EventKind::RecoveryCodeUsed, Some(user.id), &user.email)]).await?;
        }
        self.open_session(&self.legacy_ctx(), user, None, super::LoginMethod::Password).await
    }

    /// Checks a TOTP code and, when it matches a step later than the last accepted one, records
    /// that step: one conditional UPDATE decides between racing requests on any instance.
    async fn use_totp_code(
        &self,
        user_id: Uuid,
        email: &str,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, AuthError> {
        let row = totp_factor::Entity::find_by_id(user_id)
            .filter(totp_factor::Column::ConfirmedAt.is_not_null())
            .one(&self.db)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let secret = self.open_secret(&row)?;
        let totp = totp_for(&secret, email)?;
        let Some(step) = matching_step(&totp, code, unix_secs(at)) else { return Ok(false) };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let claimed = totp_factor::Entity::update_many()
            .col_expr(totp_factor::Column::TotpLastStep, Expr::value(step))
            .filter(totp_factor::Column::UserId.eq(user_id))
            .filter(totp_factor::Column::ConfirmedAt.is_not_null())
            .filter(totp_factor::Column::TotpLastStep.lt(step))
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    /// Uses up a recovery code: one DELETE of its digest decides.
    async fn use_recovery_code(&self, user_id: Uuid, code: &str) -> Result<bool, AuthError> {
        let Some(normalised) = normalise_recovery_code(code) else { return Ok(false) };
        let used = recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::Digest.eq(self.recovery_digest(&normalised)))
            .exec(&self.db)
            .await?;
        Ok(used.rows_affected == 1)
    }

    async fn factor_status_of(&self, user_id: Uuid) -> Result<FactorStatus, AuthError> {
        let mut factors = vec!["password"];
        // One function per factor kind; passkeys (§11) add theirs here.
        let totp = totp_factor::Entity::find_by_id(user_id).one(&self.db).await?;
        let totp_on = totp.as_ref().is_some_and(|t| t.confirmed_at.is_some());
        if totp_on {
            factors.push("totp");
        }
        if self.has_passkeys(user_id).await? {
            factors.push("passkey");
        }
        let recovery_codes_left =
            recovery_code::Entity::find().filter(recovery_code::Column::UserId.eq(user_id)).count(&self.db).await?;
        Ok(FactorStatus { factors, totp_pending: totp.is_some() && !totp_on, recovery_codes_left })
    }

    /// The caller's factors (a full session), for the account page.
    pub async fn my_factors(&self, presented: &str) -> Result<FactorStatus, AuthError> {
        let (caller, _) = self.full_session_user(presented).await?;
        self.factor_status_of(caller.id).await
    }

    /// A user's factors, for the operator (`userauth user factors EMAIL`).
    pub async fn user_factors(&self, email: &str) -> Result<UserFactors, AuthError> {
        let email = Email::parse(email)?;
        let user = self.find_user(&email).await?.ok_or(AuthError::UserNotFound)?;
        let passkeys = self
            .list_passkeys(user.id)
            .await?
            .into_iter()
            .map(|p| PasskeyListing {
                id: p.id,
                name: p.name,
                created_at: rfc3339(p.created_at),
                last_used_at: p.last_used_at.map(rfc3339),
            })
            .collect();
        Ok(UserFactors { status: self.factor_status_of(user.id).await?, email: user.email, passkeys })
    }

    /// For a user who lost their device (`userauth user factors EMAIL --reset`): removes every
    /// second factor, recovery code and passkey (with its registrations in progress), and ends the
    /// user's sessions and pending logins, in one transaction.
    pub async fn reset_factors(&self, email: &str) -> Result<FactorsRemoved, AuthError> {
        let email = Email::parse(email)?;
        let user = self.find_user(&email).await?.ok_or(AuthError::UserNotFound)?;
        let txn = self.db.begin().await?;
        let (totp, recovery_codes) = self.remove_totp(&txn, user.id).await?;
        let passkeys = self.remove_all_passkeys(&txn, user.id).await?;
        pending_login::Entity::delete_many().filter(pending_login::Column::UserId.eq(user.id)).exec(&txn).await?;
        let sessions =
            session::Entity::delete_many().filter(session::Column::UserId.eq(user.id)).exec(&txn).await?.rows_affected;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::FactorsReset, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        Ok(FactorsRemoved { totp, recovery_codes, passkeys, sessions })
    }

    /// Deletes expired pending logins. Returns rows removed.
    pub async fn purge_pending_logins(&self) -> Result<u64, AuthError> {
        Ok(pending_login::Entity::delete_many()
            .filter(pending_login::Column::ExpiresAt.lte(self.now()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_have_fifty_bits_in_the_documented_form() {
        let code = new_recovery_code().unwrap();
        assert_eq!(code.len(), 11);
        assert_eq!(&code[5..6], "-");
        assert!(normalise_recovery_code(&code).is_some());
        assert_eq!(normalise_recovery_code(&code.to_uppercase()).unwrap().as_str(), code.replace('-', ""));
        assert!(normalise_recovery_code("abcde-fghi1").is_none());
        assert!(normalise_recovery_code("").is_none());
        // Ten characters of 5 bits each.
        assert_eq!(CODE_ALPHABET.len(), 32);
    }

    #[test]
    fn codes_match_only_six_digits_of_an_adjacent_step() {
        let totp = totp_for(&[7u8; 20], "a@example.com").unwrap();
        let now = 1_800_000_000u64;
        let code = totp.generate(now).to_string();
        assert_eq!(matching_step(&totp, &code, now), Some(now / 30));
        let previous = totp.generate(now - 30).to_string();
        assert_eq!(matching_step(&totp, &previous, now), Some(now / 30 - 1));
        let two_old = totp.generate(now - 60).to_string();
        assert_eq!(matching_step(&totp, &two_old, now), None);
        assert_eq!(matching_step(&totp, &format!("{} {}", &code[..3], &code[3..]), now), Some(now / 30));
        assert_eq!(matching_step(&totp, "12345", now), None);
        assert_eq!(matching_step(&totp, "１２３４５６", now), None);
    }

    #[test]
    fn qr_svg_is_self_contained() {
        let svg = qr_svg("otpauth://totp/userauth:a%40example.com?secret=AAAA&issuer=userauth").unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("href"), "no external or data: image");
        assert!(!svg.contains("style"), "no inline style: the CSP forbids it");
        assert!(svg.matches('M').count() > 100, "modules drawn");
    }
}
