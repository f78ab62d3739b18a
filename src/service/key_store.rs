//! The server key as the database knows it (api.md §14): the fingerprint every instance's key
//! must match, and the audit chain's legacy anchor, both in the one-row `server_key` table.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait};

use super::AuthError;
use super::audit::lock_head;
use super::key::ServerKey;
use crate::entity::{audit_head, server_key};

/// What binding a key to a database found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// The database had no key yet: this key's fingerprint (and the audit anchor) were recorded.
    Recorded,
    /// The database's fingerprint is this key's.
    Matches,
    /// The database was set up with another key (its fingerprint).
    Mismatch { stored: String },
}

/// The fingerprint the database holds, if any.
pub async fn stored_fingerprint<C: ConnectionTrait>(db: &C) -> Result<Option<String>, AuthError> {
    Ok(server_key::Entity::find_by_id(1).one(db).await?.map(|r| r.fingerprint))
}

/// The MAC that binds the legacy anchor to the key.
pub(super) fn legacy_anchor_mac(key: &ServerKey, fingerprint: &str, seq: i64, hash: &str) -> String {
    hex::encode(key.mac("audit-anchor", format!("legacy|{fingerprint}|{seq}|{hash}").as_bytes()))
}

/// The MAC that binds the pruning anchor to the key.
pub(super) fn pruned_anchor_mac(key: &ServerKey, seq: i64, hash: &str) -> String {
    hex::encode(key.mac("audit-anchor", format!("pruned|{seq}|{hash}").as_bytes()))
}

/// Records `key` as the database's key when it has none, or compares it with the one recorded.
///
/// Recording takes the audit head's lock (as appends do), so the legacy anchor is exactly the
/// last event written unkeyed, and two instances binding at once are serialised: the second
/// sees the first's fingerprint.
pub async fn bind(db: &DatabaseConnection, key: &ServerKey, at: DateTime<Utc>) -> Result<Binding, AuthError> {
    let fingerprint = key.fingerprint();
    if let Some(stored) = stored_fingerprint(db).await? {
        return Ok(if stored == fingerprint { Binding::Matches } else { Binding::Mismatch { stored } });
    }
    let txn = db.begin().await?;
    lock_head(&txn).await?;
    if let Some(stored) = stored_fingerprint(&txn).await? {
        txn.commit().await?;
        return Ok(if stored == fingerprint { Binding::Matches } else { Binding::Mismatch { stored } });
    }
    let head = audit_head::Entity::find_by_id(1)
        .one(&txn)
        .await?
        .ok_or_else(|| AuthError::Internal("the audit head row is missing".into()))?;
    server_key::ActiveModel {
        id: Set(1),
        fingerprint: Set(fingerprint.clone()),
        legacy_seq: Set(head.seq),
        legacy_hash: Set(head.hash.clone()),
        anchor_mac: Set(legacy_anchor_mac(key, &fingerprint, head.seq, &head.hash)),
        created_at: Set(at),
    }
    .insert(&txn)
    .await?;
    // A pruning anchor left before the key existed is vouched for now, once.
    let pruned_mac = pruned_anchor_mac(key, head.pruned_seq, &head.pruned_hash);
    audit_head::ActiveModel { id: Set(1), pruned_mac: Set(Some(pruned_mac)), ..Default::default() }
        .update(&txn)
        .await?;
    txn.commit().await?;
    Ok(Binding::Recorded)
}
