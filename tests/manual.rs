//! The man pages and completions that the Debian package ships (`docs/man/`, `docs/completions/`) are
//! the ones `src/manual.rs` generates from the clap definition, and the package metadata in
//! `Cargo.toml` ships every one of them.
//!
//! After changing the command line: `MIDWATCH_BLESS=1 cargo test --test manual` rewrites the files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use midwatch::cli;
use midwatch::manual::{self, CompletionShell};

const BLESS: &str = "MIDWATCH_BLESS";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every generated file with its path under the repository root.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = manual::man_pages(cli::command())
        .into_iter()
        .map(|p| (Path::new("docs/man").join(p.file_name), p.roff))
        .collect();
    for shell in CompletionShell::ALL {
        files.push((Path::new("docs/completions").join(shell.file_name()), manual::completions(cli::command(), shell)));
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
    let pages = manual::man_pages(cli::command());
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
        assert_eq!(out.stdout, manual::completions(cli::command(), shell), "midwatch completions {name}");
        let script = String::from_utf8(out.stdout).expect("UTF-8");
        assert!(script.contains("config") && script.contains("window"), "{name} script misses subcommands");
    }
}

/// `[package.metadata.deb]`: every asset exists, every generated file is shipped, and the units call the
/// binary where the package puts it.
#[test]
fn debian_package_ships_every_generated_file_and_units_use_usr_bin() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml")).expect("TOML");
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("[package.metadata.deb] assets");
    let mut shipped = BTreeSet::new();
    for asset in assets {
        let source = asset[0].as_str().expect("asset source");
        if source.starts_with("target/release/") {
            continue;
        }
        let dest = asset[1].as_str().expect("asset dest");
        assert!(!dest.starts_with('/'), "asset dest {dest} must be relative");
        // Literal paths and `dir/*` globs only.
        let paths: Vec<PathBuf> = match source.strip_suffix("/*") {
            Some(dir) => listed(dir).into_iter().collect(),
            None => vec![PathBuf::from(source)],
        };
        assert!(!paths.is_empty(), "asset {source} matches no file");
        for path in paths {
            assert!(root().join(&path).is_file(), "asset {} does not exist", path.display());
            shipped.insert(path);
        }
    }
    for (path, _) in generated() {
        assert!(shipped.contains(&path), "{} is generated but not in [package.metadata.deb] assets", path.display());
    }
    // The package's changelog.gz starts with the version being packaged.
    let changelog = std::fs::read_to_string(root().join("docs/debian/changelog")).expect("docs/debian/changelog");
    let top = changelog.lines().next().unwrap_or_default();
    assert!(
        top.starts_with(&format!("midwatch ({}) ", env!("CARGO_PKG_VERSION"))),
        "docs/debian/changelog must start with an entry for {}: {top}",
        env!("CARGO_PKG_VERSION")
    );
    for unit in ["systemd/midwatch.service", "systemd/midwatch@.service"] {
        let text = std::fs::read_to_string(root().join(unit)).expect("unit");
        let exec: Vec<&str> = text.lines().filter(|l| l.starts_with("ExecStart=")).collect();
        assert!(
            exec.len() == 1 && exec[0].starts_with("ExecStart=/usr/bin/midwatch run "),
            "{unit}: ExecStart must run /usr/bin/midwatch, where the package installs it: {exec:?}"
        );
    }
}

/// The SYNOPSIS names what each option takes (clap_mangen's own writes `[--window]`), and every page has
/// EXAMPLES of its own command.
#[test]
fn man_pages_show_value_placeholders_and_examples() {
    let pages = manual::man_pages(cli::command());
    let page = |name: &str| -> String {
        let page = pages.iter().find(|p| p.file_name == name).unwrap_or_else(|| panic!("no {name}"));
        String::from_utf8(page.roff.clone()).expect("roff is UTF-8")
    };
    let synopsis = |text: &str| -> String {
        text.split(".SH SYNOPSIS\n").nth(1).and_then(|rest| rest.lines().next()).unwrap_or_default().to_string()
    };
    let check = page("midwatch-check.1");
    for option in [
        "[\\fB\\-\\-config\\fR \\fIPATH\\fR]",
        "[\\fB\\-\\-window\\fR \\fIDURATION\\fR]",
        "[\\fB\\-\\-format\\fR \\fItext|json\\fR]",
        "[\\fB\\-\\-user\\fR \\fINAME\\fR]...",
        "[\\fB\\-v\\fR|\\fB\\-\\-verbose\\fR]...",
    ] {
        assert!(synopsis(&check).contains(option), "the synopsis lacks {option}: {}", synopsis(&check));
    }
    assert!(synopsis(&page("midwatch-demo.1")).contains("[\\fB\\-\\-keep\\fR [\\fIDIR\\fR]]"));
    assert!(synopsis(&page("midwatch-completions.1")).ends_with("\\fIbash|zsh|fish\\fR"));
    for p in &pages {
        let text = String::from_utf8(p.roff.clone()).expect("roff is UTF-8");
        // midwatch-config-check.1 is `midwatch config check` (no subcommand name has a hyphen).
        let command = p.file_name.trim_end_matches(".1").replace('-', " ");
        let examples = text.split(".SH EXAMPLES\n").nth(1).unwrap_or_else(|| panic!("{} has no EXAMPLES", p.file_name));
        let examples = examples.split(".SH \"SEE ALSO\"").next().unwrap_or_default();
        let command = if command == "midwatch config" { "midwatch config check".to_string() } else { command };
        assert!(
            examples.contains(&format!(".TP\n\\fB{command}")),
            "{}: no example of {command}:\n{examples}",
            p.file_name
        );
    }
}

/// `check --help` says that a plain check writes ecc_agent_issue and sends email, and how to switch each off.
#[test]
fn check_help_says_what_a_plain_check_changes() {
    let mut command = cli::command();
    let help = command.find_subcommand_mut("check").expect("check").render_long_help().to_string();
    let about = help.split("Usage:").next().unwrap_or_default();
    for needle in ["write the findings to ecc_agent_issue", "email them", "--no-write", "--no-email", "--dry-run"] {
        assert!(about.contains(needle), "check --help lacks {needle:?}:\n{about}");
    }
}
