//! The `userauth` binary: parses the command line, reads the configuration (except for
//! `completions`), sets up logging and runs the command on Rocket's runtime. Every failure ends
//! here as one `error: …` line on stderr and exit code 1.

use std::process::ExitCode;

use clap::Parser;
use userauth::cli::{Cli, Command, bad_value};
use userauth::config::{self, LogFormat};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A value our own parsers refused (an event kind, a time, a URL) is one line and exit
        // code 1, as any other bad input; everything else is clap's (exit 2 on usage errors, 0 for
        // --help/--version).
        Err(e) => match bad_value(&e) {
            Some(sentence) => return fail(&anyhow::anyhow!(sentence)),
            None => e.exit(),
        },
    };
    let cmd = match cli.command {
        Command::Configured(cmd) => cmd,
        // Needs no configuration: it works even where the configuration is broken.
        Command::Completions(c) => return finish(c.run()),
    };
    // Misspelled keys would otherwise be ignored in silence (the default applies instead).
    for warning in userauth::config_keys::unknown_keys() {
        eprintln!("warning: {warning}");
    }
    let loaded = match config::load(&cmd.overrides(cli.database_url)) {
        Ok(l) => l,
        Err(e) => return fail(&e.into()),
    };
    let format = cli.log_format.unwrap_or(loaded.settings.log_format);
    let level = loaded.explicit_log_level().unwrap_or(cmd.default_log_level());
    userauth::logging::init(level, format == LogFormat::Json);
    finish(rocket::execute(cmd.run(loaded)))
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(e));
    ExitCode::from(1)
}

/// The error and its causes on one line, skipping causes whose text is already included
/// (database errors repeat their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg.replace('\n', " ")
}
