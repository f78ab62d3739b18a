//! `userauth completions SHELL`: the shell completion script, from the clap definitions. It needs
//! no configuration, so it works even where the configuration is broken.

use clap::{Args, CommandFactory};

use super::Cli;

#[derive(Debug, Args)]
pub struct Completions {
    /// The shell to print the script for
    #[arg(value_enum, value_name = "SHELL")]
    shell: clap_complete::Shell,
}

impl Completions {
    pub fn run(self) -> anyhow::Result<()> {
        clap_complete::generate(self.shell, &mut Cli::command(), "userauth", &mut std::io::stdout());
        Ok(())
    }
}
