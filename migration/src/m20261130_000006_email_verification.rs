//! Email confirmation (api.md §13): `users.email_confirmed_at` (NULL: not confirmed yet) and the
//! confirmation tokens, stored as SHA-256 digests like reset tokens. Users that exist when this
//! runs count as confirmed (their `created_at`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    CreatedAt,
    EmailConfirmedAt,
}

#[derive(DeriveIden)]
enum EmailVerificationTokens {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(Users::EmailConfirmedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Users::Table)
                    .value(Users::EmailConfirmedAt, Expr::col(Users::CreatedAt))
                    .and_where(Expr::col(Users::EmailConfirmedAt).is_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EmailVerificationTokens::Table)
                    .if_not_exists()
                    .col(string_len(EmailVerificationTokens::TokenHash, 64).primary_key())
                    .col(uuid(EmailVerificationTokens::UserId))
                    .col(timestamp_with_time_zone(EmailVerificationTokens::CreatedAt))
                    .col(timestamp_with_time_zone(EmailVerificationTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(EmailVerificationTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_email_verification_tokens_user")
                            .from(EmailVerificationTokens::Table, EmailVerificationTokens::UserId)
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
                    .name("idx_email_verification_tokens_user_id")
                    .table(EmailVerificationTokens::Table)
                    .col(EmailVerificationTokens::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(EmailVerificationTokens::Table).if_exists().to_owned()).await?;
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::EmailConfirmedAt).to_owned()).await?;
        Ok(())
    }
}
