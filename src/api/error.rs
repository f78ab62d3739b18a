//! The one error responder: every error leaves as `{"error": code, "message": sentence}`.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

use crate::service::AuthError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: Status,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: Status, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    pub fn missing_field(name: &str) -> Self {
        Self::new(Status::BadRequest, "missing_field", format!("The field '{name}' is required."))
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
        let (code, message) = match status.code {
            400 => ("bad_request", "The request could not be understood."),
            401 => ("unauthorized", "A valid session is required."),
            403 => ("forbidden", "This is not allowed."),
            404 => ("not_found", "There is no such route."),
            405 => ("method_not_allowed", "This method is not allowed here."),
            408 => ("request_timeout", "The request took too long to arrive."),
            413 => ("payload_too_large", "The request body is too large."),
            415 => ("unsupported_media_type", "Send application/x-www-form-urlencoded or application/json."),
            422 => ("unprocessable_entity", "The request body could not be processed."),
            429 => ("too_many_requests", "Too many requests; try again later."),
            503 => ("unavailable", "The service is temporarily unavailable."),
            c if c >= 500 => ("internal_error", "Something went wrong on our side."),
            _ => ("error", "The request failed."),
        };
        Self::new(status, code, message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use AuthError::*;
        let msg = e.to_string();
        match e {
            InvalidEmail(_) => Self::new(Status::BadRequest, "invalid_email", capitalise(&msg)),
            InvalidPassword(_) => Self::new(Status::BadRequest, "invalid_password", capitalise(&msg)),
            UserExists => Self::new(Status::BadRequest, "user_exists", "A user with this email already exists."),
            InvalidCredentials => Self::new(Status::Unauthorized, "invalid_credentials", "Invalid email or password."),
            AccountLocked { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(Status::TooManyRequests, "account_locked", capitalise(&msg))
            },
            TooManyResetRequests { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(Status::TooManyRequests, "too_many_requests", capitalise(&msg))
            },
            UserNotFound => Self::new(Status::NotFound, "user_not_found", "There is no user with this email."),
            InvalidResetToken => {
                Self::new(Status::BadRequest, "invalid_token", "The reset token is unknown, expired or already used.")
            }
            NotAuthenticated => Self::new(Status::Unauthorized, "unauthorized", "A valid session is required."),
            Busy => Self {
                retry_after: Some(1),
                ..Self::new(Status::ServiceUnavailable, "busy", "The server is busy; try again in a second.")
            },
            ref err if err.is_unavailable() => {
                tracing::error!(error = %err, "database unavailable");
                Self::for_status(Status::ServiceUnavailable)
            }
            Database(_) | Internal(_) => {
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
pub fn json_response(status: Status, body: &serde_json::Value) -> Response<'static> {
    let body = body.to_string();
    Response::build().status(status).header(ContentType::JSON).sized_body(body.len(), Cursor::new(body)).finalize()
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut resp = json_response(self.status, &serde_json::json!({"error": self.code, "message": self.message}));
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
pub fn default_catcher(status: Status, req: &Request<'_>) -> ApiError {
    match &req.local_cache(|| CachedError(None)).0 {
        Some(err) if err.status == status => err.clone(),
        _ => ApiError::for_status(status),
    }
}
