//! Passkeys on the account pages (api.md §11): the account page's passkeys section, removal as a
//! plain form, and the one script (`/static/passkeys.js`) that drives WebAuthn for adding a passkey
//! and for "Log in with a passkey". Without JavaScript, removal and every password flow still work.

use askama::Template;
use rocket::http::Status;

use super::account::{Shown, account_page, after_account_action};
use super::guards::{AccountForm, Browser, NoFields};
use crate::api::protect::{NotCrossSite, Svc};
use crate::service::{AuthError, AuthService, UserView, rfc3339};

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
pub(super) async fn section(svc: &AuthService, user: &UserView, csrf: &str) -> String {
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

/// The add form posted without JavaScript: adding a passkey needs the browser's WebAuthn API.
#[rocket::post("/account/passkeys", data = "<post>")]
pub async fn add_without_script(
    _site: NotCrossSite,
    svc: Svc,
    browser: Browser<'_>,
    post: AccountForm<NoFields>,
) -> super::render::PageOr {
    let error = "Adding a passkey needs JavaScript (your browser's passkey prompt). Turn it on and try again.";
    account_page(&svc, &post.me, &browser, Status::Ok, Shown { error: Some(error.into()), ..Shown::default() }).await
}

#[rocket::post("/account/passkeys/<id>/remove", data = "<post>")]
pub async fn remove(
    _site: NotCrossSite,
    svc: Svc,
    browser: Browser<'_>,
    id: &str,
    post: AccountForm<NoFields>,
) -> super::render::PageOr {
    let result = match uuid::Uuid::parse_str(id) {
        Ok(id) => svc.remove_passkey(post.me.token(), id).await,
        Err(_) => Err(AuthError::PasskeyNotFound),
    };
    after_account_action(&svc, &post.me, &browser, result, "/account?done=passkey_removed").await
}
