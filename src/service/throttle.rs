//! Fixed-window counters in the database, so every `serve` instance sees the same counts and
//! they survive restarts; and [`AuthService::reserve`], the one way an operation counts an
//! attempt against an account before doing the work the counter guards.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter};

use super::domain::Email;
use super::policy::Policy;
use super::{AuthError, AuthService, chrono_dur};
use crate::entity::throttle::{self, Column, Entity};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Failed logins.
    Login,
    /// Reset tokens issued through the API.
    Reset,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::Reset => "reset",
        }
    }

    /// How many attempts a window lets through, and how long a window is, as configured.
    pub fn limits(self, policy: &Policy) -> (u32, Duration) {
        match self {
            Kind::Login => (policy.login_max_failures, policy.login_failure_window),
            Kind::Reset => (policy.reset_max_requests, policy.reset_window),
        }
    }

    /// The answer to an attempt refused because the window is used up.
    fn refusal(self, retry_after_secs: u64) -> AuthError {
        match self {
            Kind::Login => AuthError::AccountLocked { retry_after_secs },
            Kind::Reset => AuthError::TooManyResetRequests { retry_after_secs },
        }
    }
}

/// Counts one attempt and decides, in one atomic statement, whether it may go ahead: `Ok(None)`
/// when it was counted (fewer than `max` in the current window before it), `Ok(Some(seconds to
/// wait))` when the window is used up (nothing counted). However many requests race, on however
/// many instances, at most `max` are let through per window (api.md §6).
async fn reserve<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    kind: Kind,
    subject: &str,
    max: u32,
    window: Duration,
) -> Result<Option<u64>, DbErr> {
    let stale = Expr::col((Entity, Column::WindowStart)).lte(now - chrono_dur(window));
    let below_max = Expr::col((Entity, Column::Count)).lt(i32::try_from(max).unwrap_or(i32::MAX));
    let insert = Query::insert()
        .into_table(Entity)
        .columns([Column::Kind, Column::Subject, Column::WindowStart, Column::Count])
        .values_panic([kind.as_str().into(), subject.into(), now.into(), 1i32.into()])
        .on_conflict(
            OnConflict::columns([Column::Kind, Column::Subject])
                .value(
                    Column::Count,
                    Expr::case(stale.clone(), 1i32).finally(Expr::col((Entity, Column::Count)).add(1i32)),
                )
                .value(
                    Column::WindowStart,
                    Expr::case(stale.clone(), now).finally(Expr::col((Entity, Column::WindowStart))),
                )
                // No update (and so no row returned) when the window is current and full.
                .action_and_where(stale.or(below_max))
                .to_owned(),
        )
        .returning_col(Column::Count)
        .to_owned();
    if db.query_one(&insert).await?.is_some() {
        return Ok(None);
    }
    let Some(start) = window_start(db, kind, subject).await? else {
        // The row vanished in between (a success cleared it): refuse this one attempt anyway.
        return Ok(Some(1));
    };
    let ends = start + chrono_dur(window);
    // Round up: a client that waits exactly Retry-After seconds must find the window over.
    let millis = u64::try_from((ends - now).num_milliseconds()).unwrap_or(0);
    Ok(Some(Ord::max(millis.div_ceil(1000), 1)))
}

/// Marks the current window of a refused subject as noted, once: `Ok(true)` for the first caller
/// after the window filled up, `Ok(false)` for every later one. The count moves from `max` to
/// `max + 1` (still refused by [`reserve`], which lets through only counts below `max`); the
/// condition on the count makes racing callers, on any instance, agree on one winner. Refused
/// logins write one `login_locked` event per account per window this way (api.md §14).
pub async fn note_refusal<C: ConnectionTrait>(db: &C, kind: Kind, subject: &str, max: u32) -> Result<bool, DbErr> {
    let max = i32::try_from(max).unwrap_or(i32::MAX - 1);
    let marked = Entity::update_many()
        .col_expr(Column::Count, Expr::value(max + 1))
        .filter(Column::Kind.eq(kind.as_str()))
        .filter(Column::Subject.eq(subject))
        .filter(Column::Count.eq(max))
        .exec(db)
        .await?;
    Ok(marked.rows_affected == 1)
}

/// A successful login starts the count afresh.
pub async fn clear<C: ConnectionTrait>(db: &C, kind: Kind, subject: &str) -> Result<(), DbErr> {
    Entity::delete_by_id((kind.as_str().to_owned(), subject.to_owned())).exec(db).await?;
    Ok(())
}

/// Gives back one counted attempt (a right password whose login continues with a second factor):
/// wrong passwords and wrong codes then share one budget, and the count of wrong codes survives.
pub async fn release<C: ConnectionTrait>(db: &C, kind: Kind, subject: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Count, Expr::col(Column::Count).sub(1i32))
        .filter(Column::Kind.eq(kind.as_str()))
        .filter(Column::Subject.eq(subject))
        .filter(Column::Count.gt(0i32))
        .exec(db)
        .await?;
    Ok(())
}

/// When the current window of `subject` started, if it has one.
pub async fn window_start<C: ConnectionTrait>(
    db: &C,
    kind: Kind,
    subject: &str,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(Entity::find_by_id((kind.as_str().to_owned(), subject.to_owned())).one(db).await?.map(|row| row.window_start))
}

/// Removes windows of `kind` that ended; they no longer block anything.
pub async fn purge<C: ConnectionTrait>(db: &C, now: DateTime<Utc>, kind: Kind, window: Duration) -> Result<u64, DbErr> {
    let cutoff = now - chrono_dur(window);
    Ok(Entity::delete_many()
        .filter(throttle::Column::Kind.eq(kind.as_str()))
        .filter(throttle::Column::WindowStart.lte(cutoff))
        .exec(db)
        .await?
        .rows_affected)
}

impl AuthService {
    /// Counts one attempt of `kind` against the account `email` before the work it guards (see
    /// [`reserve`]): `AccountLocked` or `TooManyResetRequests` once the window is used up.
    pub(super) async fn reserve(&self, kind: Kind, email: &Email) -> Result<(), AuthError> {
        self.reserve_in(&self.db, kind, email).await
    }

    /// The same, in the caller's transaction `db`.
    pub(super) async fn reserve_in<C: ConnectionTrait>(
        &self,
        db: &C,
        kind: Kind,
        email: &Email,
    ) -> Result<(), AuthError> {
        let (max, window) = kind.limits(&self.policy);
        match reserve(db, self.now(), kind, email.as_str(), max, window).await? {
            None => Ok(()),
            Some(retry_after_secs) => Err(kind.refusal(retry_after_secs)),
        }
    }
}
