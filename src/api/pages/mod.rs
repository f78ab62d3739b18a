//! Server-rendered pages (api.md §8, §10, §11, §13): register, log in (with a second factor or a
//! passkey), the account (sessions, password, passkeys, two-factor), forgot and reset, and the
//! address confirmation. No JavaScript but for passkeys; every form carries a CSRF token; a
//! successful POST answers 303; errors are shown beside the form with the status the API would give.
//!
//! Handlers take what they need as guards (`guards.rs`): the logged-in `PageUser`, the `Browser`'s
//! cookies, a form whose CSRF token is checked (`CsrfForm<T>`, `AccountForm<T>`). CSRF tokens
//! (`csrf.rs`) are keyed with the server key and bound to a secret the browser holds in an HttpOnly
//! cookie: the session token once logged in (and then only that), a random pre-session `csrf`
//! cookie before. The cross-site refusal of §6 runs first.

mod account;
mod assets;
pub mod csrf;
mod guards;
mod login;
mod passkeys;
mod recovery_codes;
mod register;
pub mod render;
mod reset;
mod second_factor;

use rocket::Route;

use crate::config::ResetDelivery;

pub use guards::take_refusal;
pub use login::safe_next;

/// What the pages need to know of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct PageSettings {
    pub reset_delivery: ResetDelivery,
    pub password_min_length: usize,
    /// `email_verification = "required"`: the register page says what happens next (§13).
    pub email_verification: bool,
}

/// Every page route, mounted at `/` when `pages = true`.
pub fn routes() -> Vec<Route> {
    rocket::routes![
        assets::stylesheet,
        assets::script,
        login::login_form,
        login::login,
        login::logout_page,
        login::logout,
        register::register_form,
        register::register,
        register::verify_form,
        register::verify,
        register::resend,
        account::account,
        account::password_form,
        account::change_password,
        account::end_session,
        account::end_other_sessions,
        reset::forgot_form,
        reset::forgot,
        reset::reset_form,
        reset::reset,
        passkeys::add_without_script,
        passkeys::remove,
        second_factor::setup_page,
        second_factor::enrol,
        second_factor::confirm,
        second_factor::disable,
        second_factor::second_factor_form,
        second_factor::second_factor,
        recovery_codes::regenerate,
        recovery_codes::codes_page,
        recovery_codes::codes_download,
        recovery_codes::codes_done
    ]
}
