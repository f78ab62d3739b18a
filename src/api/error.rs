//! The one error responder: every error leaves as `{"error": code, "message": sentence}`.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

use crate::service::AuthError;

/// Every error code the API answers with: the `error` member of every error body (serialised in
/// snake_case: `MissingField` is `"missing_field"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MissingField,
    InvalidEmail,
    InvalidPassword,
    UserExists,
    InvalidCredentials,
    AccountLocked,
    Unauthorized,
    Forbidden,
    CrossSiteRequest,
    UserNotFound,
    SessionNotFound,
    InvalidToken,
    TooManyRequests,
    Busy,
    InvalidBody,
    InvalidField,
    DuplicateField,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    UnprocessableEntity,
    Unavailable,
    InternalError,
    Error,
    EmailNotConfirmed,
    InvalidCredential,
    SecondFactorRequired,
    InvalidCode,
    AlreadyEnabled,
    NotEnabled,
    NothingToConfirm,
}

/// The body of every error response.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// One human sentence.
    #[schema(example = "The field 'email' is required.")]
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: Status,
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, for 429 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: Status, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    pub fn missing_field(name: &str) -> Self {
        Self::new(Status::BadRequest, ErrorCode::MissingField, format!("The field '{name}' is required."))
    }

    /// Classic routes answer every client error with one status; server errors stay as they are.
    pub fn with_client_status(mut self, status: Status) -> Self {
        if self.status.code < 500 && self.status != Status::TooManyRequests {
            self.status = status;
        }
        self
    }

    /// The generic error for a status, when nothing more precise is known (Rocket's own errors).
    pub fn for_status(status: Status) -> Self {
        use ErrorCode::*;
        let (code, message) = match status.code {
            400 => (BadRequest, "The request could not be understood."),
            401 => (Unauthorized, "A valid session is required."),
            403 => (Forbidden, "This is not allowed."),
            404 => (NotFound, "There is no such route."),
            405 => (MethodNotAllowed, "This method is not allowed here."),
            408 => (RequestTimeout, "The request took too long to arrive."),
            413 => (PayloadTooLarge, "The request body is too large."),
            415 => (UnsupportedMediaType, "Send application/x-www-form-urlencoded or application/json."),
            422 => (UnprocessableEntity, "The request body could not be processed."),
            429 => (TooManyRequests, "Too many requests; try again later."),
            503 => (Unavailable, "The service is temporarily unavailable."),
            c if c >= 500 => (InternalError, "Something went wrong on our side."),
            _ => (Error, "The request failed."),
        };
        Self::new(status, code, message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use AuthError::*;
        let msg = e.to_string();
        match e {
            InvalidEmail(_) => Self::new(Status::BadRequest, ErrorCode::InvalidEmail, capitalise(&msg)),
            // api.md §13 gives this message word for word.
            InvalidPassword(crate::service::domain::PasswordError::TooCommon) => {
                Self::new(Status::BadRequest, ErrorCode::InvalidPassword, "this password is too common")
            }
            InvalidPassword(_) => Self::new(Status::BadRequest, ErrorCode::InvalidPassword, capitalise(&msg)),
            EmailNotConfirmed => Self::new(
                Status::Forbidden,
                ErrorCode::EmailNotConfirmed,
                "Confirm your email address first: follow the link we sent you, or ask for a new one.",
            ),
            InvalidVerificationToken => Self::new(
                Status::BadRequest,
                ErrorCode::InvalidToken,
                "The confirmation token is unknown, expired or already used.",
            ),
            UserExists => {
                Self::new(Status::BadRequest, ErrorCode::UserExists, "A user with this email already exists.")
            }
            InvalidCredentials => {
                Self::new(Status::Unauthorized, ErrorCode::InvalidCredentials, "Invalid email or password.")
            }
            AccountLocked { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(Status::TooManyRequests, ErrorCode::AccountLocked, capitalise(&msg))
            },
            TooManyResetRequests { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(Status::TooManyRequests, ErrorCode::TooManyRequests, capitalise(&msg))
            },
            UserNotFound => Self::new(Status::NotFound, ErrorCode::UserNotFound, "There is no user with this email."),
            InvalidResetToken => Self::new(
                Status::BadRequest,
                ErrorCode::InvalidToken,
                "The reset token is unknown, expired or already used.",
            ),
            NotAuthenticated => {
                Self::new(Status::Unauthorized, ErrorCode::Unauthorized, "A valid session is required.")
            }
            SessionNotFound => {
                Self::new(Status::NotFound, ErrorCode::SessionNotFound, "You have no session with this id.")
            }
            Busy => Self {
                retry_after: Some(1),
                ..Self::new(Status::ServiceUnavailable, ErrorCode::Busy, "The server is busy; try again in a second.")
            },
            InvalidPasskey => Self::new(
                Status::BadRequest,
                ErrorCode::InvalidCredential,
                "The passkey credential was not accepted (bad attestation, wrong origin, or an unknown or used challenge).",
            ),
            PasskeyLoginFailed => {
                Self::new(Status::Unauthorized, ErrorCode::InvalidCredentials, "The passkey was not accepted.")
            }
            PasskeyNotFound => Self::new(Status::NotFound, ErrorCode::NotFound, "You have no passkey with this id."),
            InvalidPasskeyName(_) => Self::new(Status::BadRequest, ErrorCode::InvalidField, capitalise(&msg)),
            PasskeysUnavailable => Self::new(
                Status::ServiceUnavailable,
                ErrorCode::Unavailable,
                "Passkeys are unavailable: public_url must name a domain, not an IP address.",
            ),
            SecondFactorRequired => Self::new(
                Status::Unauthorized,
                ErrorCode::SecondFactorRequired,
                "This login needs its second factor: POST /api/v1/session/second_factor.",
            ),
            InvalidCode => {
                Self::new(Status::Unauthorized, ErrorCode::InvalidCode, "The code is wrong, expired or already used.")
            }
            AlreadyEnabled => {
                Self::new(Status::Conflict, ErrorCode::AlreadyEnabled, "Two-factor authentication is already enabled.")
            }
            NotEnabled => {
                Self::new(Status::Conflict, ErrorCode::NotEnabled, "Two-factor authentication is not enabled.")
            }
            NothingToConfirm => Self::new(
                Status::Conflict,
                ErrorCode::NothingToConfirm,
                "There is no two-factor enrolment to confirm; start one with POST /api/v1/totp.",
            ),
            ref err if err.is_unavailable() => {
                tracing::error!(error = %err, "database unavailable");
                Self::for_status(Status::ServiceUnavailable)
            }
            Database(_) | Internal(_) | Mail(_) => {
                tracing::error!(error = %msg, "request failed");
                Self::for_status(Status::InternalServerError)
            }
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), c.as_str()),
        None => String::new(),
    }
}

