//! Standing up to attack at the HTTP edge (api.md §6): the client's address (believing
//! `X-Forwarded-For` only from trusted proxies), per-client limits on bcrypt-costing routes,
//! cross-site refusal, and the security headers every response carries. One file each; the
//! service handle a request acts through (`Svc`) is here.

mod client;
mod cross_site;
mod headers;
mod limits;

pub use client::{ClientAddr, client_address};
pub use cross_site::{NotCrossSite, is_cross_site};
pub use headers::SecurityHeaders;
pub use limits::{ClientBudget, ClientLimiter, prune_clients};

use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use super::error::{ApiError, remember};

/// The service, acting for this request's client (recorded in the audit log; its share of the
/// hashing queue is bounded).
pub struct Svc(pub crate::service::AuthService);

impl std::ops::Deref for Svc {
    type Target = crate::service::AuthService;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Svc {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ApiError> {
        match req.rocket().state::<crate::service::AuthService>() {
            Some(svc) => Outcome::Success(Svc(svc
                .for_client(ClientAddr::of(req).0)
                .with_user_agent(req.headers().get_one("User-Agent")))),
            None => Outcome::Error(remember(req, ApiError::for_status(Status::InternalServerError))),
        }
    }
}

/// Whether a presented secret equals the expected one, in time that depends on neither value:
/// both are hashed first, so their lengths do not show either.
pub fn secrets_equal(presented: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into()
}
