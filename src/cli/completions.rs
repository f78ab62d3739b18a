use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

pub fn print(shell: Shell) -> anyhow::Result<()> {
    clap_complete::generate(shell, &mut Cli::command(), "userauth", &mut std::io::stdout());
    Ok(())
}
