//! The rules that read the text of `src/`: the size of a file, and encoded queries built by hand (their text is
//! in string literals, which the module graph does not see).

use std::path::PathBuf;

use crate::{sources, src};

/// The product's own files under `src/` (the demo's aside), each without its test module.
fn product_sources() -> Vec<(PathBuf, String)> {
    sources(&src(""))
        .into_iter()
        .filter(|p| !p.ends_with("tests.rs") && !p.components().any(|c| c.as_os_str() == "tests"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            (p, code)
        })
        .collect()
}

/// The string literals of one line of code (a `//` comment aside), roughly: enough to find query text.
fn literals(line: &str) -> Vec<&str> {
    let code = line.split_once("//").map_or(line, |(code, _)| code);
    code.split('"').skip(1).step_by(2).collect()
}

/// True when `literal` holds an encoded-query condition with a `{…}` placeholder after its operator
/// (`parm1IN{}`, `source={source}`, `sys_created_on>{}`), or an encoded query's keywords.
fn builds_a_query(literal: &str) -> bool {
    if ["ORDERBY", "STARTSWITH", "^NQ", "^OR", "sysparm_query="].iter().any(|k| literal.contains(k)) {
        return true;
    }
    let bytes = literal.as_bytes();
    literal.match_indices('{').any(|(i, _)| {
        let before = &bytes[..i];
        let op = ["IN", "!=", ">=", "<=", "=", ">", "<"].into_iter().find(|op| before.ends_with(op.as_bytes()));
        let Some(op) = op else { return false };
        let field = &before[..before.len() - op.len()];
        let start =
            field.iter().rposition(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'.'));
        let name = &field[start.map_or(0, |s| s + 1)..];
        !name.is_empty() && start.is_none_or(|s| field[s] == b'^')
    })
}

#[test]
fn no_product_module_builds_an_encoded_query_by_hand() {
    assert!(builds_a_query("parm1IN{}") && builds_a_query("x^source={source}") && builds_a_query("ORDERBYsys_id"));
    assert!(!builds_a_query("{}={n}") && !builds_a_query("[check] issue_source = \\") && !builds_a_query("a = {b}"));
    let mut found = Vec::new();
    for (path, code) in product_sources() {
        if path.ends_with("snow/query.rs") || path.components().any(|c| c.as_os_str() == "demo") {
            continue;
        }
        for (n, line) in code.lines().enumerate() {
            if literals(line).into_iter().any(builds_a_query) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert_eq!(found, Vec::<String>::new(), "encoded queries are built with snow::query::Query only");
}

/// About 500 lines of code a file (its test module aside), so that each holds one job.
const MAX_LINES: usize = 500;

#[test]
fn no_product_file_is_over_the_size_limit() {
    let over: Vec<String> = product_sources()
        .into_iter()
        .filter(|(_, code)| code.lines().count() > MAX_LINES)
        .map(|(p, code)| format!("{}: {} lines", p.display(), code.lines().count()))
        .collect();
    assert_eq!(over, Vec::<String>::new());
}
