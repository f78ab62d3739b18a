//! The server key's row and the durable mail outbox (api.md §14).
//!
//! `server_key` holds one row (id 1): the fingerprint every instance's key must match, and the
//! audit chain's legacy anchor — the last event written before the chain was keyed (sequence
//! number and hash), with an HMAC under the key over both, so the anchor cannot be moved to let
//! an unkeyed rewrite pass. The row is written by the first command that runs with a key (the
//! migration cannot: it has no key). `audit_head.pruned_mac` keys the pruning anchor the same way.
//!
//! `outbox` holds accepted reset requests and the emails they lead to, encrypted with the server
//! key, until they are sent or expire. `claimed_until` is a lease: the instance that set it is
//! sending that row; another instance takes it over only once the lease has run out.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ServerKey {
    Table,
    Id,
    Fingerprint,
    LegacySeq,
    LegacyHash,
    AnchorMac,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditHead {
    Table,
    PrunedMac,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Kind,
    Payload,
    CreatedAt,
    NotBefore,
    ExpiresAt,
    Attempts,
    ClaimedUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ServerKey::Table)
                    .if_not_exists()
                    .col(integer(ServerKey::Id).primary_key())
                    .col(string_len(ServerKey::Fingerprint, 64))
                    .col(big_integer(ServerKey::LegacySeq))
                    .col(string_len(ServerKey::LegacyHash, 64))
                    .col(string_len(ServerKey::AnchorMac, 64))
                    .col(timestamp_with_time_zone(ServerKey::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(AuditHead::Table).add_column(string_len_null(AuditHead::PrunedMac, 64)).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(uuid(Outbox::Id).primary_key())
                    .col(string_len(Outbox::Kind, 16))
                    .col(blob(Outbox::Payload))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone(Outbox::NotBefore))
                    .col(timestamp_with_time_zone(Outbox::ExpiresAt))
                    .col(integer(Outbox::Attempts))
                    .col(timestamp_with_time_zone_null(Outbox::ClaimedUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_not_before")
                    .table(Outbox::Table)
                    .col(Outbox::NotBefore)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Outbox::Table).if_exists().to_owned()).await?;
        manager
            .alter_table(Table::alter().table(AuditHead::Table).drop_column(AuditHead::PrunedMac).to_owned())
            .await?;
        manager.drop_table(Table::drop().table(ServerKey::Table).if_exists().to_owned()).await?;
        Ok(())
    }
}
