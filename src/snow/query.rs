//! Building encoded queries from untrusted values (docs/servicenow.md §3).
//!
//! ServiceNow has no reliable escape for `^`, `,` (in IN lists) or `@` (in ranges) inside a value,
//! and a value starting with `javascript:` is evaluated as a script. midwatch therefore never puts a
//! value into a query unless every character is on a short allow-list. A user name with any other
//! character is looked up through a *superset* query — `STARTSWITH` its longest safe prefix — and
//! every row that comes back is compared with the exact name on our side, so a hostile name can
//! neither run a script nor widen what another user's finding is based on. A name whose first
//! character is already unsafe cannot be queried at all and is refused by name.

use std::collections::BTreeSet;

use crate::domain::SkippedUser;

/// Joins query parts with `^`, skipping empty ones.
pub fn join_query(parts: &[&str]) -> String {
    parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("^")
}

/// The most values put into one `IN` list, to keep URLs short.
pub const IN_CHUNK: usize = 100;

/// True when `c` may appear in a query value: letters and digits of any script, `.`, `_`, `-` and `'`.
fn safe_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '\'')
}

/// True when the whole value can be sent as is, inside an `IN` list or after `=`.
pub fn is_safe_value(v: &str) -> bool {
    !v.is_empty() && v.chars().all(safe_char)
}

/// The longest leading run of safe characters, if any.
pub fn safe_prefix(v: &str) -> Option<&str> {
    let end = v.char_indices().find(|(_, c)| !safe_char(*c)).map_or(v.len(), |(i, _)| i);
    Some(&v[..end]).filter(|p| !p.is_empty())
}

/// How a set of values will be looked up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValueLookup {
    /// Safe values, in chunks of at most [`IN_CHUNK`], for `fieldIN…` queries.
    pub exact: Vec<Vec<String>>,
    /// Safe prefixes (deduplicated) for `fieldSTARTSWITH…` superset queries.
    pub prefixes: Vec<String>,
    /// Values that cannot be queried at all.
    pub refused: Vec<SkippedUser>,
}

impl ValueLookup {
    pub fn plan<'a>(values: impl IntoIterator<Item = &'a str>) -> ValueLookup {
        let mut exact = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        let mut refused = Vec::new();
        for v in values {
            if is_safe_value(v) {
                exact.insert(v.to_string());
            } else if let Some(p) = safe_prefix(v) {
                prefixes.insert(p.to_string());
            } else {
                refused.push(SkippedUser {
                    user: v.to_string(),
                    reason: "the user name begins with a character that an encoded query cannot carry safely \
                             (^ , @ = : < > ! or a space); check this user by hand, or rename it"
                        .to_string(),
                });
            }
        }
        let exact: Vec<String> = exact.into_iter().collect();
        ValueLookup {
            exact: exact.chunks(IN_CHUNK).map(<[String]>::to_vec).collect(),
            prefixes: prefixes.into_iter().collect(),
            refused,
        }
    }

    /// The query conditions, each to be AND'ed with the rest of a query.
    pub fn conditions(&self, field: &str) -> Vec<String> {
        let exact = self.exact.iter().map(|chunk| format!("{field}IN{}", chunk.join(",")));
        let prefixes = self.prefixes.iter().map(|p| format!("{field}STARTSWITH{p}"));
        exact.chain(prefixes).collect()
    }
}

/// `fieldINa,b,c` for values (sys_ids) that are all safe; unsafe ones are dropped — sys_ids and
/// role ids read from the instance are hexadecimal, so a drop means corrupt data, never a finding.
pub fn in_list<'a>(field: &str, values: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let safe: Vec<&str> = values.into_iter().map(String::as_str).filter(|v| is_safe_value(v)).collect();
    safe.chunks(IN_CHUNK).map(|c| format!("{field}IN{}", c.join(","))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_never_reach_a_query_verbatim() {
        let names = [
            "midserver2",
            "a^ORparm1ISNOTEMPTY",
            "b,c",
            "javascript:gs.log('x')",
            "d@e",
            "x=y",
            "o'brien",
            "jürgen.müller",
            "with space",
            "^leading",
            " lead",
        ];
        let plan = ValueLookup::plan(names);
        assert_eq!(plan.exact, [vec!["jürgen.müller".to_string(), "midserver2".into(), "o'brien".into()]]);
        assert_eq!(plan.prefixes, ["a", "b", "d", "javascript", "with", "x"]);
        let refused: Vec<&str> = plan.refused.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(refused, ["^leading", " lead"]);
        for c in plan.conditions("parm1") {
            assert!(!c.contains('^') && !c.contains(':') && !c.contains('@') && !c.contains('='), "{c}");
        }
    }

    #[test]
    fn in_lists_are_chunked() {
        let names: Vec<String> = (0..250).map(|i| format!("u{i}")).collect();
        let plan = ValueLookup::plan(names.iter().map(String::as_str));
        assert_eq!(plan.exact.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        assert_eq!(in_list("sys_id", &names).len(), 3);
    }
}
