//! `userauth doctor`: the deployment checked against its own security advice (api.md §9). Each
//! check prints one line, `PASS`, `WARN` or `FAIL` and why; any FAIL makes the exit code 1. The
//! checks of this machine's configuration are in `local`, of its database and mail server in
//! `database`, of a running server (`--url`) in `server`.

mod database;
mod local;
mod server;

use std::io::Write;

use anyhow::bail;
use clap::Args;

use crate::config::Loaded;

#[derive(Debug, Args)]
pub struct Doctor {
    /// Also check a running server at this base URL (health, security headers, metrics exposure)
    #[arg(long, value_name = "URL", value_parser = super::args::server_url)]
    url: Option<url::Url>,
    /// One JSON object per check
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum Level {
    Pass,
    Warn,
    Fail,
}

/// What a line describes: this machine's configuration and database, or the server at `--url`
/// (which may run with another configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Scope {
    Local,
    Server,
}

#[derive(Debug, serde::Serialize)]
struct Check {
    check: &'static str,
    status: Level,
    detail: String,
    scope: Scope,
}

fn check(check: &'static str, status: Level, detail: impl Into<String>) -> Check {
    Check { check, status, detail: detail.into(), scope: Scope::Local }
}

impl Doctor {
    pub async fn run(self, loaded: &Loaded) -> anyhow::Result<()> {
        // Without the trailing slash: paths are appended to it, and it is shown so.
        let base = self.url.map(|u| u.as_str().trim_end_matches('/').to_owned());
        report(checks(loaded, base.as_deref()).await, base.as_deref(), self.json)
    }
}

async fn checks(loaded: &Loaded, base: Option<&str>) -> Vec<Check> {
    let mut checks = local::configuration(loaded);
    checks.extend(database::database(loaded).await);
    checks.extend(database::mail(loaded).await);
    if let Some(base) = base {
        checks.extend(server::server(base).await.into_iter().map(|c| Check { scope: Scope::Server, ..c }));
    }
    checks
}

/// One line per check (with --url, under a heading per scope); an error when any failed.
fn report(checks: Vec<Check>, base: Option<&str>, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut scope = None;
    for c in &checks {
        // With --url, say which lines are about this machine and which about the server there.
        if let (false, Some(base)) = (json, base)
            && scope != Some(c.scope)
        {
            scope = Some(c.scope);
            match c.scope {
                Scope::Local => {
                    writeln!(out, "This machine's configuration (Rocket.toml, ROCKET_*, DATABASE_URL) and database:")?
                }
                Scope::Server => {
                    writeln!(out, "The server at {base} (checked over HTTP; it may run with another configuration):")?
                }
            }
        }
        if json {
            writeln!(out, "{}", serde_json::to_string(c)?)?;
        } else {
            let level = match c.status {
                Level::Pass => "PASS",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            writeln!(out, "{level}  {:<18} {}", c.check, c.detail)?;
        }
    }
    let failed = checks.iter().filter(|c| c.status == Level::Fail).count();
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}
