//! Passkeys on the account pages (api.md §11): the account page's passkeys section, removal as a
//! plain form, and the one script (`/static/passkeys.js`) that drives WebAuthn for adding a passkey
//! and for "Log in with a passkey". Without JavaScript, removal and every password flow still work.

use askama::Template;
use rocket::State;
use rocket::http::{ContentType, CookieJar, Header, Status};
use rocket::response::Responder;
use rocket::{Request, Response};

use super::ApiSettings;
use super::body::Fields;
use super::pages::{PageOr, account_page, after_account_action, csrf_ok, forbidden, session_post};
use super::protect::{NotCrossSite, Svc};
use crate::service::{AuthError, AuthService, UserView, rfc3339};

const SCRIPT: &str = include_str!("../../static/passkeys.js");

struct PasskeyRow {
    id: String,
    name: String,
    created_at: String,
    last_used_at: String,
}

#[derive(Template)]
#[template(path = "passkeys_section.html")]
struct PasskeysSection<'a> {
    passkeys: Vec<PasskeyRow>,
    csrf: &'a str,
}

/// The account page's passkeys section for `user` (escaped by askama). A failure to read them
/// leaves a sentence in its place rather than failing the whole page.
pub(crate) async fn section(svc: &AuthService, user: &UserView, csrf: &str) -> String {
    let passkeys = match svc.list_passkeys(user.id).await {
        Ok(list) => list
            .into_iter()
            .map(|p| PasskeyRow {
                id: p.id.to_string(),
                name: p.name,
                created_at: rfc3339(p.created_at),
                last_used_at: p.last_used_at.map(rfc3339).unwrap_or_else(|| "never".into()),
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "listing passkeys failed");
            return "<h2>Passkeys</h2><p class=\"error\">Your passkeys could not be listed.</p>".into();
        }
    };
    PasskeysSection { passkeys, csrf }.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the passkeys section failed to render");
        String::new()
    })
}

/// The script, cacheable (it carries nothing personal).
pub struct Script;

impl<'r> Responder<'r, 'static> for Script {
    fn respond_to(self, _: &'r Request<'_>) -> rocket::response::Result<'static> {
        Response::build()
            .header(ContentType::JavaScript)
            .header(Header::new("Cache-Control", "public, max-age=3600"))
            .sized_body(SCRIPT.len(), std::io::Cursor::new(SCRIPT))
            .ok()
    }
}

#[rocket::get("/static/passkeys.js")]
pub fn script() -> Script {
    Script
}

/// The add form posted without JavaScript: adding a passkey needs the browser's WebAuthn API.
#[rocket::post("/account/passkeys", data = "<form>")]
pub async fn add_without_script(
    _site: NotCrossSite,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    form: Fields,
) -> PageOr {
    if !csrf_ok(jar, settings, &form) {
        return forbidden();
    }
    let message = "Adding a passkey needs JavaScript (your browser's passkey prompt). Turn it on and try again.";
    account_page(&svc, jar, settings, Status::Ok, None, Some(message.into()), None).await
}

#[rocket::post("/account/passkeys/<id>/remove", data = "<form>")]
pub async fn remove(
    _site: NotCrossSite,
    svc: Svc<'_>,
    jar: &CookieJar<'_>,
    settings: &State<ApiSettings>,
    id: &str,
    form: Fields,
) -> PageOr {
    let token = match session_post(jar, settings, &form) {
        Ok(t) => t,
        Err(page) => return page,
    };
    let result = match uuid::Uuid::parse_str(id) {
        Ok(id) => match svc.authenticate(&token).await {
            Ok(me) => svc.remove_passkey(&svc.ctx, &me, id).await,
            Err(e) => Err(e),
        },
        Err(_) => Err(AuthError::PasskeyNotFound),
    };
    after_account_action(&svc, jar, settings, result, "/account?done=passkey_removed").await
}
