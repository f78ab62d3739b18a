//! The kinds of audit event (api.md §9) and the names the log stores them under.

use crate::service::names::names;

names! {
    /// The kinds of event of api.md §9.
    pub enum EventKind {
        Registered => "registered",
        LoginSucceeded => "login_succeeded",
        LoginFailed => "login_failed",
        LoginLocked => "login_locked",
        LoggedOut => "logged_out",
        SessionEnded => "session_ended",
        ResetIssued => "reset_issued",
        PasswordReset => "password_reset",
        PasswordChanged => "password_changed",
        UserAdded => "user_added",
        UserDeleted => "user_deleted",
        UsersImported => "users_imported",
        SessionsRevoked => "sessions_revoked",
        TotpEnabled => "totp_enabled",
        TotpDisabled => "totp_disabled",
        SecondFactorFailed => "second_factor_failed",
        RecoveryCodeUsed => "recovery_code_used",
        RecoveryCodesRegenerated => "recovery_codes_regenerated",
        FactorsReset => "factors_reset",
        EmailConfirmed => "email_confirmed",
        PasskeyAdded => "passkey_added",
        PasskeyRemoved => "passkey_removed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }
}
