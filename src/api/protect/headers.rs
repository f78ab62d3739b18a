//! The security headers of api.md §6, on every response.

use rocket::Response;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::request::Request;

/// The headers of api.md §6 on every response, set only where a route has not set its own:
/// `Cache-Control: no-store` (our responses carry tokens, sessions or personal data unless a
/// route says otherwise), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
/// `X-Frame-Options: DENY`, and `Strict-Transport-Security` when cookies are `Secure`.
pub struct SecurityHeaders {
    pub hsts: bool,
}

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info { name: "security headers", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, _: &'r Request<'_>, res: &mut Response<'r>) {
        let mut defaults = vec![
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
        ];
        if self.hsts {
            defaults.push(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"));
        }
        for (name, value) in defaults {
            if !res.headers().contains(name) {
                res.set_header(Header::new(name, value));
            }
        }
    }
}