/// A JSON response with an arbitrary status.
pub fn json_response(status: Status, body: &impl serde::Serialize) -> Response<'static> {
    // Serialising our own plain structs cannot fail; an empty object would be the fallback.
    let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    Response::build().status(status).header(ContentType::JSON).sized_body(body.len(), Cursor::new(body)).finalize()
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = ErrorBody { error: self.code, message: self.message };
        let mut resp = json_response(self.status, &body);
        if let Some(secs) = self.retry_after {
            resp.set_header(Header::new("Retry-After", secs.to_string()));
        }
        Ok(resp)
    }
}

/// Set by request and data guards before they fail, so the catcher can say exactly what went wrong.
pub(crate) struct CachedError(pub Option<ApiError>);

pub(crate) fn remember(req: &Request<'_>, err: ApiError) -> (Status, ApiError) {
    let status = err.status;
    req.local_cache(|| CachedError(Some(err.clone())));
    (status, err)
}

#[rocket::catch(default)]
pub fn default_catcher(status: Status, req: &Request<'_>) -> super::pages::render::Caught {
    // A page guard that refused the request left the page to answer with.
    if let Some(page) = super::pages::take_refusal(req, status) {
        return super::pages::render::Caught::Refused(page);
    }
    let err = match &req.local_cache(|| CachedError(None)).0 {
        Some(err) if err.status == status => err.clone(),
        _ => ApiError::for_status(status),
    };
    // On a page route the same error is a page (api.md §14).
    super::pages::render::Caught::new(err, req)
}
