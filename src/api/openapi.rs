//! The OpenAPI 3 document of the v1 API, generated from the route annotations in `v1.rs` and the
//! body types the handlers use (`types.rs`, `error.rs`).

use rocket::http::ContentType;
use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorCode};
use super::types::{
    Credentials, EmailMessage, EmailOnly, Health, Message, OthersEnded, PasswordChange, Profile, ResetIssued,
    SessionItem, SessionList, UpdatePassword,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "userauth", description = "User authentication service, HTTP API version 1"),
    paths(
        super::v1::register,
        super::v1::login,
        super::v1::logout,
        super::v1::profile,
        super::v1::reset_password,
        super::v1::update_password,
        super::v1::change_password,
        super::v1::sessions,
        super::v1::end_session,
        super::v1::end_other_sessions,
        super::v1::health,
        super::v1::openapi_json,
        super::verify::verify_email,
        super::verify::resend,
        super::passkeys::register_start,
        super::passkeys::register_finish,
        super::passkeys::list,
        super::passkeys::remove,
        super::passkeys::login_start,
        super::passkeys::login_finish,
        super::forward::auth,
        super::second_factor::enrol,
        super::second_factor::confirm,
        super::second_factor::disable,
        super::second_factor::regenerate,
        super::second_factor::second_step
    ),
    components(schemas(
        Credentials,
        EmailOnly,
        UpdatePassword,
        EmailMessage,
        Message,
        Profile,
        ResetIssued,
        Health,
        PasswordChange,
        SessionItem,
        SessionList,
        OthersEnded,
        ErrorBody,
        ErrorCode,
        super::verify::VerifyEmail,
        super::passkeys::ChallengeAnswer,
        super::passkeys::PasskeyItem,
        super::passkeys::PasskeyAdded,
        super::passkeys::PasskeyList,
        super::passkeys::FinishBody,
        super::second_factor::CurrentPassword,
        super::second_factor::CodeOnly,
        super::second_factor::SecondFactorBody,
        super::second_factor::TotpSecret,
        super::second_factor::TotpEnabled,
        super::second_factor::RecoveryCodes,
        super::second_factor::LoginAnswer
    )),
    modifiers(&SessionCookie, &EveryStatus)
)]
pub struct ApiDoc;

/// Declares the `session_id` cookie as the security scheme.
struct SessionCookie;

impl utoipa::Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("session_id"))),
        );
    }
}

/// Declares the statuses every route really answers besides its own (issue 21): 403
/// `cross_site_request` on every POST, PUT and DELETE; 413 and 415 wherever there is a body; 429
/// and 503 on every route that costs a bcrypt computation; 405 is answered (with `Allow`) for
/// other methods on these paths. Also: `GET /metrics`, the logout cookie optional, and `email`
/// properties in `format: email`.
struct EveryStatus;

/// Routes that run bcrypt: per-client limit (429) and hashing queue (503).
const BCRYPT_ROUTES: &[&str] = &["/api/v1/register", "/api/v1/session", "/api/v1/update_password", "/api/v1/password"];

impl utoipa::Modify for EveryStatus {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.put.as_mut()),
                (true, item.delete.as_mut()),
            ];
            for (unsafe_method, op) in ops {
                let Some(op) = op else { continue };
                let mut add = |code: &str, description: &str| {
                    op.responses.responses.entry(code.to_owned()).or_insert_with(|| error(description));
                };
                if unsafe_method {
                    add("403", "cross_site_request: sent by a browser from another site");
                }
                if op.request_body.is_some() {
                    add("413", "payload_too_large: the body is larger than max_body_bytes");
                    add("415", "unsupported_media_type: not form-urlencoded or JSON");
                }
                if BCRYPT_ROUTES.contains(&path.as_str()) || path == "/api/v1/reset_password" {
                    add("429", "too_many_requests (this client address) or account_locked, with Retry-After");
                }
                if BCRYPT_ROUTES.contains(&path.as_str()) {
                    add("503", "busy: the hashing queue is full (Retry-After: 1)");
                }
            }
            if path == "/api/v1/logout"
                && let Some(op) = item.post.as_mut()
            {
                // The cookie is optional: logging out without a session answers 200 as well.
                op.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("session_cookie", Vec::<String>::new()),
                ]);
            }
            if path == "/api/v1/auth"
                && let Some(op) = item.get.as_mut()
            {
                // Forward auth answers without a cookie too: 401, or 302 to the login page (api.md §12).
                op.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("session_cookie", Vec::<String>::new()),
                ]);
            }
        }
        let metrics = OperationBuilder::new()
            .summary(Some("Prometheus metrics (when metrics = true)"))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("Prometheus text format")
                    .content("text/plain", Content::new(None::<RefOr<utoipa::openapi::schema::Schema>>)),
            )
            .response("401", error("unauthorized: metrics_token is set and the bearer token is missing or wrong"))
            .response("404", error("not_found: metrics = false"))
            .build();
        openapi.paths.paths.entry("/metrics".to_owned()).or_insert_with(|| PathItem::new(HttpMethod::Get, metrics));
        if let Some(components) = openapi.components.as_mut() {
            for schema in components.schemas.values_mut() {
                if let RefOr::T(utoipa::openapi::schema::Schema::Object(obj)) = schema
                    && let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(email))) =
                        obj.properties.get_mut("email")
                {
                    email.format = Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                        utoipa::openapi::schema::KnownFormat::Email,
                    ));
                }
            }
        }
    }
}

/// The document as served, built once.
pub fn document() -> (ContentType, String) {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let json = DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into()));
    (ContentType::JSON, json.clone())
}
