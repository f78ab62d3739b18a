//! The audit log's hash chain.
//!
//! An event's link is HMAC-SHA-256 under the server key (purpose `audit`) of (previous hash as hex
//! ‖ canonical bytes), the canonical bytes being the JSON array `[seq, at, kind, user_id, email,
//! actor, client]` (`at` in RFC 3339 with microseconds, absent values as ""). Keyed, so that
//! rewriting the chain needs the key, not only write access to the database. Events written
//! before the key existed used plain SHA-256; they still verify up to the legacy anchor recorded
//! when the key was bound (`key_store`), an anchor that is itself MAC'd with the key.
//!
//! Appends first bump the one-row head (`UPDATE … RETURNING`), which holds SQLite's write lock or
//! PostgreSQL's row lock until the transaction ends: appends from any number of connections and
//! instances are serialised, and `seq` has no gaps because a rolled-back transaction rolls its
//! increment back too.

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::StreamExt;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder, TransactionTrait};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{EventKind, NewEvent, Verified};
use crate::entity::{audit_event, audit_head, server_key};
use crate::service::key::ServerKey;
use crate::service::key_store::{legacy_anchor_mac, pruned_anchor_mac};
use crate::service::{Actor, AuthError, AuthService, chrono_dur};

// One argument per hashed field: the canonical form is exactly this list.
#[allow(clippy::too_many_arguments)]
fn canonical(
    seq: i64,
    at: DateTime<Utc>,
    kind: &str,
    user_id: Option<Uuid>,
    email: Option<&str>,
    actor: &str,
    client: Option<&str>,
    method: Option<&str>,
) -> String {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let user = user_id.map(|u| u.to_string()).unwrap_or_default();
    let mut fields = vec![
        serde_json::json!(seq),
        at.into(),
        kind.into(),
        user.into(),
        email.unwrap_or("").into(),
        actor.into(),
        client.unwrap_or("").into(),
    ];
    // Only events that carry a method hash it: older chains keep verifying.
    if let Some(m) = method {
        fields.push(m.into());
    }
    serde_json::Value::Array(fields).to_string()
}

/// The unkeyed link of events written before the server key existed.
fn legacy_chain(prev: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// The keyed link: HMAC-SHA-256 under the server key.
fn chain(key: &ServerKey, prev: &str, canonical: &str) -> String {
    let mut data = Vec::with_capacity(prev.len() + canonical.len());
    data.extend_from_slice(prev.as_bytes());
    data.extend_from_slice(canonical.as_bytes());
    hex::encode(key.mac("audit", &data))
}

fn event_hash(key: Option<&ServerKey>, m: &audit_event::Model) -> String {
    let c = canonical(
        m.seq,
        m.at,
        &m.kind,
        m.user_id,
        m.email.as_deref(),
        &m.actor,
        m.client.as_deref(),
        m.method.as_deref(),
    );
    match key {
        Some(key) => chain(key, &m.prev_hash, &c),
        None => legacy_chain(&m.prev_hash, &c),
    }
}

/// Takes the head's lock (a no-op update of its row), as appends do: held until `db`'s
/// transaction ends, it serialises whatever else must not interleave with appends.
pub(in crate::service) async fn lock_head<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let lock = Query::update()
        .table(audit_head::Entity)
        .value(audit_head::Column::Seq, Expr::col(audit_head::Column::Seq))
        .and_where(Expr::col(audit_head::Column::Id).eq(1))
        .to_owned();
    db.execute(&lock).await?;
    Ok(())
}

