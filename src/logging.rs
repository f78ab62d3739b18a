//! tracing set-up. Rocket's own `log` records are routed into the same subscriber.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` wins; otherwise `level` for us and warnings only from the noisy libraries.
pub fn init(level: &str, json: bool) {
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},rocket=error,rocket::launch=off,sea_orm_migration=warn")));
    // Whatever RUST_LOG asks for: Rocket's and hyper's debug output dumps request and response
    // headers (cookies included), and the database layers can show bound values. Our own request
    // line replaces Rocket's chatter; SQL statements are logged only on request, at warn level.
    for directive in
        ["rocket::server=off", "_=off", "hyper=warn", "h2=warn", "sqlx=warn", "sea_orm=warn", "lettre=warn"]
    {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    // Rocket reports each failed request guard (a request without a session, say) as a warning with
    // a Debug dump, logged under the route module's target plus `::_`. The request line already
    // says 401: these are debug detail, shown only when debug is asked for.
    if !matches!(level, "debug" | "trace") && std::env::var_os("RUST_LOG").is_none() {
        for module in [
            "v1",
            "classic",
            "ops",
            "wayfinding",
            "pages::login",
            "pages::register",
            "pages::account",
            "pages::reset",
            "pages::passkeys",
            "pages::second_factor",
            "pages::recovery_codes",
        ] {
            if let Ok(d) = format!("userauth::api::{module}::_=error").parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Failing here only means a subscriber is already installed (tests); keep that one.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
