//! The HTTP edge: Rocket routes, guards, the error responder and catchers. Handlers parse the
//! request, call the service and shape the response; they never touch the database.

pub mod body;
pub mod classic;
pub mod error;
pub mod forward;
pub mod guard;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod passkeys;
pub mod protect;
pub mod request_log;
pub mod second_factor;
pub mod types;
pub mod v1;
pub mod verify;
pub mod wayfinding;

use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::{Build, Rocket};

use crate::config::Loaded;
use crate::service::AuthService;

/// What the HTTP layer itself needs from the configuration.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub cookie_secure: bool,
    pub max_body_bytes: usize,
    pub session_max_age_secs: i64,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Our origin, from `public_url`; `None`: taken from each request's `Host`.
    pub own_origin: Option<String>,
    pub allowed_origins: Vec<String>,
    /// The key of the pages' CSRF tokens, derived from the server key.
    pub csrf: pages::csrf::CsrfKey,
    /// `cookie_domain`, applied to every cookie we set (api.md §12).
    pub cookie_domain: Option<String>,
    /// Origins an absolute `next` may lead to: our own and `allowed_redirect_origins`.
    pub redirect_origins: Vec<String>,
    /// `{public_url}/login`, where `GET /api/v1/auth?redirect=1` sends the unauthenticated.
    pub login_url: String,
}

/// The configured Rocket, ready to launch (or to hand to a local test client).
pub fn build(service: AuthService, loaded: &Loaded) -> Rocket<Build> {
    let s = &loaded.settings;
    // Validated when the configuration was loaded; an error here cannot happen.
    let (own_origin, allowed_origins) = s.origins().unwrap_or_default();
    let (cookie_domain, mut redirect_origins) = s.forward_auth().unwrap_or_default();
    redirect_origins.extend(own_origin.clone());
    let api_settings = ApiSettings {
        cookie_secure: s.cookie_secure,
        max_body_bytes: s.max_body_bytes,
        session_max_age_secs: i64::try_from(s.session_absolute_timeout_secs).unwrap_or(i64::MAX),
        trusted_proxies: s.trusted_proxies.clone(),
        own_origin,
        allowed_origins,
        csrf: pages::csrf::CsrfKey::new(service.key()),
        cookie_domain,
        redirect_origins,
        login_url: format!("{}/login", s.public_base_url()),
    };
    let limiter = Arc::new(protect::ClientLimiter::new(s.client_rate_per_minute));
    let service = passkeys_service(service, &s.public_base_url());
    let mut v1_routes = rocket::routes![
        v1::register,
        v1::login,
        v1::logout,
        v1::profile,
        v1::update_password,
        v1::change_password,
        v1::sessions,
        v1::end_session,
        v1::end_other_sessions,
        v1::openapi_json,
        passkeys::register_start,
        passkeys::register_finish,
        passkeys::list,
        passkeys::remove,
        passkeys::login_start,
        passkeys::login_finish,
        forward::auth,
        second_factor::enrol,
        second_factor::confirm,
        second_factor::disable,
        second_factor::regenerate,
        second_factor::second_step
    ];
    let mut classic_routes = rocket::routes![
        classic::index,
        classic::users,
        classic::login,
        classic::logout,
        classic::profile,
        classic::update_password
    ];
    v1_routes.extend(rocket::routes![verify::verify_email, verify::resend]);
    if s.reset_endpoint {
        v1_routes.extend(rocket::routes![v1::reset_password]);
        classic_routes.extend(rocket::routes![classic::reset_password]);
    }
    let mut rocket = rocket::custom(loaded.figment.clone())
        .manage(service)
        .manage(api_settings)
        .manage(limiter.clone())
        .mount("/api/v1", v1_routes)
        .mount("/", rocket::routes![v1::health])
        .manage(ops::MetricsToken(s.metrics_token.as_ref().map(|t| secrecy::ExposeSecret::expose_secret(t).to_owned())))
        .register("/", rocket::catchers![error::default_catcher, wayfinding::not_found])
        .attach(request_log::RequestLog::new())
        // Our own headers replace Rocket's default Shield (one place decides every header).
        .attach(rocket::shield::Shield::new())
        .attach(protect::SecurityHeaders { hsts: s.cookie_secure });
    if s.classic_routes {
        rocket = rocket.mount("/", classic_routes);
    }
    if s.metrics {
        rocket = rocket.mount("/", rocket::routes![ops::metrics]);
    }
    if s.pages {
        rocket = rocket
            .manage(pages::PageSettings {
                reset_delivery: s.reset_delivery,
                password_min_length: s.password_min_length,
                email_verification: s.email_verification == crate::service::verification::EmailVerification::Required,
            })
            .mount("/", pages::routes());
    }
    let database = loaded.db.url.redacted();
    let no_public_url = s.public_url.is_none();
    // Only the response mode hands tokens to callers.
    let reset_endpoint = s.reset_endpoint && s.reset_delivery == crate::config::ResetDelivery::Response;
    rocket.attach(AdHoc::on_liftoff("userauth start-up", move |r| {
        let limiter = limiter.clone();
        Box::pin(async move {
            let c = r.config();
            tracing::info!(
                "userauth listening on http://{}:{} (database {database}, profile {})",
                c.address,
                c.port,
                c.profile
            );
            if reset_endpoint && !c.address.is_loopback() {
                tracing::warn!(
                    "POST /api/v1/reset_password returns reset tokens to any caller and this server listens on \
                     {}: anyone who can reach it can take over any account whose email they know. Set \
                     reset_endpoint = false and issue tokens with `userauth user reset`, or keep the port private.",
                    c.address
                );
            }
            if no_public_url && !c.address.is_loopback() {
                tracing::warn!(
                    "public_url is unset and this server listens on {}: its own origin comes from each request's \
                     Host header, which a DNS-rebinding attacker chooses. Set public_url to the address users reach.",
                    c.address
                );
            }
            if let Some(svc) = r.state::<AuthService>().cloned() {
                tokio::spawn(housekeeping(svc));
            }
            // Sends what the durable outbox holds (api.md §14), on every instance with mail set up.
            if let Some(svc) = r.state::<AuthService>().filter(|s| s.mailer().is_some()).cloned() {
                tokio::spawn(crate::service::outbox::run(svc));
            }
            tokio::spawn(async move { protect::prune_clients(&limiter).await });
            if let Some(metrics) = r.state::<AuthService>().and_then(|s| s.metrics()).cloned() {
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        metrics.upkeep();
                    }
                });
            }
        })
    }))
}

/// The service with the WebAuthn relying party of `public_url` (api.md §11); without a usable one
/// (an IP-literal host), passkeys answer 503 and the rest works.
fn passkeys_service(service: AuthService, public_url: &str) -> AuthService {
    match crate::service::passkeys::RelyingParty::from_public_url(public_url) {
        Ok(rp) => service.with_relying_party(Some(Arc::new(rp))),
        Err(e) => {
            tracing::warn!("passkeys are unavailable: {e}");
            service
        }
    }
}

/// Removes expired sessions, tokens and throttle windows, and audit events past their retention,
/// now and then.
async fn housekeeping(svc: AuthService) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match svc.purge_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "purged expired rows"),
            Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
        }
        match svc.prune_audit().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "pruned audit events past audit_retention_days"),
            Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
        }
    }
}
