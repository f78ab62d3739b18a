//! Users, sessions, reset tokens and the per-account throttle counters.
//!
//! Column types are chosen so SQLite and PostgreSQL behave alike: UUID ids, timestamps with time zone
//! (always written in UTC), emails stored already normalised (trimmed, lower-cased) under a unique index.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    CreatedAt,
    UpdatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ResetTokens {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Throttles {
    Table,
    Kind,
    Subject,
    WindowStart,
    Count,
}

/// SHA-256 in lower-case hex.
const HASH_LEN: u32 = 64;
/// RFC 5321 limit; api.md §3 caps emails at 254 bytes.
const EMAIL_LEN: u32 = 254;

/// `CREATE INDEX IF NOT EXISTS name ON table (cols)`.
async fn index<T: IntoIden + 'static, C: IntoIden + 'static, const N: usize>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: [C; N],
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(table).if_not_exists();
    for col in cols {
        index.col(col);
    }
    manager.create_index(index).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(uuid(Users::Id).primary_key())
                    .col(string_len_uniq(Users::Email, EMAIL_LEN))
                    .col(string_len(Users::PasswordHash, 128))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Users::LastLoginAt))
                    .to_owned(),
            )
            .await?;
        // `user list` streams in creation order.
        index(manager, "idx_users_created_at", Users::Table, [Users::CreatedAt, Users::Id]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(string_len(Sessions::TokenHash, HASH_LEN).primary_key())
                    .col(uuid(Sessions::UserId))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::LastSeenAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Revoking all of a user's sessions, counting them in `user list`.
        index(manager, "idx_sessions_user_id", Sessions::Table, [Sessions::UserId]).await?;
        // Purging expired sessions.
        index(manager, "idx_sessions_expires_at", Sessions::Table, [Sessions::ExpiresAt]).await?;

        manager
            .create_table(
                Table::create()
                    .table(ResetTokens::Table)
                    .if_not_exists()
                    .col(string_len(ResetTokens::TokenHash, HASH_LEN).primary_key())
                    .col(uuid(ResetTokens::UserId))
                    .col(timestamp_with_time_zone(ResetTokens::CreatedAt))
                    .col(timestamp_with_time_zone(ResetTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ResetTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reset_tokens_user")
                            .from(ResetTokens::Table, ResetTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Voiding a user's older tokens when a new one is issued.
        index(manager, "idx_reset_tokens_user_id", ResetTokens::Table, [ResetTokens::UserId]).await?;
        index(manager, "idx_reset_tokens_expires_at", ResetTokens::Table, [ResetTokens::ExpiresAt]).await?;

        // Keyed by normalised email, not user id: unknown emails are counted too, so the write
        // happens on every failed login and timing reveals nothing about which accounts exist.
        manager
            .create_table(
                Table::create()
                    .table(Throttles::Table)
                    .if_not_exists()
                    .col(string_len(Throttles::Kind, 16))
                    .col(string_len(Throttles::Subject, EMAIL_LEN))
                    .col(timestamp_with_time_zone(Throttles::WindowStart))
                    .col(integer(Throttles::Count))
                    .primary_key(Index::create().col(Throttles::Kind).col(Throttles::Subject))
                    .to_owned(),
            )
            .await?;
        index(manager, "idx_throttles_window_start", Throttles::Table, [Throttles::WindowStart]).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Throttles::Table.into_iden(),
            ResetTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