/// Appends `events` in order, in the caller's transaction `db`. Nothing happens for no events.
pub(super) async fn append<C: ConnectionTrait>(
    db: &C,
    key: &ServerKey,
    at: DateTime<Utc>,
    actor: Actor,
    login_method: &str,
    events: Vec<NewEvent>,
) -> Result<(), DbErr> {
    let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
    if n == 0 {
        return Ok(());
    }
    // Timestamps as both backends store them (microseconds), so the hash can be recomputed.
    let at = at.trunc_subsecs(6);
    let (actor_name, client) = match actor {
        Actor::Cli => ("cli", None),
        Actor::Api { client } => ("api", client.map(|c| c.to_string())),
    };
    // Take the head first: this is the lock that serialises appends.
    let bump = Query::update()
        .table(audit_head::Entity)
        .value(audit_head::Column::Seq, Expr::col(audit_head::Column::Seq).add(n))
        .and_where(Expr::col(audit_head::Column::Id).eq(1))
        .returning(Query::returning().columns([audit_head::Column::Seq, audit_head::Column::Hash]))
        .to_owned();
    let row = db.query_one(&bump).await?.ok_or_else(|| DbErr::RecordNotFound("audit_head".into()))?;
    let last_seq: i64 = row.try_get_by_index(0)?;
    let mut prev: String = row.try_get_by_index(1)?;
    let mut models = Vec::with_capacity(events.len());
    for (i, ev) in (0..).zip(events) {
        let seq = last_seq - n + 1 + i;
        let method = (ev.kind == EventKind::LoginSucceeded).then_some(login_method);
        let c = canonical(
            seq,
            at,
            ev.kind.as_str(),
            ev.user_id,
            ev.email.as_deref(),
            actor_name,
            client.as_deref(),
            method,
        );
        let hash = chain(key, &prev, &c);
        models.push(audit_event::ActiveModel {
            seq: sea_orm::Set(seq),
            at: sea_orm::Set(at),
            kind: sea_orm::Set(ev.kind.as_str().to_owned()),
            user_id: sea_orm::Set(ev.user_id),
            email: sea_orm::Set(ev.email),
            actor: sea_orm::Set(actor_name.to_owned()),
            client: sea_orm::Set(client.clone()),
            prev_hash: sea_orm::Set(std::mem::replace(&mut prev, hash.clone())),
            hash: sea_orm::Set(hash),
            method: sea_orm::Set(method.map(str::to_owned)),
        });
    }
    // Insert in chunks: each row binds 9 values, and SQLite allows 32,766 per statement.
    for chunk in models.chunks(1_000) {
        audit_event::Entity::insert_many(chunk.to_vec()).exec(db).await?;
    }
    audit_head::Entity::update_many()
        .col_expr(audit_head::Column::Hash, Expr::value(prev))
        .filter(audit_head::Column::Id.eq(1))
        .exec(db)
        .await?;
    Ok(())
}

impl AuthService {
    /// Recomputes the chain from the pruning anchor to the head: every event must follow the one
    /// before it (no gap), carry the previous hash, and hash to what it says (keyed after the
    /// legacy anchor, plain SHA-256 up to it); the head must name the last event; both anchors
    /// must carry their MAC under this key.
    pub async fn verify_audit(&self) -> Result<Verified, AuthError> {
        let head = audit_head::Entity::find_by_id(1)
            .one(&self.db)
            .await?
            .ok_or_else(|| AuthError::Internal("the audit head row is missing".into()))?;
        // No row: the database was never bound to a key, so every event must be keyed.
        let (legacy_seq, legacy_hash) = match server_key::Entity::find_by_id(1).one(&self.db).await? {
            Some(row) => {
                let mac = legacy_anchor_mac(&self.key, &row.fingerprint, row.legacy_seq, &row.legacy_hash);
                if row.fingerprint != self.key.fingerprint() || mac != row.anchor_mac {
                    return Ok(Verified::Broken {
                        seq: Ord::max(row.legacy_seq, 1),
                        reason: "the chain's key anchor was not made with this server key (altered, or another key)"
                            .into(),
                    });
                }
                (row.legacy_seq, row.legacy_hash)
            }
            None => (0, String::new()),
        };
        if head.pruned_seq > 0
            && head.pruned_mac.as_deref() != Some(&pruned_anchor_mac(&self.key, head.pruned_seq, &head.pruned_hash))
        {
            return Ok(Verified::Broken {
                seq: head.pruned_seq + 1,
                reason: "the pruning anchor was not made with this server key (events removed from the start?)".into(),
            });
        }
        let (mut expected_seq, mut running, mut count) = (head.pruned_seq + 1, head.pruned_hash.clone(), 0u64);
        let mut events = audit_event::Entity::find().order_by_asc(audit_event::Column::Seq).stream(&self.db).await?;
        while let Some(ev) = events.next().await {
            let ev = ev?;
            let broken = |reason: &str| Ok(Verified::Broken { seq: expected_seq, reason: reason.to_owned() });
            if ev.seq < expected_seq {
                return broken("an event is out of order or repeated");
            }
            if ev.seq > expected_seq {
                return broken("this event is missing");
            }
            if ev.prev_hash != running {
                return broken("its previous hash does not match the event before it");
            }
            let key = (ev.seq > legacy_seq).then_some(&*self.key);
            if event_hash(key, &ev) != ev.hash {
                return broken("its hash does not match its contents");
            }
            if ev.seq == legacy_seq && ev.hash != legacy_hash {
                return broken("it is not the last event written before the key, as the key anchor records");
            }
            running = ev.hash;
            expected_seq += 1;
            count += 1;
        }
        if head.seq != expected_seq - 1 || head.hash != running || head.seq < legacy_seq {
            return Ok(Verified::Broken {
                seq: head.seq,
                reason: "the chain head names an event that is not there (events removed from the end?)".into(),
            });
        }
        Ok(Verified::Intact(count))
    }

