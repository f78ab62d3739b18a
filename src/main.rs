use std::process::ExitCode;

use clap::Parser;
use userauth::cli::{Cli, dispatch};

fn main() -> ExitCode {
    // clap exits with 2 on usage errors, 0 for --help/--version.
    let cli = Cli::parse();
    let json_logs = std::env::var("ROCKET_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    userauth::logging::init(cli.default_log_level(), json_logs);
    match rocket::execute(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
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
