//! Creating accounts: a registration through the API (when no confirmation is required) or an
//! account the operator adds. Registrations that wait for a confirmed address are in
//! `verification.rs`.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, SqlErr, TransactionTrait};
use uuid::Uuid;

use super::audit::{EventKind, NewEvent};
use super::domain::{Email, Password};
use super::hashing::HashTicket;
use super::{AuthError, AuthService, RequestContext, UserView};
use crate::entity::user;

impl AuthService {
    pub async fn register(&self, ctx: &RequestContext, email: &str, password: &str) -> Result<UserView, AuthError> {
        // A place in the hashing queue first: a flood is refused before it costs anything else.
        let ticket = self.hasher.admit(self.hash_client(ctx))?;
        let email = Email::parse(email)?;
        let password = self.policy.parse_new_password(password, email.as_str())?;
        self.create_user(ctx, &ticket, &email, &password).await
    }

    async fn create_user(
        &self,
        ctx: &RequestContext,
        ticket: &HashTicket,
        email: &Email,
        password: &Password,
    ) -> Result<UserView, AuthError> {
        // Cheap early answer for the common case; the unique index settles races.
        if self.find_user(email).await?.is_some() {
            return Err(AuthError::UserExists);
        }
        let hash = ticket.hash(password).await?;
        let at = self.now();
        let model = user::ActiveModel {
            id: Set(Uuid::new_v4()),
            email: Set(email.as_str().to_owned()),
            password_hash: Set(hash),
            created_at: Set(at),
            updated_at: Set(at),
            last_login_at: Set(None),
            // Through this path (verification off, or the operator) the address counts as confirmed.
            email_confirmed_at: Set(Some(at)),
            credential_version: Set(0),
        };
        let txn = self.db.begin().await?;
        let user = match model.insert(&txn).await {
            Ok(m) => m,
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(AuthError::UserExists);
            }
            Err(e) => return Err(e.into()),
        };
        // Through the API an account is registered; from the CLI the operator adds it.
        let kind = if ctx.is_operator() { EventKind::UserAdded } else { EventKind::Registered };
        self.audit_in(&txn, ctx, vec![NewEvent::new(kind, Some(user.id), &user.email)]).await?;
        txn.commit().await?;
        self.count(|m| m.registration());
        Ok(user.into())
    }
}
