//! Passkeys over HTTP (api.md §11): registration and login ceremonies, listing and removal.

use rocket::data::{self, Data, FromData};
use rocket::http::Status;
use rocket::request::Request;
use rocket::serde::json::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::body::{self, Body};
use super::error::{ApiError, ErrorBody, ErrorCode, remember};
use super::guard::{AuthUser, SessionCookie, SessionJar};
use super::protect::{ClientBudget, NotCrossSite, Svc};
use super::types::{EmailMessage, Message, timestamp};
use crate::service::AuthError;
use crate::service::passkeys::{Challenge, PasskeyInfo};
use chrono::{DateTime, Utc};

/// `current_password`, as a form or as JSON: the same body (and OpenAPI schema) as the
/// second-factor routes', so the document has one `CurrentPassword`.
pub use super::second_factor::CurrentPassword;

/// A started ceremony: send `options` to `navigator.credentials.create/get` (binary members are
/// base64url strings) and `challenge_id` back with the result.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeAnswer {
    pub challenge_id: String,
    /// `PublicKeyCredentialCreationOptions` or `PublicKeyCredentialRequestOptions` as JSON.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

impl From<Challenge> for ChallengeAnswer {
    fn from(c: Challenge) -> Self {
        Self { challenge_id: c.challenge_id, options: c.options }
    }
}

/// One passkey, as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyItem {
    pub id: uuid::Uuid,
    pub name: String,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    /// Null until the passkey is first used.
    #[serde(serialize_with = "timestamp::optional")]
    #[schema(value_type = Option<String>)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeyInfo> for PasskeyItem {
    fn from(p: PasskeyInfo) -> Self {
        Self { id: p.id, name: p.name, created_at: p.created_at, last_used_at: p.last_used_at }
    }
}

/// A passkey just added.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyAdded {
    pub id: uuid::Uuid,
    pub name: String,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    pub passkeys: Vec<PasskeyItem>,
}

/// The body of `register/finish` and `login/finish`: `challenge_id`, `name` (registration only)
/// and `credential`, the browser's `PublicKeyCredential` as a JSON object (or, in a form, its JSON
/// text). The shared body parser takes only strings, hence this one.
#[derive(Debug, ToSchema)]
pub struct FinishBody {
    pub challenge_id: String,
    pub name: Option<String>,
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

fn invalid_field(name: &str, what: &str) -> ApiError {
    ApiError::new(Status::BadRequest, ErrorCode::InvalidField, format!("The field '{name}' must be {what}."))
}

fn finish_body(req: &Request<'_>, bytes: &[u8]) -> Result<FinishBody, ApiError> {
    let mut fields: Vec<(String, serde_json::Value)> = Vec::new();
    match req.content_type() {
        Some(ct) if ct.is_json() => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                ApiError::new(Status::BadRequest, ErrorCode::InvalidBody, "The body is not valid UTF-8.")
            })?;
            let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).map_err(|_| {
                ApiError::new(Status::BadRequest, ErrorCode::InvalidBody, "The body must be a JSON object.")
            })?;
            fields.extend(object);
        }
        // A form (or an empty body): every value is a string.
        ct => {
            let parsed = body::parse(ct, bytes)?;
            for name in ["challenge_id", "name", "credential"] {
                if let Some(v) = parsed.get(name) {
                    fields.push((name.to_owned(), serde_json::Value::String(v.to_owned())));
                }
            }
        }
    }
    let take = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let string = |name: &str| -> Result<Option<String>, ApiError> {
        match take(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid_field(name, "a string")),
        }
    };
    let challenge_id = string("challenge_id")?.ok_or_else(|| ApiError::missing_field("challenge_id"))?;
    let name = string("name")?;
    let credential = match take("credential") {
        None | Some(serde_json::Value::Null) => return Err(ApiError::missing_field("credential")),
        Some(serde_json::Value::String(s)) if s.is_empty() => return Err(ApiError::missing_field("credential")),
        Some(serde_json::Value::String(s)) => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&s)
            .map(serde_json::Value::Object)
            .map_err(|_| invalid_field("credential", "a PublicKeyCredential as a JSON object"))?,
        Some(v @ serde_json::Value::Object(_)) => v,
        Some(_) => return Err(invalid_field("credential", "a PublicKeyCredential as a JSON object")),
    };
    Ok(FinishBody { challenge_id, name, credential })
}

#[rocket::async_trait]
impl<'r> FromData<'r> for FinishBody {
    type Error = ApiError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match body::read_bytes(req, data).await.and_then(|bytes| finish_body(req, &bytes)) {
            Ok(body) => data::Outcome::Success(body),
            Err(e) => data::Outcome::Error(remember(req, e)),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/passkeys/register/start", tag = "passkeys", security(("session_cookie" = [])),
    request_body(content((CurrentPassword = "application/x-www-form-urlencoded"), (CurrentPassword = "application/json"))),
    responses((status = 200, description = "Creation options for navigator.credentials.create", body = ChallengeAnswer),
              (status = 400, description = "Missing field", body = ErrorBody),
              (status = 401, description = "No valid session, or wrong current password (counts toward the lockout)", body = ErrorBody),
              (status = 429, description = "Account locked (Retry-After)", body = ErrorBody)))]
