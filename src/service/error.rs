//! Every way a service call can fail ([`AuthError`]), and what went wrong inside when it is
//! nobody's fault but ours ([`InternalError`]). The HTTP API maps them to status codes, the CLI
//! to exit codes.

use sea_orm::DbErr;

use super::domain::{EmailError, PasswordError};
use super::mail;

/// Every way a service call can fail. The HTTP API maps these to status codes, the CLI to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email: {0}")]
    InvalidEmail(#[from] EmailError),
    #[error("invalid password: {0}")]
    InvalidPassword(#[from] PasswordError),
    #[error("a user with this email already exists")]
    UserExists,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("too many failed logins for this account; try again in {retry_after_secs} seconds")]
    AccountLocked { retry_after_secs: u64 },
    #[error("too many reset requests for this account; try again in {retry_after_secs} seconds")]
    TooManyResetRequests { retry_after_secs: u64 },
    #[error("no user with this email")]
    UserNotFound,
    #[error("the reset token is unknown, expired or already used")]
    InvalidResetToken,
    #[error("no valid session")]
    NotAuthenticated,
    #[error("no such session among yours")]
    SessionNotFound,
    #[error("the server is busy; try again in a second")]
    Busy,
    #[error("the email address is not confirmed yet")]
    EmailNotConfirmed,
    #[error("the confirmation token is unknown, expired or already used")]
    InvalidVerificationToken,
    #[error("mail: {0}")]
    Mail(#[from] mail::MailError),
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    // A `String` until the other service files are typed (they build it with `to_string()`).
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the passkey credential was not accepted")]
    InvalidPasskey,
    #[error("the passkey was not accepted")]
    PasskeyLoginFailed,
    #[error("no such passkey among yours")]
    PasskeyNotFound,
    #[error("invalid passkey name: {0}")]
    InvalidPasskeyName(String),
    #[error("passkeys need public_url with a domain name")]
    PasskeysUnavailable,
    #[error("this login needs its second factor first")]
    SecondFactorRequired,
    #[error("the code is wrong, expired or already used")]
    InvalidCode,
    #[error("two-factor authentication is already enabled")]
    AlreadyEnabled,
    #[error("two-factor authentication is not enabled")]
    NotEnabled,
    #[error("there is no two-factor enrolment to confirm")]
    NothingToConfirm,
}

/// What failed inside the service: a 500 at the API, exit code 1 at the CLI. The messages are
/// the ones the logs and the CLI have always shown (the CLI prints a cause only when its text is
/// not already in the message).
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// The operating system's random source failed (tokens, secrets, seeds).
    #[error("{0}")]
    Random(#[from] getrandom::Error),
    /// A reset by email was asked for, and no mailer is configured.
    #[error("no mailer configured")]
    NoMailer,
    /// The operator asked to mail a reset link, and the mail settings are missing.
    #[error("smtp_url and mail_from are not set")]
    MailNotConfigured,
}

impl AuthError {
    /// True when the database could not be reached (as opposed to a query failing): the edges
    /// answer 503, a state that passes once the database is back.
    pub fn is_unavailable(&self) -> bool {
        use sea_orm::RuntimeErr;
        use sea_orm::sqlx::Error as Sqlx;
        match self {
            AuthError::Database(DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) => true,
            AuthError::Database(DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) => {
                matches!(**e, Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed)
            }
            _ => false,
        }
    }
}

impl From<InternalError> for AuthError {
    fn from(e: InternalError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

impl From<getrandom::Error> for AuthError {
    fn from(e: getrandom::Error) -> Self {
        InternalError::from(e).into()
    }
}
