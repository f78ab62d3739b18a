//! Generated documentation: man pages (clap_mangen), one for the tool and one per subcommand.

use clap::CommandFactory;

use super::Cli;

/// `(file name, roff source)` for `userauth.1` and every subcommand (`userauth-user-add.1`, …).
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = Vec::new();
    render(Cli::command(), "userauth", &mut pages)?;
    Ok(pages)
}

fn render(cmd: clap::Command, name: &str, pages: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    let cmd = cmd.name(name.to_owned()).bin_name(name.replace('-', " "));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    pages.push((format!("{name}.1"), with_sections(out, name)));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        render(sub.clone(), &format!("{name}-{}", sub.get_name()), pages)?;
    }
    Ok(())
}

/// The sections clap does not render, in roff, before VERSION (or at the end): what a reader of
/// `man userauth-user-reset` looks for besides the options.
fn with_sections(page: Vec<u8>, name: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(&page).into_owned();
    let mut extra = String::new();
    extra.push_str(".SH ENVIRONMENT\n");
    for (var, what) in [
        (
            "DATABASE_URL",
            "The database (as \\-\\-database\\-url): sqlite://FILE?mode=rwc or postgres://USER:PASSWORD@HOST/DATABASE.",
        ),
        (
            "ROCKET_<KEY>",
            "Any configuration key, e.g. ROCKET_BCRYPT_COST=12, ROCKET_PORT=8080; an unknown key is named in a warning.",
        ),
        ("ROCKET_CONFIG", "The configuration file to read instead of Rocket.toml."),
        ("ROCKET_PROFILE", "The profile of the configuration file to use (default: debug or release by build type)."),
        ("RUST_LOG", "The log filter, e.g. RUST_LOG=debug."),
    ] {
        extra.push_str(&format!(".TP\n\\fB{var}\\fR\n{what}\n"));
    }
    extra.push_str(".SH \"EXIT STATUS\"\n");
    for (code, what) in [
        ("0", "Success."),
        (
            "1",
            "Failure (user exists, no such user, database unreachable, bad password or email, bad configuration), with one line \"error: ...\" on standard error.",
        ),
        ("2", "Usage error (an unknown command or option, a missing argument)."),
    ] {
        extra.push_str(&format!(".TP\n\\fB{code}\\fR\n{what}\n"));
    }
    extra.push_str(".SH FILES\n");
    for (file, what) in [
        ("Rocket.toml", "The configuration, in the working directory ([default], [debug] and [release] profiles)."),
        ("userauth.db", "The default SQLite database, in the working directory (created by db\\-setup and serve)."),
    ] {
        extra.push_str(&format!(".TP\n\\fI{file}\\fR\n{what}\n"));
    }
    extra.push_str(".SH EXAMPLES\n");
    for example in examples(name) {
        extra.push_str(&format!(".PP\n.nf\n{}\n.fi\n", example.replace('\\', "\\\\").replace('-', "\\-")));
    }
    let at = text.find(".SH VERSION").unwrap_or(text.len());
    let mut out = text[..at].to_owned();
    out.push_str(&extra);
    out.push_str(&text[at..]);
    out.into_bytes()
}

/// A few command lines for each page.
fn examples(name: &str) -> &'static [&'static str] {
    match name {
        "userauth-db-setup" => {
            &["userauth db-setup", "DATABASE_URL=postgres://userauth:secret@db.internal/userauth userauth db-setup"]
        }
        "userauth-serve" => &[
            "userauth serve --port 8080",
            "ROCKET_PUBLIC_URL=https://auth.example.com ROCKET_COOKIE_SECURE=true userauth serve",
        ],
        "userauth-user-add" => &["echo 'correct horse battery' | userauth user add alice@example.com --password-stdin"],
        "userauth-user-reset" => &[
            "userauth user reset alice@example.com",
            "userauth user reset alice@example.com --json",
            "userauth user reset alice@example.com --send",
        ],
        "userauth-user-unlock" => &["userauth user unlock alice@example.com"],
        "userauth-user-list" => {
            &["userauth user list", "userauth user list --json --limit 10 --offset 20 --email-contains example.com"]
        }
        "userauth-user-delete" => &["userauth user delete alice@example.com --yes"],
        "userauth-user-logout" => &["userauth user logout alice@example.com"],
        "userauth-user-import" => &["userauth user import users.csv", "userauth user import --from-flask old.db"],
        "userauth-audit-list" => &[
            "userauth audit list --newest 20",
            "userauth audit list --email alice@example.com --since 2026-11-29 --until 2026-11-30",
            "userauth audit list --kind login_locked --json",
        ],
        "userauth-audit-verify" => &["userauth audit verify"],
        "userauth-doctor" => &["userauth doctor", "userauth doctor --url https://auth.example.com --json"],
        "userauth-mail-test" => &["userauth mail-test you@example.com"],
        "userauth-completions" => &["userauth completions zsh > ~/.zfunc/_userauth"],
        _ => &[
            "userauth db-setup",
            "userauth serve",
            "userauth user add alice@example.com",
            "userauth user reset alice@example.com",
            "userauth doctor",
        ],
    }
}
