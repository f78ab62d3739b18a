//! The OpenAPI 3 document of the v1 API, generated from the route annotations in `v1.rs`.

use rocket::http::ContentType;
use utoipa::{OpenApi, ToSchema};

/// `email` and `password`, as a form or as JSON.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Credentials {
    #[schema(example = "alice@example.com")]
    email: String,
    #[schema(example = "correct horse battery", min_length = 12)]
    password: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmailOnly {
    #[schema(example = "alice@example.com")]
    email: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UpdatePassword {
    reset_token: String,
    #[schema(min_length = 12)]
    new_password: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmailMessage {
    email: String,
    #[schema(example = "user created")]
    message: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Message {
    #[schema(example = "logged out")]
    message: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Profile {
    id: uuid::Uuid,
    email: String,
    /// RFC 3339
    created_at: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ResetIssued {
    email: String,
    reset_token: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    #[schema(example = "ok")]
    status: String,
}

/// Every error: a short snake_case code and one human sentence.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    #[schema(example = "missing_field")]
    error: String,
    #[schema(example = "The field 'email' is required.")]
    message: String,
}

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
        super::v1::health,
        super::v1::openapi_json
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
        ErrorBody
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
