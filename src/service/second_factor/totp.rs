//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps): enrolment, confirmation, turning it off, and
//! the check of a code during a login. A step is accepted at most once per account, decided by one
//! statement (`UPDATE … WHERE totp_last_step < :step`) on every backend and across instances.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, PaginatorTrait,
    QueryFilter, SqlErr, TransactionTrait,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::entity::{pending_login, recovery_code, totp_factor, user};
use crate::service::audit::{EventKind, NewEvent};
use crate::service::throttle::{self, Kind};
use crate::service::{AuthError, AuthService};

/// RFC 6238 time step, seconds.
pub const TOTP_STEP_SECS: u64 = 30;
/// 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;
/// The purpose of TOTP secrets under the server key (api.md §14).
const TOTP_PURPOSE: &str = "totp";
/// The issuer shown in authenticator apps.
const ISSUER: &str = "userauth";

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

/// The enrolment as handed out: the secret in base32, as an otpauth URL, and that URL as a QR code.
fn enrolment(secret: &[u8], email: &str) -> Result<TotpEnrolment, AuthError> {
    let totp = totp_for(secret, email)?;
    let url = Zeroizing::new(totp.to_url().map_err(|e| AuthError::Internal(format!("totp: {e}")))?);
    let qr_svg = qr_svg(&url)?;
    Ok(TotpEnrolment { secret: Zeroizing::new(totp.secret().to_base32()), otpauth_url: url, qr_svg })
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

/// `SELECT COUNT(*) FROM totp_factors WHERE user_id = users.id AND confirmed_at IS NOT NULL`, for
/// `user list`'s `factors`.
pub(in crate::service) fn totp_count_query() -> sea_orm::sea_query::SelectStatement {
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
    pub(super) async fn totp_enabled<C: ConnectionTrait>(&self, db: &C, user_id: Uuid) -> Result<bool, DbErr> {
        Ok(totp_factor::Entity::find()
            .filter(totp_factor::Column::UserId.eq(user_id))
            .filter(totp_factor::Column::ConfirmedAt.is_not_null())
            .count(db)
            .await?
            > 0)
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
        enrolment(&secret[..], &user.email)
    }

    /// The caller's unconfirmed enrolment again (the setup page after its redirect), or `None`.
    pub async fn pending_enrolment(&self, presented: &str) -> Result<Option<TotpEnrolment>, AuthError> {
        let (caller, _) = self.full_session_user(presented).await?;
        let row = totp_factor::Entity::find_by_id(caller.id)
            .filter(totp_factor::Column::ConfirmedAt.is_null())
            .one(&self.db)
            .await?;
        let Some(row) = row else { return Ok(None) };
        enrolment(&self.open_secret(&row)?, &caller.email).map(Some)
    }

    /// Decrypts a stored secret.
    fn open_secret(&self, row: &totp_factor::Model) -> Result<Zeroizing<Vec<u8>>, AuthError> {
        self.key()
            .decrypt(TOTP_PURPOSE, &row.secret)
            .map_err(|_| AuthError::Internal("a stored TOTP secret does not open with this server key".into()))
    }

    /// The step `code` matches at `at` under the row's secret, as stored (`None`: no match).
    fn step_of(
        &self,
        row: &totp_factor::Model,
        email: &str,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>, AuthError> {
        let secret = self.open_secret(row)?;
        let totp = totp_for(&secret, email)?;
        Ok(matching_step(&totp, code, unix_secs(at)).map(|step| i64::try_from(step).unwrap_or(i64::MAX)))
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
        let at = self.now();
        let step = self.step_of(&row, &caller.email, code, at)?.ok_or(AuthError::InvalidCode)?;
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
    pub(super) async fn remove_totp<C: ConnectionTrait>(&self, db: &C, user_id: Uuid) -> Result<(u64, u64), DbErr> {
        let totp = totp_factor::Entity::delete_many().filter(totp_factor::Column::UserId.eq(user_id)).exec(db).await?;
        let codes =
            recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(db).await?;
        Ok((totp.rows_affected, codes.rows_affected))
    }

    /// Checks a TOTP code and, when it matches a step later than the last accepted one, records
    /// that step: one conditional UPDATE decides between racing requests on any instance.
    pub(super) async fn use_totp_code(
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
        let Some(step) = self.step_of(&row, email, code, at)? else { return Ok(false) };
        let claimed = totp_factor::Entity::update_many()
            .col_expr(totp_factor::Column::TotpLastStep, Expr::value(step))
            .filter(totp_factor::Column::UserId.eq(user_id))
            .filter(totp_factor::Column::ConfirmedAt.is_not_null())
            .filter(totp_factor::Column::TotpLastStep.lt(step))
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
