//! The man pages and completions in `docs/man/` and `docs/completions/` are the ones `src/manual.rs`
//! generates from the clap definition.
//!
//! After changing the command line: `MIDWATCH_BLESS=1 cargo test --test manual` rewrites the files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use midwatch::manual::{self, CompletionShell};

const BLESS: &str = "MIDWATCH_BLESS";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every generated file with its path under the repository root.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> =
        manual::man_pages().into_iter().map(|p| (Path::new("docs/man").join(p.file_name), p.roff)).collect();
    for shell in CompletionShell::ALL {
        files.push((Path::new("docs/completions").join(shell.file_name()), manual::completions(shell)));
    }
    files
}

fn listed(dir: &str) -> BTreeSet<PathBuf> {
    match std::fs::read_dir(root().join(dir)) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| Path::new(dir).join(e.file_name())).collect(),
        Err(_) => BTreeSet::new(),
    }
}

#[test]
fn docs_man_pages_and_completions_are_generated_from_the_command_line() {
    let files = generated();
    let wanted: BTreeSet<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let bless = std::env::var_os(BLESS).is_some();
    let mut stale = Vec::new();
    for (path, content) in &files {
        let full = root().join(path);
        if std::fs::read(&full).ok().as_deref() != Some(content.as_slice()) {
            if bless {
                std::fs::create_dir_all(full.parent().expect("docs/<dir>/<file>")).expect("create docs dir");
                std::fs::write(&full, content).expect("write generated file");
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    // A page of a subcommand that no longer exists.
    for path in listed("docs/man").into_iter().chain(listed("docs/completions")) {
        if !wanted.contains(&path) {
            if bless {
                std::fs::remove_file(root().join(&path)).expect("remove stale file");
            } else {
                stale.push(format!("{} (no longer generated)", path.display()));
            }
        }
    }
    assert!(stale.is_empty(), "stale generated files: {}; run `{BLESS}=1 cargo test --test manual`", stale.join(", "));
}

#[test]
fn man_page_has_the_exit_status_table_environment_and_files() {
    let pages = manual::man_pages();
    let main = pages.iter().find(|p| p.file_name == "midwatch.1").expect("midwatch.1");
    let text = String::from_utf8(main.roff.clone()).expect("roff is UTF-8");
    for needle in [
        ".SH \"EXIT STATUS\"",
        "WARNING",
        "CRITICAL",
        "UNKNOWN",
        ".SH ENVIRONMENT",
        "CREDENTIALS_DIRECTORY",
        ".SH FILES",
        "/etc/midwatch/midwatch.toml",
        "/etc/midwatch/instance_password",
        "/var/lib/midwatch",
        "midwatch\\-check(1)",
    ] {
        assert!(text.contains(needle), "midwatch.1 lacks {needle:?}");
    }
    let names: BTreeSet<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
    for page in ["midwatch-check.1", "midwatch-run.1", "midwatch-config-check.1", "midwatch-completions.1"] {
        assert!(names.contains(page), "no {page} among {names:?}");
    }
}

#[test]
fn completions_subcommand_prints_the_packaged_scripts() {
    for shell in CompletionShell::ALL {
        let name = format!("{shell:?}").to_lowercase();
        let out = Command::new(env!("CARGO_BIN_EXE_midwatch")).args(["completions", &name]).output().expect("run");
        assert!(out.status.success(), "midwatch completions {name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, manual::completions(shell), "midwatch completions {name}");
        let script = String::from_utf8(out.stdout).expect("UTF-8");
        assert!(script.contains("config") && script.contains("window"), "{name} script misses subcommands");
    }
}
