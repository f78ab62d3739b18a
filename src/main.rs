use std::process::ExitCode;

use clap::Parser;
use userauth::cli::{Cli, dispatch, print_completions};
use userauth::config::LogFormat;

fn main() -> ExitCode {
    // clap exits with 2 on usage errors, 0 for --help/--version.
    let cli = Cli::parse();
    if let Some(shell) = cli.completions_shell() {
        return match print_completions(shell) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    // Misspelled keys would otherwise be ignored in silence (the default applies instead).
    for warning in userauth::config_keys::unknown_keys() {
        eprintln!("warning: {warning}");
    }
    let loaded = match cli.load_config() {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let format = cli.log_format.unwrap_or(loaded.settings.log_format);
    let level = loaded.explicit_log_level().unwrap_or(cli.default_log_level());
    userauth::logging::init(level, format == LogFormat::Json);
    match rocket::execute(dispatch(cli, loaded)) {
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
