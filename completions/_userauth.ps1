
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'userauth' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'userauth'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'userauth' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('db-setup', 'db-setup', [CompletionResultType]::ParameterValue, 'Create the database if needed and apply pending migrations (safe to repeat)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Apply pending migrations, then serve the HTTP API')
            [CompletionResult]::new('user', 'user', [CompletionResultType]::ParameterValue, 'Manage users')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Read and verify the audit log')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check the configuration, the database and (with --url) a running server against the security advice')
            [CompletionResult]::new('mail-test', 'mail-test', [CompletionResultType]::ParameterValue, 'Send a test message through the configured mail server (smtp_url, mail_from) and show its answer')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'userauth;db-setup' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;serve' {
            [CompletionResult]::new('--address', '--address', [CompletionResultType]::ParameterName, 'Address to listen on (default from the configuration: 0.0.0.0)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port to listen on (default from the configuration: 5000)')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Create a user; asks for the password twice on a terminal, else reads one line from stdin')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Issue a password-reset token and print it with its expiry time (or email it with --send)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users with their last login and active sessions (streamed)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a user with its sessions and reset tokens; asks to confirm on a terminal')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'End every session of a user')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Clear a user''s failed-login count so they can log in again at once (a completed reset does too)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import users from CSV (email,password_hash or email,password) or the Flask service''s database')
            [CompletionResult]::new('confirm', 'confirm', [CompletionResultType]::ParameterValue, 'Mark a user''s email address as confirmed (email_verification, api.md §13)')
            [CompletionResult]::new('factors', 'factors', [CompletionResultType]::ParameterValue, 'List a user''s factors and passkeys, or remove them all (--reset) for a lost device')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'userauth;user;add' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password as one line from standard input, even on a terminal')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user;reset' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object')
            [CompletionResult]::new('--send', '--send', [CompletionResultType]::ParameterName, 'Email the token to the user (smtp_url, mail_from) instead of printing it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user;list' {
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most N users')
            [CompletionResult]::new('--offset', '--offset', [CompletionResultType]::ParameterName, 'Skip the first N users')
            [CompletionResult]::new('--email-contains', '--email-contains', [CompletionResultType]::ParameterName, 'Only users whose email contains TEXT (case-insensitive)')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user;delete' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask (required when not on a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user;logout' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user;unlock' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user;import' {
            [CompletionResult]::new('--from-flask', '--from-flask', [CompletionResultType]::ParameterName, 'The original Flask service''s SQLite database (table `users`: email, hashed_password)')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user;confirm' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user;factors' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object')
            [CompletionResult]::new('--reset', '--reset', [CompletionResultType]::ParameterName, 'Remove every second factor, recovery code and passkey and end the user''s sessions')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'With --reset: do not ask (required when not on a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;user;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Create a user; asks for the password twice on a terminal, else reads one line from stdin')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Issue a password-reset token and print it with its expiry time (or email it with --send)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users with their last login and active sessions (streamed)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a user with its sessions and reset tokens; asks to confirm on a terminal')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'End every session of a user')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Clear a user''s failed-login count so they can log in again at once (a completed reset does too)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import users from CSV (email,password_hash or email,password) or the Flask service''s database')
            [CompletionResult]::new('confirm', 'confirm', [CompletionResultType]::ParameterValue, 'Mark a user''s email address as confirmed (email_verification, api.md §13)')
            [CompletionResult]::new('factors', 'factors', [CompletionResultType]::ParameterValue, 'List a user''s factors and passkeys, or remove them all (--reset) for a lost device')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'userauth;user;help;add' {
            break
        }
        'userauth;user;help;reset' {
            break
        }
        'userauth;user;help;list' {
            break
        }
        'userauth;user;help;delete' {
            break
        }
        'userauth;user;help;logout' {
            break
        }
        'userauth;user;help;unlock' {
            break
        }
        'userauth;user;help;import' {
            break
        }
        'userauth;user;help;confirm' {
            break
        }
        'userauth;user;help;factors' {
            break
        }
        'userauth;user;help;help' {
            break
        }
        'userauth;audit' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List events, oldest first')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'userauth;audit;list' {
            [CompletionResult]::new('--email', '--email', [CompletionResultType]::ParameterName, 'Only events of this email')
            [CompletionResult]::new('--kind', '--kind', [CompletionResultType]::ParameterName, 'Only events of this kind')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only events at or after this time: RFC 3339 (2026-11-29T08:00:00Z) or a date (2026-11-29, midnight UTC)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only events before this time: RFC 3339 or a date (2026-11-30 means before that day begins, UTC)')
            [CompletionResult]::new('--newest', '--newest', [CompletionResultType]::ParameterName, 'Only the last N events (still oldest first)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most N events (the first N)')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;audit;verify' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;audit;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List events, oldest first')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'userauth;audit;help;list' {
            break
        }
        'userauth;audit;help;verify' {
            break
        }
        'userauth;audit;help;help' {
            break
        }
        'userauth;doctor' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Also check a running server at this base URL (health, security headers, metrics exposure)')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'One JSON object per check')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;mail-test' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;completions' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database URL (sqlite://FILE?mode=rwc or postgres://USER:PASS@HOST/DB); overrides the configuration')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log format: human-readable text or JSON lines (also `log_format` in the configuration)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'userauth;help' {
            [CompletionResult]::new('db-setup', 'db-setup', [CompletionResultType]::ParameterValue, 'Create the database if needed and apply pending migrations (safe to repeat)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Apply pending migrations, then serve the HTTP API')
            [CompletionResult]::new('user', 'user', [CompletionResultType]::ParameterValue, 'Manage users')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Read and verify the audit log')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check the configuration, the database and (with --url) a running server against the security advice')
            [CompletionResult]::new('mail-test', 'mail-test', [CompletionResultType]::ParameterValue, 'Send a test message through the configured mail server (smtp_url, mail_from) and show its answer')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'userauth;help;db-setup' {
            break
        }
        'userauth;help;serve' {
            break
        }
        'userauth;help;user' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Create a user; asks for the password twice on a terminal, else reads one line from stdin')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Issue a password-reset token and print it with its expiry time (or email it with --send)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users with their last login and active sessions (streamed)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a user with its sessions and reset tokens; asks to confirm on a terminal')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'End every session of a user')
            [CompletionResult]::new('unlock', 'unlock', [CompletionResultType]::ParameterValue, 'Clear a user''s failed-login count so they can log in again at once (a completed reset does too)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import users from CSV (email,password_hash or email,password) or the Flask service''s database')
            [CompletionResult]::new('confirm', 'confirm', [CompletionResultType]::ParameterValue, 'Mark a user''s email address as confirmed (email_verification, api.md §13)')
            [CompletionResult]::new('factors', 'factors', [CompletionResultType]::ParameterValue, 'List a user''s factors and passkeys, or remove them all (--reset) for a lost device')
            break
        }
        'userauth;help;user;add' {
            break
        }
        'userauth;help;user;reset' {
            break
        }
        'userauth;help;user;list' {
            break
        }
        'userauth;help;user;delete' {
            break
        }
        'userauth;help;user;logout' {
            break
        }
        'userauth;help;user;unlock' {
            break
        }
        'userauth;help;user;import' {
            break
        }
        'userauth;help;user;confirm' {
            break
        }
        'userauth;help;user;factors' {
            break
        }
        'userauth;help;audit' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List events, oldest first')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Recompute the hash chain: exit 0 when intact, 1 naming the first event that does not match')
            break
        }
        'userauth;help;audit;list' {
            break
        }
        'userauth;help;audit;verify' {
            break
        }
        'userauth;help;doctor' {
            break
        }
        'userauth;help;mail-test' {
            break
        }
        'userauth;help;completions' {
            break
        }
        'userauth;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
