//! `userauth user factors EMAIL [--json] [--reset [--yes]]` (api.md §10): what an operator does
//! for a user who lost their phone.

use std::io::IsTerminal;

use anyhow::{Context, bail};

use crate::service::AuthService;

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
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("not resetting the factors of {} without confirmation: pass --yes", found.email);
        }
        let confirmed = dialoguer::Confirm::new()
            .with_prompt(format!(
                "Remove every second factor, recovery code and passkey of {} and end all its sessions?",
                found.email
            ))
            .default(false)
            .interact()
            .context("reading the confirmation failed")?;
        if !confirmed {
            println!("nothing changed");
            return Ok(());
        }
    }
    let removed = svc.reset_factors(&found.email).await?;
    if json {
        println!("{}", serde_json::json!({ "email": found.email, "removed": removed }));
    } else {
        println!(
            "removed {} TOTP secret(s), {} recovery code(s) and {} passkey(s) of {}; ended {} session(s). The password alone logs in now.",
            removed.totp, removed.recovery_codes, removed.passkeys, found.email, removed.sessions
        );
    }
    Ok(())
}
