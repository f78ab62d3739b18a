//! Users gain a credential version (api.md §14, "no false 401"): bumped by every change of the
//! password itself (self-service change, reset, operator actions), kept by a hash upgrade that
//! re-hashes the same password. A login's session and a password change are guarded by it rather
//! than by the stored hash text, which a concurrent upgrade rewrites.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    CredentialVersion,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A constant default lets SQLite add the column NOT NULL; existing rows start at 0.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::CredentialVersion).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::CredentialVersion).to_owned()).await
    }
}