    /// Deletes events older than `audit_retention_days`, moving the head's anchor to the last one
    /// deleted, so that the rest still verifies. Returns how many were deleted.
    pub async fn prune_audit(&self) -> Result<u64, AuthError> {
        let cutoff = self.now() - chrono_dur(self.policy.audit_retention);
        let txn = self.db.begin().await?;
        lock_head(&txn).await?;
        let last = audit_event::Entity::find()
            .filter(audit_event::Column::At.lt(cutoff))
            .order_by_desc(audit_event::Column::Seq)
            .one(&txn)
            .await?;
        let Some(last) = last else {
            txn.commit().await?;
            return Ok(0);
        };
        let removed =
            audit_event::Entity::delete_many().filter(audit_event::Column::Seq.lte(last.seq)).exec(&txn).await?;
        audit_head::Entity::update_many()
            .col_expr(audit_head::Column::PrunedSeq, Expr::value(last.seq))
            .col_expr(audit_head::Column::PrunedMac, Expr::value(pruned_anchor_mac(&self.key, last.seq, &last.hash)))
            .col_expr(audit_head::Column::PrunedHash, Expr::value(last.hash))
            .filter(audit_head::Column::Id.eq(1))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(removed.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let at = Utc::now().trunc_subsecs(6);
        let base = canonical(1, at, "registered", None, Some("a@b.c"), "api", Some("127.0.0.1"), None);
        let key = ServerKey::from_bytes([3; 32]);
        let h = chain(&key, "0", &base);
        assert_eq!(h.len(), 64);
        assert_ne!(h, chain(&key, "1", &base));
        assert_ne!(h, chain(&ServerKey::from_bytes([4; 32]), "0", &base), "keyed");
        assert_ne!(h, legacy_chain("0", &base), "not the unkeyed hash");
        for other in [
            canonical(2, at, "registered", None, Some("a@b.c"), "api", Some("127.0.0.1"), None),
            canonical(1, at, "login_failed", None, Some("a@b.c"), "api", Some("127.0.0.1"), None),
            canonical(1, at, "registered", None, Some("x@b.c"), "api", Some("127.0.0.1"), None),
            canonical(1, at, "registered", None, Some("a@b.c"), "cli", Some("127.0.0.1"), None),
            canonical(1, at, "registered", None, Some("a@b.c"), "api", None, None),
            canonical(1, at, "registered", None, Some("a@b.c"), "api", Some("127.0.0.1"), Some("passkey")),
        ] {
            assert_ne!(chain(&key, "0", &other), h);
        }
    }
}
