//! `userauth user factors EMAIL [--json] [--reset [--yes]]` (api.md §10): what an operator does
//! for a user who lost their phone.

use serde::Serialize;

use super::prompt;
use crate::service::AuthService;

/// `--reset --json`, fields in this order (`removed` as the service counts it).
#[derive(Serialize)]
struct ResetJson<'a, R> {
    email: &'a str,
    removed: &'a R,
}

pub async fn run(svc: &AuthService, email: &str, json: bool, reset: bool, yes: bool) -> anyhow::Result<()> {
    let found = svc.user_factors(email).await?;
    if !reset {
        if json {
            println!("{}", serde_json::to_string(&found)?);
        } else {
            println!("email:          {}", found.email);
            println!("factors:        {}", found.status.factors.join(", "));
            println!("recovery codes: {} left", found.status.recovery_codes_left);
            if found.status.totp_pending {
                println!("note:           a TOTP enrolment was started and not confirmed");
            }
            println!("passkeys:       {}", found.passkeys.len());
            for p in &found.passkeys {
                println!(
                    "  {}  created {}  last used {}",
                    p.name,
                    p.created_at,
                    p.last_used_at.as_deref().unwrap_or("never")
                );
            }
        }
        return Ok(());
    }
    let question =
        format!("Remove every second factor, recovery code and passkey of {} and end all its sessions?", found.email);
    if !prompt::confirm(yes, &format!("resetting the factors of {}", found.email), question).await? {
        println!("nothing changed");
        return Ok(());
    }
    let removed = svc.reset_factors(&found.email).await?;
    if json {
        println!("{}", serde_json::to_string(&ResetJson { email: &found.email, removed: &removed })?);
    } else {
        println!(
            "removed {} TOTP secret(s), {} recovery code(s) and {} passkey(s) of {}; ended {} session(s). The password alone logs in now.",
            removed.totp, removed.recovery_codes, removed.passkeys, found.email, removed.sessions
        );
    }
    Ok(())
}
