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

mod pending_login;
mod recovery_codes;
mod totp;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

pub use pending_login::SecondFactorProof;
pub use recovery_codes::{RECOVERY_CODES, RECOVERY_CODES_LOW};
pub(super) use totp::totp_count_query;
pub use totp::{TOTP_STEP_SECS, TotpEnrolment, qr_svg};

use super::audit::{EventKind, NewEvent};
use super::domain::{Email, presented_token_digest};
use super::metrics::{SecondFactorMethod, SecondFactorResult};
use super::reauth::OnRightPassword;
use super::{AuthError, AuthService, UserView, rfc3339};
use crate::entity::{self, recovery_code, session, totp_factor, user};

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

impl AuthService {
    pub(super) fn count_second_factor(&self, method: SecondFactorMethod, result: SecondFactorResult) {
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

    /// The caller's user (a full session) and the digest of their token.
    pub(super) async fn full_session_user(&self, presented: &str) -> Result<(UserView, String), AuthError> {
        let user = self.authenticate(presented).await?;
        let digest = presented_token_digest(presented).ok_or(AuthError::NotAuthenticated)?;
        Ok((user, digest))
    }

    /// The current password of a full session's user, checked like a login (api.md §6). The place
    /// in the hashing queue comes first, before the session is looked at.
    pub(super) async fn check_current_password(
        &self,
        presented: &str,
        password: &str,
    ) -> Result<user::Model, AuthError> {
        let ticket = self.hasher.admit(self.hash_client())?;
        let (caller, _) = self.full_session_user(presented).await?;
        self.confirm_current_password(ticket, &caller, password, OnRightPassword::Release).await
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
        let pending = entity::pending_login::Entity::delete_many();
        pending.filter(entity::pending_login::Column::UserId.eq(user.id)).exec(&txn).await?;
        let sessions =
            session::Entity::delete_many().filter(session::Column::UserId.eq(user.id)).exec(&txn).await?.rows_affected;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::FactorsReset, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        Ok(FactorsRemoved { totp, recovery_codes, passkeys, sessions })
    }
}
