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
        super::passkeys::register_start,
        super::passkeys::register_finish,
        super::passkeys::list,
        super::passkeys::remove,
        super::passkeys::login_start,
        super::passkeys::login_finish,
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
    modifiers(&SessionCookie)
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

/// The document as served, built once.
pub fn document() -> (ContentType, String) {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let json = DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into()));
    (ContentType::JSON, json.clone())
}
