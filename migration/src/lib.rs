//! Schema migrations for userauth. Applied by `userauth db-setup` and at `userauth serve` start-up.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_initial;
mod m20261129_000001_audit;
mod m20261129_000002_session_ids;
mod m20261130_000001_server_key_outbox;
mod m20261130_000002_credential_version;
mod m20261130_000003_second_factor;
mod m20261130_000004_passkeys;
mod m20261130_000005_first_hour;
mod m20261130_000006_email_verification;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_initial::Migration),
            Box::new(m20261129_000001_audit::Migration),
            Box::new(m20261129_000002_session_ids::Migration),
            Box::new(m20261130_000001_server_key_outbox::Migration),
            Box::new(m20261130_000002_credential_version::Migration),
            Box::new(m20261130_000003_second_factor::Migration),
            Box::new(m20261130_000004_passkeys::Migration),
            Box::new(m20261130_000005_first_hour::Migration),
            Box::new(m20261130_000006_email_verification::Migration),
        ]
    }
}