#[rocket::post("/passkeys/register/start", data = "<body>")]
pub async fn register_start(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
    me: AuthUser,
    body: Body<CurrentPassword>,
) -> Result<Json<ChallengeAnswer>, ApiError> {
    Ok(Json(svc.start_passkey_registration(&me.token, &body.0.current_password).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/passkeys/register/finish", tag = "passkeys", security(("session_cookie" = [])),
    request_body(content((FinishBody = "application/json"), (FinishBody = "application/x-www-form-urlencoded"))),
    responses((status = 201, description = "Passkey added", body = PasskeyAdded),
              (status = 400, description = "invalid_credential: bad attestation, wrong origin, unknown or used challenge", body = ErrorBody),
              (status = 401, description = "No valid session", body = ErrorBody)))]
#[rocket::post("/passkeys/register/finish", data = "<body>")]
pub async fn register_finish(
    _site: NotCrossSite,
    svc: Svc,
    me: AuthUser,
    body: FinishBody,
) -> Result<(Status, Json<PasskeyAdded>), ApiError> {
    let name = body.name.ok_or_else(|| ApiError::missing_field("name"))?;
    let added = svc.finish_passkey_registration(&me.token, &body.challenge_id, &name, &body.credential).await?;
    Ok((Status::Created, Json(PasskeyAdded { id: added.id, name: added.name, created_at: added.created_at })))
}

#[utoipa::path(get, path = "/api/v1/passkeys", tag = "passkeys", security(("session_cookie" = [])),
    responses((status = 200, description = "The caller's passkeys", body = PasskeyList),
              (status = 401, description = "No valid session", body = ErrorBody)))]
#[rocket::get("/passkeys")]
pub async fn list(svc: Svc, me: AuthUser) -> Result<Json<PasskeyList>, ApiError> {
    let passkeys = svc.my_passkeys(&me.token).await?.into_iter().map(PasskeyItem::from).collect();
    Ok(Json(PasskeyList { passkeys }))
}

#[utoipa::path(delete, path = "/api/v1/passkeys/{id}", tag = "passkeys", security(("session_cookie" = [])),
    params(("id" = String, Path, description = "A passkey's id")),
    responses((status = 200, description = "Passkey removed", body = Message),
              (status = 401, description = "No valid session", body = ErrorBody),
              (status = 404, description = "Not one of the caller's passkeys", body = ErrorBody)))]
#[rocket::delete("/passkeys/<id>")]
pub async fn remove(_site: NotCrossSite, svc: Svc, me: AuthUser, id: &str) -> Result<Json<Message>, ApiError> {
    // A malformed id names none of the caller's passkeys.
    let id = uuid::Uuid::parse_str(id).map_err(|_| AuthError::PasskeyNotFound)?;
    svc.remove_passkey(&me.token, id).await?;
    Ok(Json(Message::new("passkey removed")))
}

#[utoipa::path(post, path = "/api/v1/passkeys/login/start", tag = "passkeys",
    responses((status = 200, description = "Request options for navigator.credentials.get (discoverable credentials, user verification required)", body = ChallengeAnswer)))]
#[rocket::post("/passkeys/login/start")]
pub async fn login_start(
    _site: NotCrossSite,
    _budget: ClientBudget,
    svc: Svc,
) -> Result<Json<ChallengeAnswer>, ApiError> {
    Ok(Json(svc.start_passkey_login().await?.into()))
}

#[utoipa::path(post, path = "/api/v1/passkeys/login/finish", tag = "passkeys",
    request_body(content((FinishBody = "application/json"), (FinishBody = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "Logged in; sets the session_id cookie (a full session). With a pending login's cookie (api.md §10) the passkey must be that user's, and the pending login ends", body = EmailMessage),
              (status = 400, description = "Missing or malformed field", body = ErrorBody),
              (status = 401, description = "invalid_credentials: unknown credential, bad signature, used or expired challenge, or (with a pending login's cookie, api.md §10) a passkey of another user", body = ErrorBody)))]
#[rocket::post("/passkeys/login/finish", data = "<body>")]
pub async fn login_finish(
    _site: NotCrossSite,
    svc: Svc,
    cookies: SessionJar<'_>,
    presented: Option<SessionCookie>,
    body: FinishBody,
) -> Result<Json<EmailMessage>, ApiError> {
    // With a pending login's cookie (api.md §10) the passkey must be that user's; it then ends
    // the pending login. A wrong user's passkey leaves the pending login (and its cookie) as is.
    let presented = presented.map(|SessionCookie(token)| token);
    let session = svc.finish_passkey_login_from(presented.as_deref(), &body.challenge_id, &body.credential).await?;
    cookies.start(&session);
    Ok(Json(EmailMessage::new(session.user.email, "logged in")))
}
