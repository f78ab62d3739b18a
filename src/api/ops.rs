//! Operations endpoints: `GET /metrics` (api.md §9).

use rocket::State;
use rocket::http::{ContentType, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use super::error::{ApiError, ErrorCode, remember};
use crate::service::AuthService;

/// The configured `metrics_token`, when there is one.
pub struct MetricsToken(pub Option<String>);

/// Passes when no token is configured, or the request carries `Authorization: Bearer <token>`.
pub struct MetricsAccess;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for MetricsAccess {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        let Some(expected) = req.rocket().state::<MetricsToken>().and_then(|t| t.0.as_deref()) else {
            return Outcome::Success(MetricsAccess);
        };
        let presented = req.headers().get_one("Authorization").and_then(|h| h.strip_prefix("Bearer "));
        // Compared in constant time: the token is a secret.
        let ok = presented.is_some_and(|p| super::protect::secrets_equal(p, expected));
        if ok {
            Outcome::Success(MetricsAccess)
        } else {
            let err =
                ApiError::new(Status::Unauthorized, ErrorCode::Unauthorized, "A valid metrics token is required.");
            Outcome::Error(remember(req, err))
        }
    }
}

#[rocket::get("/metrics")]
pub fn metrics(_access: MetricsAccess, svc: &State<AuthService>) -> Result<(ContentType, String), ApiError> {
    let text = svc.render_metrics().ok_or_else(|| ApiError::for_status(Status::NotFound))?;
    Ok((ContentType::new("text", "plain").with_params([("version", "0.0.4"), ("charset", "utf-8")]), text))
}
