//! The current password asked again before a change to an account's factors (TOTP, recovery
//! codes, passkeys), checked as a login checks it (api.md §6): a place in the hashing queue, the
//! attempt counted against the account's lockout before bcrypt runs, a wrong one stays counted.

use sea_orm::EntityTrait;

use super::audit::{EventKind, NewEvent};
use super::domain::Email;
use super::hashing::HashTicket;
use super::throttle::{self, Kind};
use super::{AuthError, AuthService, UserView};
use crate::entity::user;

/// What a right password does to the account's login window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnRightPassword {
    /// Clears the window: the owner has proved themselves (a passkey registration).
    Clear,
    /// Gives back this attempt only: wrong codes counted in the window stay (second factors).
    Release,
}

impl AuthService {
    /// Checks `password` against `caller`'s current one. `ticket` is the caller's place in the
    /// hashing queue, taken first by the caller (before or after authenticating, as its route did).
    pub(super) async fn confirm_current_password(
        &self,
        ticket: HashTicket,
        caller: &UserView,
        password: &str,
        on_right: OnRightPassword,
    ) -> Result<user::Model, AuthError> {
        let email = Email::parse(&caller.email)?;
        let (max, window) = (self.policy.login_max_failures, self.policy.login_failure_window);
        if let Some(retry_after_secs) =
            throttle::reserve(&self.db, self.now(), Kind::Login, email.as_str(), max, window).await?
        {
            return Err(AuthError::AccountLocked { retry_after_secs });
        }
        let user = user::Entity::find_by_id(caller.id).one(&self.db).await?.ok_or(AuthError::NotAuthenticated)?;
        if !ticket.verify(password, Some(&user.password_hash)).await? {
            drop(ticket);
            self.audit_alone(vec![NewEvent::new(EventKind::LoginFailed, Some(user.id), &user.email)]).await?;
            return Err(AuthError::InvalidCredentials);
        }
        drop(ticket);
        match on_right {
            OnRightPassword::Clear => throttle::clear(&self.db, Kind::Login, email.as_str()).await?,
            OnRightPassword::Release => throttle::release(&self.db, Kind::Login, email.as_str()).await?,
        }
        Ok(user)
    }
}
