//! Fixed-window counters in the database, so every `serve` instance sees the same counts and
//! they survive restarts.

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter};

use super::chrono_dur;
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
}

/// `Some(seconds to wait)` when `subject` has used up `max` within the current window.
pub async fn blocked<C: ConnectionTrait>(
    db: &C,
    kind: Kind,
    subject: &str,
    max: u32,
    window: Duration,
) -> Result<Option<u64>, DbErr> {
    let Some(row) = Entity::find_by_id((kind.as_str().to_owned(), subject.to_owned())).one(db).await? else {
        return Ok(None);
    };
    let ends = row.window_start + chrono_dur(window);
    let now = Utc::now();
    if now >= ends || row.count < i32::try_from(max).unwrap_or(i32::MAX) {
        return Ok(None);
    }
    // Round up: a client that waits exactly Retry-After seconds must find the window over.
    let millis = u64::try_from((ends - now).num_milliseconds()).unwrap_or(0);
    Ok(Some(Ord::max(millis.div_ceil(1000), 1)))
}

/// Counts one event, starting a new window when the current one has ended. One atomic upsert,
/// so concurrent requests on any instance all count.
pub async fn hit<C: ConnectionTrait>(db: &C, kind: Kind, subject: &str, window: Duration) -> Result<(), DbErr> {
    let now = Utc::now();
    let stale = Expr::col((Entity, Column::WindowStart)).lte(now - chrono_dur(window));
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
                .value(Column::WindowStart, Expr::case(stale, now).finally(Expr::col((Entity, Column::WindowStart))))
                .to_owned(),
        )
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}

/// A successful login starts the count afresh.
pub async fn clear<C: ConnectionTrait>(db: &C, kind: Kind, subject: &str) -> Result<(), DbErr> {
    Entity::delete_by_id((kind.as_str().to_owned(), subject.to_owned())).exec(db).await?;
    Ok(())
}

/// Removes windows that ended; they no longer block anything.
pub async fn purge<C: ConnectionTrait>(db: &C, window: Duration) -> Result<u64, DbErr> {
    let cutoff = Utc::now() - chrono_dur(window);
    Ok(Entity::delete_many().filter(throttle::Column::WindowStart.lte(cutoff)).exec(db).await?.rows_affected)
}
