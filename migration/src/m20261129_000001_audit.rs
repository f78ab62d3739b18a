//! The audit log (api.md §9): an append-only table of account events, each carrying the SHA-256
//! of (the previous event's hash ‖ its own canonical bytes), and a one-row chain head that every
//! append updates in the same transaction. The head row serialises appends (SQLite's write lock,
//! PostgreSQL's row lock), so `seq` has no gaps and the chain no forks, with any number of
//! instances. Pruning moves the head's `pruned_seq`/`pruned_hash` anchor forward, so what remains
//! still verifies.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Seq,
    At,
    Kind,
    UserId,
    Email,
    Actor,
    Client,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditHead {
    Table,
    Id,
    Seq,
    Hash,
    PrunedSeq,
    PrunedHash,
}

/// The hash before the first event.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_integer(AuditEvents::Seq).primary_key())
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(string_len(AuditEvents::Kind, 32))
                    .col(uuid_null(AuditEvents::UserId))
                    .col(string_len_null(AuditEvents::Email, 254))
                    .col(string_len(AuditEvents::Actor, 8))
                    .col(string_len_null(AuditEvents::Client, 64))
                    .col(string_len(AuditEvents::PrevHash, 64))
                    .col(string_len(AuditEvents::Hash, 64))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [("idx_audit_events_at", AuditEvents::At), ("idx_audit_events_email", AuditEvents::Email)] {
            manager
                .create_index(Index::create().name(name).table(AuditEvents::Table).col(col).if_not_exists().to_owned())
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AuditHead::Table)
                    .if_not_exists()
                    .col(integer(AuditHead::Id).primary_key())
                    .col(big_integer(AuditHead::Seq))
                    .col(string_len(AuditHead::Hash, 64))
                    .col(big_integer(AuditHead::PrunedSeq))
                    .col(string_len(AuditHead::PrunedHash, 64))
                    .to_owned(),
            )
            .await?;
        let head = Query::insert()
            .into_table(AuditHead::Table)
            .columns([AuditHead::Id, AuditHead::Seq, AuditHead::Hash, AuditHead::PrunedSeq, AuditHead::PrunedHash])
            .values_panic([1.into(), 0i64.into(), GENESIS.into(), 0i64.into(), GENESIS.into()])
            .to_owned();
        manager.exec_stmt(head).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [AuditHead::Table.into_iden(), AuditEvents::Table.into_iden()] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
