//! The current password asked again before a change to the account (the password itself, TOTP,
//! recovery codes, passkeys), checked as a login checks it (api.md §6): a place in the hashing
//! queue, the attempt counted against the account's lockout before bcrypt runs, a wrong one stays
//! counted.

use sea_orm::EntityTrait;

use super::audit::{EventKind, NewEvent};
use super::domain::Email;
use super::hashing::HashTicket;
use super::throttle::{self, Kind};
use super::{AuthError, AuthService, Authenticated, RequestContext};
use crate::entity::user;

/// What a right password does to the account's login window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnRightPassword {
    /// Clears the window: the owner has proved themselves (a password change, a passkey
    /// registration).
    Clear,
    /// Gives back this attempt only: wrong codes counted in the window stay (second factors).
    Release,
}

impl AuthService {
    /// Checks `password` against the caller's current one. `ticket` is the caller's place in the
    /// hashing queue, taken first; it comes back with the user for work that needs it (hashing a
    /// new password).
    pub(super) async fn confirm_current_password(
        &self,
        ctx: &RequestContext,
        ticket: HashTicket,
        me: &Authenticated,
        password: &str,
        on_right: OnRightPassword,
    ) -> Result<(user::Model, HashTicket), AuthError> {
        let email = Email::parse(&me.user.email)?;
        self.reserve(Kind::Login, &email).await?;
        let user = user::Entity::find_by_id(me.user.id).one(&self.db).await?.ok_or(AuthError::NotAuthenticated)?;
        if !ticket.verify(password, Some(&user.password_hash)).await? {
            drop(ticket);
            self.audit_alone(ctx, vec![NewEvent::new(EventKind::LoginFailed, Some(user.id), &user.email)]).await?;
            return Err(AuthError::InvalidCredentials);
        }
        match on_right {
            OnRightPassword::Clear => throttle::clear(&self.db, Kind::Login, email.as_str()).await?,
            OnRightPassword::Release => throttle::release(&self.db, Kind::Login, email.as_str()).await?,
        }
        Ok((user, ticket))
    }
}
