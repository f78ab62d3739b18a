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
    println!("cargo:rerun-if-changed=/usr/bin/chromedriver");
    println!("cargo:rerun-if-changed=tests/it/support/npm/node_modules/axe-core/axe.min.js");
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
    println!("cargo:rerun-if-changed=/usr/bin/promtool");
    // The metrics exposition is checked by Prometheus' own parser (Debian's prometheus package).
    if Path::new("/usr/bin/promtool").exists() {
        println!("cargo:rustc-cfg=promtool_tests");
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but promtool (Debian's prometheus package) is not installed");
    }
    println!("cargo:rerun-if-changed=/usr/lib/python3/dist-packages");
    // The mail tests run a real SMTP server: Debian's python3-aiosmtpd under /usr/bin/python3.
    if Path::new("/usr/lib/python3/dist-packages/aiosmtpd").is_dir() && Path::new("/usr/bin/python3").exists() {
        println!("cargo:rustc-cfg=smtp_tests");
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but python3-aiosmtpd is not installed: the mail tests cannot run");
    }
    println!("cargo:rustc-check-cfg=cfg(nginx_tests)");
    println!("cargo:rerun-if-changed=/usr/sbin/nginx");
    // Forward authentication behind a real proxy: Debian's nginx (api.md §12).
    if Path::new("/usr/sbin/nginx").exists() {
        println!("cargo:rustc-cfg=nginx_tests");
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but nginx is not installed: the forward-authentication test behind nginx cannot run");
    }
    println!("cargo:rerun-if-env-changed=USERAUTH_TEST_PG_URL");
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-changed=/usr/lib/postgresql");
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
