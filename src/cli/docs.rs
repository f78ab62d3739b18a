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
    pages.push((format!("{name}.1"), out));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        render(sub.clone(), &format!("{name}-{}", sub.get_name()), pages)?;
    }
    Ok(())
}
