//! Sessions gain a public id (shown to their owner and used to end one session, never the
//! cookie's token) and the user agent they were opened with (api.md §8). Existing sessions keep
//! working: each gets a fresh id here.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    TokenHash,
    PublicId,
    UserAgent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Added nullable (SQLite cannot add a NOT NULL column without a constant default), filled
        // for existing rows, then indexed unique.
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::PublicId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::UserAgent).string_len(256).null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(backend, "SELECT token_hash FROM sessions WHERE public_id IS NULL"))
            .await?;
        for row in rows {
            let token_hash: String = row.try_get_by_index(0)?;
            let update = Query::update()
                .table(Sessions::Table)
                .value(Sessions::PublicId, uuid::Uuid::new_v4())
                .and_where(Expr::col(Sessions::TokenHash).eq(token_hash))
                .to_owned();
            manager.exec_stmt(update).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_public_id")
                    .table(Sessions::Table)
                    .col(Sessions::PublicId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_sessions_public_id").table(Sessions::Table).to_owned()).await?;
        for col in [Sessions::UserAgent, Sessions::PublicId] {
            manager.alter_table(Table::alter().table(Sessions::Table).drop_column(col).to_owned()).await?;
        }
        Ok(())
    }
}
