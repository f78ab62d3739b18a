//! Passkeys (api.md §11): each user's WebAuthn credentials, the ceremony state of registrations and
//! logins in progress (in the database, so any instance can finish what another started), and the
//! login method of `login_succeeded` audit events.

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
enum AuditEvents {
    Table,
    Method,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialId,
    Name,
    Credential,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum PasskeyChallenges {
    Table,
    IdHash,
    Kind,
    UserId,
    State,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `login_succeeded` says how (api.md §11): password or passkey. Older events keep none.
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .add_column(ColumnDef::new(AuditEvents::Method).string_len(32).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .if_not_exists()
                    .col(uuid(Passkeys::Id).primary_key())
                    .col(uuid(Passkeys::UserId))
                    // base64url of the credential id: unique, a credential belongs to one account.
                    .col(string_len_uniq(Passkeys::CredentialId, 1400))
                    .col(string_len(Passkeys::Name, 64))
                    // webauthn-rs' Passkey as JSON: public key, signature counter, backup flags.
                    .col(text(Passkeys::Credential))
                    .col(timestamp_with_time_zone(Passkeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(Passkeys::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_passkeys_user")
                            .from(Passkeys::Table, Passkeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_passkeys_user_id")
                    .table(Passkeys::Table)
                    .col(Passkeys::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PasskeyChallenges::Table)
                    .if_not_exists()
                    // SHA-256 of the challenge id handed to the client: the id itself is never stored.
                    .col(string_len(PasskeyChallenges::IdHash, 64).primary_key())
                    .col(string_len(PasskeyChallenges::Kind, 16))
                    // The registering user; null for a login (the passkey names its user).
                    .col(uuid_null(PasskeyChallenges::UserId))
                    .col(text(PasskeyChallenges::State))
                    .col(timestamp_with_time_zone(PasskeyChallenges::CreatedAt))
                    .col(timestamp_with_time_zone(PasskeyChallenges::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_passkey_challenges_user")
                            .from(PasskeyChallenges::Table, PasskeyChallenges::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_passkey_challenges_expires_at")
                    .table(PasskeyChallenges::Table)
                    .col(PasskeyChallenges::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PasskeyChallenges::Table).if_exists().to_owned()).await?;
        manager.drop_table(Table::drop().table(Passkeys::Table).if_exists().to_owned()).await?;
        manager.alter_table(Table::alter().table(AuditEvents::Table).drop_column(AuditEvents::Method).to_owned()).await
    }
}
