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
    #[error("internal error: {0}")]
    Internal(#[from] InternalError),
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
    /// Confirmation is required and no mailer is configured (the configuration refuses this).
    #[error("email_verification = \"required\" needs smtp_url and mail_from")]
    VerificationNeedsMail,
    /// The outbox holds mail and no mailer is configured.
    #[error("the outbox holds mail but smtp_url and mail_from are not set")]
    OutboxWithoutMailer,
    /// The hashing queue's semaphore closed (never while the service lives).
    #[error("{0}")]
    HashingQueue(#[from] tokio::sync::AcquireError),
    #[error("hashing task failed: {0}")]
    HashingTask(#[from] tokio::task::JoinError),
    #[error("bcrypt: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    /// bcrypt would silently truncate it.
    #[error("refusing to hash a secret longer than 72 bytes")]
    SecretTooLong,
    /// Encrypting or decrypting with the server key.
    #[error("{0}")]
    Key(#[from] super::key::KeyError),
    /// Serialising what the service stores (outbox payloads, passkey state).
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("totp: {0}")]
    Totp(#[from] totp_rs::TotpError),
    #[error("qr code: {0:?}")]
    QrCode(#[from] qrcodegen::DataTooLong),
    #[error("a stored TOTP secret does not open with this server key")]
    TotpSecretUnreadable,
    #[error("the audit head row is missing")]
    AuditHeadMissing,
    #[error("starting a passkey registration: {0}")]
    PasskeyRegistration(#[source] webauthn_rs::prelude::WebauthnError),
    #[error("starting a passkey login: {0}")]
    PasskeyLogin(#[source] webauthn_rs::prelude::WebauthnError),
    #[error("stored passkey state: {0}")]
    StoredPasskeyState(#[source] serde_json::Error),
    #[error("stored passkey {id}: {source}")]
    StoredPasskey { id: uuid::Uuid, source: serde_json::Error },
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
