//! What may import what (docs/architecture.md): main → cli → service ← api, entities under the
//! service. Checked on the source text of whole folders, so files moved or added inside a folder
//! are covered without a list to keep up to date.

use std::path::{Path, PathBuf};

/// A rule: no file under `folder` (of `src/`) may contain any of `forbidden` in its code.
struct Rule {
    folder: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        folder: "service",
        forbidden: &["rocket::", "use rocket", "clap::", "use clap", "dialoguer"],
        why: "the service knows nothing of the HTTP server or the command line",
    },
    Rule {
        folder: "api",
        forbidden: &["sea_orm", "crate::entity", "userauth::entity"],
        why: "the API reaches the database only through the service",
    },
    Rule {
        folder: "entity",
        forbidden: &["rocket", "serde", "Serialize", "Deserialize", "FromForm", "ToSchema", "utoipa"],
        why: "entities are database rows, never request or response bodies",
    },
];

/// Only `src/cli/**` and `src/main.rs` may use the CLI (`src/lib.rs` declares it).
const CLI_USERS: &[&str] = &["cli", "main.rs", "lib.rs"];
const CLI_PATHS: &[&str] = &["crate::cli", "userauth::cli", "super::cli"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, at any depth.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The file's lines without comments (`//`, `///`, `//!` lines and trailing `// …`), numbered
/// from 1: prose may name anything.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.split(" // ").next().unwrap_or(l).to_owned()))
        .collect()
}

/// `src/file:line: text` for every code line of `files` (under `root`) containing one of `needles`.
fn offences(root: &Path, files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| {
            let shown = f.strip_prefix(root).unwrap_or(f).display().to_string();
            code_lines(f)
                .into_iter()
                .filter(|(_, l)| needles.iter().any(|n| l.contains(n)))
                .map(move |(n, l)| format!("src/{shown}:{n}: {}", l.trim()))
        })
        .collect()
}

fn check(rules: &[Rule], cli_users: &[&str], root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for rule in rules {
        let files = rust_files(&root.join(rule.folder));
        assert!(!files.is_empty(), "src/{} has no Rust files: update this test", rule.folder);
        found.extend(offences(root, &files, rule.forbidden).into_iter().map(|o| format!("{o}  ({})", rule.why)));
    }
    let others: Vec<PathBuf> = rust_files(root)
        .into_iter()
        .filter(|f| {
            let first = f.strip_prefix(root).ok().and_then(|r| r.components().next());
            !first.is_some_and(|c| cli_users.iter().any(|u| c.as_os_str() == *u))
        })
        .collect();
    found.extend(
        offences(root, &others, CLI_PATHS).into_iter().map(|o| format!("{o}  (nothing but main.rs imports the CLI)")),
    );
    found
}

#[test]
fn each_layer_imports_only_what_it_may() {
    let found = check(RULES, CLI_USERS, &src());
    assert!(found.is_empty(), "imports across the layers:\n{}", found.join("\n"));
}

/// The check itself finds a planted violation (a test that cannot fail is no test).
#[test]
fn a_planted_violation_is_found() {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in [
        ("service/mod.rs", "//! mentions rocket:: in prose only\nuse crate::entity;\n"),
        ("service/deep/inner.rs", "fn f() -> rocket::http::Status { todo!() } // here\n"),
        ("api/mod.rs", "use sea_orm::EntityTrait;\n"),
        ("entity/user.rs", "#[derive(serde::Serialize)]\npub struct Model;\n"),
        ("config.rs", "use crate::cli::Cli;\n"),
        ("cli/mod.rs", "use crate::service;\n"),
    ] {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let found = check(RULES, CLI_USERS, dir.path());
    let at: Vec<&str> = found.iter().map(|o| o.split(": ").next().unwrap_or_default()).collect();
    assert_eq!(
        at,
        ["src/service/deep/inner.rs:1", "src/api/mod.rs:1", "src/entity/user.rs:1", "src/config.rs:1"],
        "{found:#?}"
    );
}
