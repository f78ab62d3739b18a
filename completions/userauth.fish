# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_userauth_global_optspecs
    string join \n database-url= log-format= h/help V/version
end

function __fish_userauth_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_userauth_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_userauth_using_subcommand
    set -l cmd (__fish_userauth_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c userauth -n "__fish_userauth_needs_command" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_needs_command" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_needs_command" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_needs_command" -s V -l version -d 'Print version'
complete -c userauth -n "__fish_userauth_needs_command" -f -a "db-setup" -d 'Create the database if needed and apply pending migrations (safe to repeat)'
complete -c userauth -n "__fish_userauth_needs_command" -f -a "serve" -d 'Apply pending migrations, then serve the HTTP API'
complete -c userauth -n "__fish_userauth_needs_command" -f -a "user" -d 'Manage users'
complete -c userauth -n "__fish_userauth_needs_command" -f -a "audit" -d 'Read and verify the audit log'
complete -c userauth -n "__fish_userauth_needs_command" -f -a "doctor" -d 'Check the configuration, the database and (with --url) a running server against the security advice'
complete -c userauth -n "__fish_userauth_needs_command" -f -a "mail-test" -d 'Send a test message through the configured mail server (smtp_url, mail_from) and show its answer'
complete -c userauth -n "__fish_userauth_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c userauth -n "__fish_userauth_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c userauth -n "__fish_userauth_using_subcommand db-setup" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand db-setup" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand db-setup" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand serve" -l address -d 'Address to listen on (default from the configuration: 0.0.0.0)' -r
complete -c userauth -n "__fish_userauth_using_subcommand serve" -l port -d 'Port to listen on (default from the configuration: 5000)' -r
complete -c userauth -n "__fish_userauth_using_subcommand serve" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand serve" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand serve" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "add" -d 'Create a user; asks for the password twice on a terminal, else reads one line from stdin'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "reset" -d 'Issue a password-reset token and print it with its expiry time (or email it with --send)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "list" -d 'List users with their last login and active sessions (streamed)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "delete" -d 'Delete a user with its sessions and reset tokens; asks to confirm on a terminal'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "logout" -d 'End every session of a user'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "unlock" -d 'Clear a user\'s failed-login count so they can log in again at once (a completed reset does too)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "import" -d 'Import users from CSV (email,password_hash or email,password) or the Flask service\'s database'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "confirm" -d 'Mark a user\'s email address as confirmed (email_verification, api.md §13)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "factors" -d 'List a user\'s factors and passkeys, or remove them all (--reset) for a lost device'
complete -c userauth -n "__fish_userauth_using_subcommand user; and not __fish_seen_subcommand_from add reset list delete logout unlock import confirm factors help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from add" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from add" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from add" -l password-stdin -d 'Read the password as one line from standard input, even on a terminal'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from reset" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from reset" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from reset" -l json -d 'Print one JSON object'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from reset" -l send -d 'Email the token to the user (smtp_url, mail_from) instead of printing it'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from reset" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from list" -l limit -d 'At most N users' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from list" -l offset -d 'Skip the first N users' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from list" -l email-contains -d 'Only users whose email contains TEXT (case-insensitive)' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from list" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from list" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from list" -l json -d 'One JSON object per line'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from delete" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from delete" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from delete" -l yes -d 'Do not ask (required when not on a terminal)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from logout" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from logout" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from logout" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from unlock" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from unlock" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from unlock" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from import" -l from-flask -d 'The original Flask service\'s SQLite database (table `users`: email, hashed_password)' -r -F
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from import" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from import" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from confirm" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from confirm" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from confirm" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from factors" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from factors" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from factors" -l json -d 'One JSON object'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from factors" -l reset -d 'Remove every second factor, recovery code and passkey and end the user\'s sessions'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from factors" -l yes -d 'With --reset: do not ask (required when not on a terminal)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from factors" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "add" -d 'Create a user; asks for the password twice on a terminal, else reads one line from stdin'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "reset" -d 'Issue a password-reset token and print it with its expiry time (or email it with --send)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "list" -d 'List users with their last login and active sessions (streamed)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a user with its sessions and reset tokens; asks to confirm on a terminal'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "logout" -d 'End every session of a user'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "unlock" -d 'Clear a user\'s failed-login count so they can log in again at once (a completed reset does too)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "import" -d 'Import users from CSV (email,password_hash or email,password) or the Flask service\'s database'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "confirm" -d 'Mark a user\'s email address as confirmed (email_verification, api.md §13)'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "factors" -d 'List a user\'s factors and passkeys, or remove them all (--reset) for a lost device'
complete -c userauth -n "__fish_userauth_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -f -a "list" -d 'List events, oldest first'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -f -a "verify" -d 'Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -l email -d 'Only events of this email' -r
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -l kind -d 'Only events of this kind' -r -f -a "registered\t''
login_succeeded\t''
login_failed\t''
login_locked\t''
logged_out\t''
session_ended\t''
reset_issued\t''
password_reset\t''
password_changed\t''
user_added\t''
user_deleted\t''
users_imported\t''
sessions_revoked\t''
totp_enabled\t''
totp_disabled\t''
second_factor_failed\t''
recovery_code_used\t''
recovery_codes_regenerated\t''
factors_reset\t''
email_confirmed\t''
passkey_added\t''
passkey_removed\t''"
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -l since -d 'Only events at or after this time: RFC 3339 (2026-11-29T08:00:00Z) or a date (2026-11-29, midnight UTC)' -r
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -l until -d 'Only events before this time: RFC 3339 or a date (2026-11-30 means before that day begins, UTC)' -r
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -l newest -d 'Only the last N events (still oldest first)' -r
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -l limit -d 'At most N events (the first N)' -r
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -l json -d 'One JSON object per line'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from verify" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from verify" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "list" -d 'List events, oldest first'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match'
complete -c userauth -n "__fish_userauth_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c userauth -n "__fish_userauth_using_subcommand doctor" -l url -d 'Also check a running server at this base URL (health, security headers, metrics exposure)' -r
complete -c userauth -n "__fish_userauth_using_subcommand doctor" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand doctor" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand doctor" -l json -d 'One JSON object per check'
complete -c userauth -n "__fish_userauth_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand mail-test" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand mail-test" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand mail-test" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand completions" -l database-url -d 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration' -r
complete -c userauth -n "__fish_userauth_using_subcommand completions" -l log-format -d 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)' -r -f -a "text\t''
json\t''"
complete -c userauth -n "__fish_userauth_using_subcommand completions" -s h -l help -d 'Print help'
complete -c userauth -n "__fish_userauth_using_subcommand help; and not __fish_seen_subcommand_from db-setup serve user audit doctor mail-test completions help" -f -a "db-setup" -d 'Create the database if needed and apply pending migrations (safe to repeat)'
complete -c userauth -n "__fish_userauth_using_subcommand help; and not __fish_seen_subcommand_from db-setup serve user audit doctor mail-test completions help" -f -a "serve" -d 'Apply pending migrations, then serve the HTTP API'
complete -c userauth -n "__fish_userauth_using_subcommand help; and not __fish_seen_subcommand_from db-setup serve user audit doctor mail-test completions help" -f -a "user" -d 'Manage users'
complete -c userauth -n "__fish_userauth_using_subcommand help; and not __fish_seen_subcommand_from db-setup serve user audit doctor mail-test completions help" -f -a "audit" -d 'Read and verify the audit log'
complete -c userauth -n "__fish_userauth_using_subcommand help; and not __fish_seen_subcommand_from db-setup serve user audit doctor mail-test completions help" -f -a "doctor" -d 'Check the configuration, the database and (with --url) a running server against the security advice'
complete -c userauth -n "__fish_userauth_using_subcommand help; and not __fish_seen_subcommand_from db-setup serve user audit doctor mail-test completions help" -f -a "mail-test" -d 'Send a test message through the configured mail server (smtp_url, mail_from) and show its answer'
complete -c userauth -n "__fish_userauth_using_subcommand help; and not __fish_seen_subcommand_from db-setup serve user audit doctor mail-test completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c userauth -n "__fish_userauth_using_subcommand help; and not __fish_seen_subcommand_from db-setup serve user audit doctor mail-test completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "add" -d 'Create a user; asks for the password twice on a terminal, else reads one line from stdin'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "reset" -d 'Issue a password-reset token and print it with its expiry time (or email it with --send)'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "list" -d 'List users with their last login and active sessions (streamed)'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "delete" -d 'Delete a user with its sessions and reset tokens; asks to confirm on a terminal'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "logout" -d 'End every session of a user'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "unlock" -d 'Clear a user\'s failed-login count so they can log in again at once (a completed reset does too)'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "import" -d 'Import users from CSV (email,password_hash or email,password) or the Flask service\'s database'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "confirm" -d 'Mark a user\'s email address as confirmed (email_verification, api.md §13)'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "factors" -d 'List a user\'s factors and passkeys, or remove them all (--reset) for a lost device'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "list" -d 'List events, oldest first'
complete -c userauth -n "__fish_userauth_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "verify" -d 'Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match'
