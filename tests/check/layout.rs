//! The layout's rules, checked on the source: no module imports the command line but `main`, the config does
//! not import what it configures, and the renderings do not import the steps whose results they show.

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

fn src(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(path)
}

/// Every file of `module` (a file or a directory under `src/`) that names `forbidden`.
fn offenders(module: &str, forbidden: &[&str]) -> Vec<String> {
    let root = src(module);
    let files = if root.is_dir() { sources(&root) } else { vec![root.with_extension("rs")] };
    assert!(!files.is_empty(), "no source for {module}");
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for name in forbidden {
            if text.contains(name) {
                found.push(format!("{} uses {name}", f.display()));
            }
        }
    }
    found
}

#[test]
fn only_main_imports_the_command_line() {
    for module in ["cycle", "demo", "service", "present", "notify", "config", "snow", "collect", "evaluate"] {
        assert_eq!(offenders(module, &["crate::cli"]), Vec::<String>::new());
    }
}

#[test]
fn the_config_and_the_pure_steps_import_no_side_effect() {
    assert_eq!(offenders("config", &["crate::notify", "crate::present", "crate::cycle"]), Vec::<String>::new());
    for pure in ["domain", "evaluate", "present"] {
        let found = offenders(pure, &["crate::snow::Client", "crate::notify::", "crate::cycle", "crate::collect"]);
        assert_eq!(found, Vec::<String>::new(), "{pure} must stay free of I/O");
    }
}
