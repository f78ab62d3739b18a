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
            // One line, whatever the error chain looks like.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
