
use builtin;
use str;

set edit:completion:arg-completer[userauth] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'userauth'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'userauth'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand db-setup 'Create the database if needed and apply pending migrations (safe to repeat)'
            cand serve 'Apply pending migrations, then serve the HTTP API'
            cand user 'Manage users'
            cand audit 'Read and verify the audit log'
            cand doctor 'Check the configuration, the database and (with --url) a running server against the security advice'
            cand mail-test 'Send a test message through the configured mail server (smtp_url, mail_from) and show its answer'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'userauth;db-setup'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;serve'= {
            cand --address 'Address to listen on (default from the configuration: 0.0.0.0)'
            cand --port 'Port to listen on (default from the configuration: 5000)'
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand add 'Create a user; asks for the password twice on a terminal, else reads one line from stdin'
            cand reset 'Issue a password-reset token and print it with its expiry time (or email it with --send)'
            cand list 'List users with their last login and active sessions (streamed)'
            cand delete 'Delete a user with its sessions and reset tokens; asks to confirm on a terminal'
            cand logout 'End every session of a user'
            cand unlock 'Clear a user''s failed-login count so they can log in again at once (a completed reset does too)'
            cand import 'Import users from CSV (email,password_hash or email,password) or the Flask service''s database'
            cand confirm 'Mark a user''s email address as confirmed (email_verification, api.md §13)'
            cand factors 'List a user''s factors and passkeys, or remove them all (--reset) for a lost device'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'userauth;user;add'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand --password-stdin 'Read the password as one line from standard input, even on a terminal'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user;reset'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand --json 'Print one JSON object'
            cand --send 'Email the token to the user (smtp_url, mail_from) instead of printing it'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user;list'= {
            cand --limit 'At most N users'
            cand --offset 'Skip the first N users'
            cand --email-contains 'Only users whose email contains TEXT (case-insensitive)'
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand --json 'One JSON object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user;delete'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand --yes 'Do not ask (required when not on a terminal)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user;logout'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user;unlock'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user;import'= {
            cand --from-flask 'The original Flask service''s SQLite database (table `users`: email, hashed_password)'
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user;confirm'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user;factors'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand --json 'One JSON object'
            cand --reset 'Remove every second factor, recovery code and passkey and end the user''s sessions'
            cand --yes 'With --reset: do not ask (required when not on a terminal)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;user;help'= {
            cand add 'Create a user; asks for the password twice on a terminal, else reads one line from stdin'
            cand reset 'Issue a password-reset token and print it with its expiry time (or email it with --send)'
            cand list 'List users with their last login and active sessions (streamed)'
            cand delete 'Delete a user with its sessions and reset tokens; asks to confirm on a terminal'
            cand logout 'End every session of a user'
            cand unlock 'Clear a user''s failed-login count so they can log in again at once (a completed reset does too)'
            cand import 'Import users from CSV (email,password_hash or email,password) or the Flask service''s database'
            cand confirm 'Mark a user''s email address as confirmed (email_verification, api.md §13)'
            cand factors 'List a user''s factors and passkeys, or remove them all (--reset) for a lost device'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'userauth;user;help;add'= {
        }
        &'userauth;user;help;reset'= {
        }
        &'userauth;user;help;list'= {
        }
        &'userauth;user;help;delete'= {
        }
        &'userauth;user;help;logout'= {
        }
        &'userauth;user;help;unlock'= {
        }
        &'userauth;user;help;import'= {
        }
        &'userauth;user;help;confirm'= {
        }
        &'userauth;user;help;factors'= {
        }
        &'userauth;user;help;help'= {
        }
        &'userauth;audit'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand list 'List events, oldest first'
            cand verify 'Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'userauth;audit;list'= {
            cand --email 'Only events of this email'
            cand --kind 'Only events of this kind'
            cand --since 'Only events at or after this time: RFC 3339 (2026-11-29T08:00:00Z) or a date (2026-11-29, midnight UTC)'
            cand --until 'Only events before this time: RFC 3339 or a date (2026-11-30 means before that day begins, UTC)'
            cand --newest 'Only the last N events (still oldest first)'
            cand --limit 'At most N events (the first N)'
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand --json 'One JSON object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;audit;verify'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;audit;help'= {
            cand list 'List events, oldest first'
            cand verify 'Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'userauth;audit;help;list'= {
        }
        &'userauth;audit;help;verify'= {
        }
        &'userauth;audit;help;help'= {
        }
        &'userauth;doctor'= {
            cand --url 'Also check a running server at this base URL (health, security headers, metrics exposure)'
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand --json 'One JSON object per check'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;mail-test'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;completions'= {
            cand --database-url 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration'
            cand --log-format 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'userauth;help'= {
            cand db-setup 'Create the database if needed and apply pending migrations (safe to repeat)'
            cand serve 'Apply pending migrations, then serve the HTTP API'
            cand user 'Manage users'
            cand audit 'Read and verify the audit log'
            cand doctor 'Check the configuration, the database and (with --url) a running server against the security advice'
            cand mail-test 'Send a test message through the configured mail server (smtp_url, mail_from) and show its answer'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'userauth;help;db-setup'= {
        }
        &'userauth;help;serve'= {
        }
        &'userauth;help;user'= {
            cand add 'Create a user; asks for the password twice on a terminal, else reads one line from stdin'
            cand reset 'Issue a password-reset token and print it with its expiry time (or email it with --send)'
            cand list 'List users with their last login and active sessions (streamed)'
            cand delete 'Delete a user with its sessions and reset tokens; asks to confirm on a terminal'
            cand logout 'End every session of a user'
            cand unlock 'Clear a user''s failed-login count so they can log in again at once (a completed reset does too)'
            cand import 'Import users from CSV (email,password_hash or email,password) or the Flask service''s database'
            cand confirm 'Mark a user''s email address as confirmed (email_verification, api.md §13)'
            cand factors 'List a user''s factors and passkeys, or remove them all (--reset) for a lost device'
        }
        &'userauth;help;user;add'= {
        }
        &'userauth;help;user;reset'= {
        }
        &'userauth;help;user;list'= {
        }
        &'userauth;help;user;delete'= {
        }
        &'userauth;help;user;logout'= {
        }
        &'userauth;help;user;unlock'= {
        }
        &'userauth;help;user;import'= {
        }
        &'userauth;help;user;confirm'= {
        }
        &'userauth;help;user;factors'= {
        }
        &'userauth;help;audit'= {
            cand list 'List events, oldest first'
            cand verify 'Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match'
        }
        &'userauth;help;audit;list'= {
        }
        &'userauth;help;audit;verify'= {
        }
        &'userauth;help;doctor'= {
        }
        &'userauth;help;mail-test'= {
        }
        &'userauth;help;completions'= {
        }
        &'userauth;help;help'= {
        }
    ]
    $completions[$command]
}
