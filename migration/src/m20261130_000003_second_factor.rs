//! Second factors (api.md §10): a TOTP secret per user (encrypted with the server key, with the
//! last accepted step for single use), recovery-code digests, and pending logins (a password
//! accepted, the second factor still owed). Pending logins live apart from `sessions` so that no
//! session read can ever take one for a full session.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum TotpFactors {
    Table,
    UserId,
    Secret,
    CreatedAt,
    ConfirmedAt,
    TotpLastStep,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    UserId,
    Digest,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PendingLogins {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
}

fn user_fk(name: &str, table: impl IntoIden, col: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, col)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .on_update(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TotpFactors::Table)
                    .if_not_exists()
                    .col(uuid(TotpFactors::UserId).primary_key())
                    // Nonce ‖ ciphertext ‖ tag under the server key; never the secret itself.
                    .col(blob(TotpFactors::Secret))
                    .col(timestamp_with_time_zone(TotpFactors::CreatedAt))
                    // NULL until the user proves their authenticator has it.
                    .col(timestamp_with_time_zone_null(TotpFactors::ConfirmedAt))
                    // The last accepted RFC 6238 step (unix time / 30); 0 before any.
                    .col(big_integer(TotpFactors::TotpLastStep).default(0))
                    .foreign_key(&mut user_fk("fk_totp_factors_user", TotpFactors::Table, TotpFactors::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .if_not_exists()
                    .col(uuid(RecoveryCodes::UserId))
                    // HMAC-SHA-256 under the server key's "recovery" subkey, hex.
                    .col(string_len(RecoveryCodes::Digest, 64))
                    .col(timestamp_with_time_zone(RecoveryCodes::CreatedAt))
                    .primary_key(Index::create().col(RecoveryCodes::UserId).col(RecoveryCodes::Digest))
                    .foreign_key(&mut user_fk("fk_recovery_codes_user", RecoveryCodes::Table, RecoveryCodes::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PendingLogins::Table)
                    .if_not_exists()
                    .col(string_len(PendingLogins::TokenHash, 64).primary_key())
                    .col(uuid(PendingLogins::UserId))
                    .col(timestamp_with_time_zone(PendingLogins::CreatedAt))
                    .col(timestamp_with_time_zone(PendingLogins::ExpiresAt))
                    .foreign_key(&mut user_fk("fk_pending_logins_user", PendingLogins::Table, PendingLogins::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pending_logins_user_id")
                    .table(PendingLogins::Table)
                    .col(PendingLogins::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pending_logins_expires_at")
                    .table(PendingLogins::Table)
                    .col(PendingLogins::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [PendingLogins::Table.into_iden(), RecoveryCodes::Table.into_iden(), TotpFactors::Table.into_iden()] {
            manager.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
