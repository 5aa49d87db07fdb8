//! The layout's rules, checked on the module graph of `src/` (see `model`): no module imports the command line
//! but `main`; the config does not import what it configures; the renderings and the pure steps import no I/O;
//! no import cycle between top-level modules; functions a screen long; `pub` as a signal; errors as types, not
//! strings, where modules meet. The rules carried over from the text scan see test code too; the others (cycles,
//! function length, `pub` count, `String` errors) look at the product only. `text` holds the two rules that read
//! the text: the size of a file, and encoded queries built by hand (their text is in string literals).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use model::{Function, MODEL, ModPath, shown};

mod model;
#[path = "../support/mod.rs"]
mod support;
mod text;

fn src(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(path)
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = support::files_below(dir, true).into_iter().map(|(path, _)| path).collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// The import rules

fn module(path: &str) -> ModPath {
    path.split("::").map(str::to_string).collect()
}

/// Every reference from `from` (a module and what is below it) to a path under one of `forbidden`.
fn offenders(from: &str, forbidden: &[&str], with_tests: bool) -> Vec<String> {
    let from = module(from);
    assert!(MODEL.modules.contains(&from), "no module crate::{}", from.join("::"));
    MODEL
        .references
        .iter()
        .filter(|r| (with_tests || !r.in_test) && r.from.starts_with(&from))
        .filter(|r| forbidden.iter().any(|f| r.to.starts_with(&module(f))))
        .map(|r| format!("{}:{} uses {}", r.file, r.line, shown(&r.to)))
        .collect()
}

#[test]
fn the_cycle_finder_names_each_cycle_once() {
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (from, to) in
        [("cycle", "watch"), ("watch", "cycle"), ("a", "b"), ("b", "c"), ("c", "a"), ("c", "b"), ("d", "a")]
    {
        graph.entry(from.into()).or_default().insert(to.into(), String::new());
    }
    let found: Vec<String> = cycles(&graph).iter().map(|c| c.join(" -> ")).collect();
    assert_eq!(found, ["a -> b -> c", "b -> c", "cycle -> watch"]);
}

#[test]
fn src_uses_no_path_attribute() {
    let found: Vec<String> = sources(&src(""))
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).unwrap_or_default().contains("#[path"))
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(found, Vec::<String>::new(), "module paths are read from file paths");
}

#[test]
fn only_main_imports_the_command_line() {
    for module in ["cycle", "demo", "service", "present", "notify", "config", "snow", "collect", "evaluate"] {
        assert_eq!(offenders(module, &["cli"], true), Vec::<String>::new());
    }
}

#[test]
fn the_config_and_the_pure_steps_import_no_side_effect() {
    assert_eq!(offenders("config", &["notify", "present", "cycle"], true), Vec::<String>::new());
    for pure in ["domain", "evaluate", "present"] {
        let found = offenders(pure, &["snow::Client", "notify", "cycle", "collect"], true);
        assert_eq!(found, Vec::<String>::new(), "{pure} must stay free of I/O");
    }
}

#[test]
fn collect_does_not_reach_into_evaluate() {
    assert_eq!(offenders("collect", &["evaluate"], true), Vec::<String>::new());
}

#[test]
fn cycle_imports_nothing_from_watch() {
    assert_eq!(offenders("cycle", &["watch"], false), Vec::<String>::new());
}

/// The top-level modules each top-level module imports from (test code aside), with the first reference.
fn top_level_graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let top: BTreeSet<&String> = MODEL.modules.iter().filter_map(|m| m.first()).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for r in MODEL.references.iter().filter(|r| !r.in_test) {
        let (Some(from), Some(to)) = (r.from.first(), r.to.first()) else { continue };
        if from != to && top.contains(to) {
            let at = format!("{}:{} uses {}", r.file, r.line, shown(&r.to));
            graph.entry(from.clone()).or_default().entry(to.clone()).or_insert(at);
        }
    }
    graph
}

/// Every elementary cycle of `graph`, each once, starting at its smallest module.
fn cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    fn walk(graph: &BTreeMap<String, BTreeMap<String, String>>, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let (start, here) = (path[0].clone(), path[path.len() - 1].clone());
        for next in graph.get(&here).into_iter().flat_map(|n| n.keys()) {
            if *next == start {
                out.push(path.clone());
            } else if *next > start && !path.contains(next) {
                path.push(next.clone());
                walk(graph, path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    for start in graph.keys() {
        walk(graph, &mut vec![start.clone()], &mut out);
    }
    out
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = top_level_graph();
    let found: Vec<String> = cycles(&graph)
        .into_iter()
        .map(|cycle| {
            let hops: Vec<String> =
                cycle.iter().zip(cycle.iter().cycle().skip(1)).map(|(a, b)| format!("\n    {}", graph[a][b])).collect();
            format!("{} -> {}{}", cycle.join(" -> "), cycle[0], hops.concat())
        })
        .collect();
    assert!(found.is_empty(), "{} import cycle(s) between top-level modules:\n{}", found.len(), found.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Functions and items

/// A function a screen long, its steps named (`fn` to closing brace, test code aside).
const MAX_FUNCTION_LINES: usize = 100;

#[test]
fn no_function_is_over_the_length_limit() {
    let mut long: Vec<&Function> = MODEL.functions.iter().filter(|f| f.lines > MAX_FUNCTION_LINES).collect();
    long.sort_by_key(|f| std::cmp::Reverse(f.lines));
    let found: Vec<String> =
        long.iter().map(|f| format!("{}:{} {} ({} lines)", f.file, f.line, f.name, f.lines)).collect();
    assert!(found.is_empty(), "functions over {MAX_FUNCTION_LINES} lines:\n{}", found.join("\n"));
}

/// `pub` as a signal: what other crates (the binary, the tests, the benches) may use, not every item. Items and
/// impl items count; the fields of a `pub` type are its shape and are counted apart (`unreachable_pub` in
/// Cargo.toml keeps both honest).
const MAX_PUB_ITEMS: usize = 200;

#[test]
fn pub_items_stay_under_the_limit() {
    let count = MODEL.pub_items.len();
    let mut by_file: BTreeMap<&str, usize> = BTreeMap::new();
    for file in &MODEL.pub_items {
        *by_file.entry(file).or_default() += 1;
    }
    let mut by_file: Vec<(&str, usize)> = by_file.into_iter().collect();
    by_file.sort_by_key(|(file, n)| (std::cmp::Reverse(*n), *file));
    let top: Vec<String> = by_file.iter().take(15).map(|(file, n)| format!("{file}: {n}")).collect();
    assert!(
        count <= MAX_PUB_ITEMS,
        "{count} items and impl items are `pub` (at most {MAX_PUB_ITEMS}; and {} fields); the most in:\n{}",
        MODEL.pub_fields.len(),
        top.join("\n")
    );
}

#[test]
fn no_reachable_function_returns_a_string_error_outside_the_config_and_the_command_line() {
    let found: Vec<String> = MODEL
        .functions
        .iter()
        .filter(|f| f.reachable && f.returns_string_error)
        .filter(|f| !f.file.starts_with("src/config/") && f.file != "src/cli.rs")
        .map(|f| format!("{}:{} {}", f.file, f.line, f.name))
        .collect();
    assert!(
        found.is_empty(),
        "{} pub or pub(crate) function(s) return Result<_, String>, give them an error type:\n{}",
        found.len(),
        found.join("\n")
    );
}
