//! Encoded queries built from types (docs/servicenow.md §3): the only way midwatch writes a `sysparm_query`.
//!
//! ServiceNow has no reliable escape for `^`, `,` (in IN lists) or `@` (in ranges) inside a value,
//! and a value starting with `javascript:` is evaluated as a script. A [`Query`] therefore takes only:
//!
//! - a [`Field`]: a column named in the code, checked when the program is compiled;
//! - a [`QueryValue`]: every character on a short allow-list, checked when it is made; a `SysId` is one;
//! - a time, which the query formats itself in the instance's format.
//!
//! A user name with any other character is looked up through a *superset* query — `STARTSWITH` its
//! longest safe prefix (`ValueLookup`) — and every row that comes back is compared with the exact name
//! on our side, so a hostile name can neither run a script nor widen what another user's finding is based
//! on. A name whose first character is already unsafe cannot be queried at all and is refused by name.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::{SkippedUser, SysId, sn_time};

/// The most values put into one `IN` list, to keep URLs short.
pub(crate) const IN_CHUNK: usize = 100;

/// A column of a table, named in the code: lowercase ASCII letters, digits, `_`, and `.` for a dot-walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field(&'static str);

impl Field {
    /// A field name; used in constants, so a name off the allow-list fails the build.
    pub const fn new(name: &'static str) -> Field {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "a field name is not empty");
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            assert!(
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'.',
                "a field name holds only a-z, 0-9, '_' and '.'"
            );
            i += 1;
        }
        Field(name)
    }

    pub(crate) const fn name(self) -> &'static str {
        self.0
    }
}

pub(crate) const SYS_ID: Field = Field::new("sys_id");
pub(crate) const SYS_CREATED_ON: Field = Field::new("sys_created_on");

/// True when `c` may appear in a query value: letters and digits of any script, `.`, `_`, `-` and `'`.
fn safe_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '\'')
}

/// A value that can be sent in a query as it is, inside an `IN` list or after an operator: not empty, every
/// character a letter, a digit, `.`, `_`, `-` or `'`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryValue(Cow<'static, str>);

impl QueryValue {
    /// The value, when every character is safe.
    pub(crate) fn new(v: &str) -> Option<QueryValue> {
        is_safe_value(v).then(|| QueryValue(Cow::Owned(v.to_string())))
    }

    /// A value written in the code; one off the allow-list fails the build where it is a constant.
    pub const fn fixed(v: &'static str) -> QueryValue {
        let bytes = v.as_bytes();
        assert!(!bytes.is_empty(), "a query value is not empty");
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            assert!(
                c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'\''),
                "a fixed query value holds only ASCII letters, digits, . _ - '"
            );
            i += 1;
        }
        QueryValue(Cow::Borrowed(v))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for QueryValue {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for QueryValue {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&SysId> for QueryValue {
    /// A sys_id is 32 hexadecimal digits (checked when it was made), always safe.
    fn from(id: &SysId) -> QueryValue {
        QueryValue(Cow::Owned(id.as_str().to_string()))
    }
}

impl fmt::Display for QueryValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True when the whole value can be sent as is (see [`QueryValue`]).
fn is_safe_value(v: &str) -> bool {
    !v.is_empty() && v.chars().all(safe_char)
}

/// The longest leading run of safe characters, if any.
pub(crate) fn safe_prefix(v: &str) -> Option<QueryValue> {
    let end = v.char_indices().find(|(_, c)| !safe_char(*c)).map_or(v.len(), |(i, _)| i);
    QueryValue::new(&v[..end])
}

/// An encoded query: conditions AND'ed with `^`, then its ordering. Built only from [`Field`]s, [`QueryValue`]s and
/// times; `Query::default()` selects every row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    encoded: String,
}

impl Query {
    pub fn new() -> Query {
        Query::default()
    }

    fn push(mut self, part: fmt::Arguments<'_>) -> Query {
        use fmt::Write as _;
        if !self.encoded.is_empty() {
            self.encoded.push('^');
        }
        // Writing to a String cannot fail.
        let _ = self.encoded.write_fmt(part);
        self
    }

    /// `field=value`
    pub fn eq(self, field: Field, value: &QueryValue) -> Query {
        self.push(format_args!("{}={value}", field.0))
    }

    /// `field!=value`
    pub(crate) fn ne(self, field: Field, value: &QueryValue) -> Query {
        self.push(format_args!("{}!={value}", field.0))
    }

    /// `field>value` (for a sys_id: the rows after it in `ORDERBYsys_id` order).
    pub(crate) fn gt(self, field: Field, value: &QueryValue) -> Query {
        self.push(format_args!("{}>{value}", field.0))
    }

    /// `fieldINa,b,c`; an empty list selects nothing, so callers skip it.
    pub(crate) fn one_of<'a>(self, field: Field, values: impl IntoIterator<Item = &'a QueryValue>) -> Query {
        let list: Vec<&str> = values.into_iter().map(QueryValue::as_str).collect();
        self.push(format_args!("{}IN{}", field.0, list.join(",")))
    }

    /// `fieldSTARTSWITHprefix`
    pub(crate) fn starts_with(self, field: Field, prefix: &QueryValue) -> Query {
        self.push(format_args!("{}STARTSWITH{prefix}", field.0))
    }

    /// `field=time`, to the second.
    pub(crate) fn at(self, field: Field, t: DateTime<Utc>) -> Query {
        self.push(format_args!("{}={}", field.0, sn_time::format(t)))
    }

    /// `field>time`
    pub(crate) fn after(self, field: Field, t: DateTime<Utc>) -> Query {
        self.push(format_args!("{}>{}", field.0, sn_time::format(t)))
    }

    /// `field>=time`
    pub(crate) fn at_or_after(self, field: Field, t: DateTime<Utc>) -> Query {
        self.push(format_args!("{}>={}", field.0, sn_time::format(t)))
    }

    /// `field<=time`
    pub(crate) fn at_or_before(self, field: Field, t: DateTime<Utc>) -> Query {
        self.push(format_args!("{}<={}", field.0, sn_time::format(t)))
    }

    /// `start < field <= end`: the window's bounds.
    pub(crate) fn within(self, field: Field, start: DateTime<Utc>, end: DateTime<Utc>) -> Query {
        self.after(field, start).at_or_before(field, end)
    }

    /// `^ORfield>time`: OR'ed with the condition before it (the instance binds `^OR` tighter than `^`).
    pub(crate) fn or_after(mut self, field: Field, t: DateTime<Utc>) -> Query {
        use fmt::Write as _;
        let _ = write!(self.encoded, "^OR{}>{}", field.0, sn_time::format(t));
        self
    }

    /// Every condition of `other` AND'ed to these.
    pub(crate) fn and(self, other: &Query) -> Query {
        if other.encoded.is_empty() { self } else { self.push(format_args!("{}", other.encoded)) }
    }

    /// `ORDERBYfield`; orderings go last.
    pub(crate) fn order_by(self, field: Field) -> Query {
        self.push(format_args!("ORDERBY{}", field.0))
    }

    /// `ORDERBYDESCfield`
    pub(crate) fn order_by_desc(self, field: Field) -> Query {
        self.push(format_args!("ORDERBYDESC{}", field.0))
    }

    /// The queries OR'ed as a whole with `^NQ` (each one's rows, together).
    pub(crate) fn any_of(queries: impl IntoIterator<Item = Query>) -> Query {
        let parts: Vec<String> = queries.into_iter().map(|q| q.encoded).collect();
        Query { encoded: parts.join("^NQ") }
    }

    /// The encoded query, as `sysparm_query` takes it.
    pub(crate) fn as_str(&self) -> &str {
        &self.encoded
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encoded)
    }
}

/// `fieldINa,b,c` conditions for sys_ids, in chunks of at most [`IN_CHUNK`].
pub(crate) fn sys_ids_in<'a>(field: Field, ids: impl IntoIterator<Item = &'a SysId>) -> Vec<Query> {
    let values: Vec<QueryValue> = ids.into_iter().map(QueryValue::from).collect();
    values.chunks(IN_CHUNK).map(|chunk| Query::new().one_of(field, chunk)).collect()
}

/// How a set of values (user names) will be looked up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ValueLookup {
    /// Safe values, in chunks of at most [`IN_CHUNK`], for `fieldIN…` queries.
    pub(crate) exact: Vec<Vec<QueryValue>>,
    /// Safe prefixes (deduplicated) for `fieldSTARTSWITH…` superset queries.
    pub(crate) prefixes: Vec<QueryValue>,
    /// Values that cannot be queried at all.
    pub(crate) refused: Vec<SkippedUser>,
}

impl ValueLookup {
    pub(crate) fn plan<'a>(values: impl IntoIterator<Item = &'a str>) -> ValueLookup {
        let mut exact = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        let mut refused = Vec::new();
        for v in values {
            if let Some(value) = QueryValue::new(v) {
                exact.insert(value);
            } else if let Some(p) = safe_prefix(v) {
                prefixes.insert(p);
            } else {
                refused.push(SkippedUser {
                    user: v.to_string(),
                    reason: "the user name begins with a character that an encoded query cannot carry safely \
                             (^ , @ = : < > ! or a space); check this user by hand, or rename it"
                        .to_string(),
                });
            }
        }
        let exact: Vec<QueryValue> = exact.into_iter().collect();
        ValueLookup {
            exact: exact.chunks(IN_CHUNK).map(<[QueryValue]>::to_vec).collect(),
            prefixes: prefixes.into_iter().collect(),
            refused,
        }
    }

    /// The query conditions, each to be AND'ed with the rest of a query.
    pub(crate) fn conditions(&self, field: Field) -> Vec<Query> {
        let exact = self.exact.iter().map(|chunk| Query::new().one_of(field, chunk));
        let prefixes = self.prefixes.iter().map(|p| Query::new().starts_with(field, p));
        exact.chain(prefixes).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARM1: Field = Field::new("parm1");

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
        let text = |v: &[QueryValue]| v.iter().map(|v| v.as_str().to_string()).collect::<Vec<_>>();
        assert_eq!(
            plan.exact.iter().map(|c| text(c)).collect::<Vec<_>>(),
            [["jürgen.müller", "midserver2", "o'brien"]]
        );
        assert_eq!(text(&plan.prefixes), ["a", "b", "d", "javascript", "with", "x"]);
        let refused: Vec<&str> = plan.refused.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(refused, ["^leading", " lead"]);
        for c in plan.conditions(PARM1) {
            let c = c.as_str();
            assert!(!c.contains('^') && !c.contains(':') && !c.contains('@') && !c.contains('='), "{c}");
        }
    }

    #[test]
    fn a_value_off_the_allow_list_cannot_be_made() {
        for hostile in ["", "a^b", "a,b", "a@b", "javascript:x", "a=b", "a b", "a\nb", "a<b", "a!b"] {
            assert_eq!(QueryValue::new(hostile), None, "{hostile:?}");
        }
        assert_eq!(QueryValue::new("jürgen.o'brien-2_x").map(|v| v.to_string()).as_deref(), Some("jürgen.o'brien-2_x"));
        assert_eq!(SysId::parse("0123456789abcdef0123456789ABCDEF"), None, "upper case is not a sys_id");
        assert_eq!(SysId::parse("0123456789abcdef0123456789abcde^"), None);
        assert_eq!(SysId::parse("0123456789abcdef0123456789abcde"), None, "31 digits");
    }

    #[test]
    fn in_lists_are_chunked() {
        let names: Vec<String> = (0..250).map(|i| format!("u{i}")).collect();
        let plan = ValueLookup::plan(names.iter().map(String::as_str));
        assert_eq!(plan.exact.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        let ids: Vec<SysId> = (0..250).filter_map(|i| SysId::parse(&format!("{i:032x}"))).collect();
        assert_eq!(sys_ids_in(SYS_ID, &ids).len(), 3);
    }

    #[test]
    fn conditions_compose_in_order() {
        let t = sn_time::parse("2026-11-22 10:00:00").unwrap_or_default();
        let u = sn_time::parse("2026-11-22 11:00:00").unwrap_or_default();
        let q = Query::new()
            .one_of(Field::new("name"), &[QueryValue::fixed("login"), QueryValue::fixed("login.failed")])
            .within(SYS_CREATED_ON, t, u)
            .eq(PARM1, &QueryValue::fixed("o'brien"))
            .order_by_desc(SYS_CREATED_ON)
            .order_by_desc(SYS_ID);
        assert_eq!(
            q.as_str(),
            "nameINlogin,login.failed^sys_created_on>2026-11-22 10:00:00^sys_created_on<=2026-11-22 11:00:00\
             ^parm1=o'brien^ORDERBYDESCsys_created_on^ORDERBYDESCsys_id"
        );
        let history = Query::new()
            .eq(Field::new("source"), &QueryValue::fixed("midwatch"))
            .ne(Field::new("state"), &QueryValue::fixed("resolved"))
            .or_after(Field::new("sys_updated_on"), t);
        assert_eq!(history.as_str(), "source=midwatch^state!=resolved^ORsys_updated_on>2026-11-22 10:00:00");
        let nq = Query::any_of([Query::new().at(SYS_CREATED_ON, t), Query::new().at(SYS_CREATED_ON, u)]);
        assert_eq!(nq.as_str(), "sys_created_on=2026-11-22 10:00:00^NQsys_created_on=2026-11-22 11:00:00");
        assert_eq!(Query::new().and(&Query::new()).as_str(), "");
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config())]

        /// No user name changes a query's terms: each condition is one term on the field, `IN` a list of safe
        /// values or `STARTSWITH` one, and nothing of the name outside the allow-list reaches it.
        #[test]
        fn no_generated_name_changes_a_querys_terms(
            names in proptest::collection::vec(
                proptest::prop_oneof![
                    "\\PC{0,24}",
                    "[a-z.]{0,6}[\\^,@=:!<> ]{1,3}(OR|NQ|javascript:|ISNOTEMPTY|user_name=admin)[a-z]{0,6}",
                ],
                1..8,
            )
        ) {
            let lookup = ValueLookup::plan(names.iter().map(String::as_str));
            let base = Query::new().eq(Field::new("name"), &QueryValue::fixed("login"));
            for condition in lookup.conditions(PARM1) {
                let text = condition.as_str().to_string();
                proptest::prop_assert!(!text.contains('^'), "one term: {}", text);
                let (op, values) = if let Some(v) = text.strip_prefix("parm1IN") {
                    ("IN", v.split(',').collect::<Vec<_>>())
                } else if let Some(v) = text.strip_prefix("parm1STARTSWITH") {
                    ("STARTSWITH", vec![v])
                } else {
                    return Err(proptest::test_runner::TestCaseError::fail(format!("unexpected term {text}")));
                };
                for v in values {
                    proptest::prop_assert!(!v.is_empty() && v.chars().all(safe_char), "{} value {:?}", op, v);
                    proptest::prop_assert!(!v.to_ascii_lowercase().starts_with("javascript"), "{:?}", v);
                }
                let joined = base.clone().and(&condition);
                proptest::prop_assert_eq!(joined.as_str().matches('^').count(), 1, "{}", joined.as_str());
            }
            // Every name is either queried (exactly or by a prefix of it) or refused by name.
            for name in &names {
                let exact = QueryValue::new(name).is_some_and(|v| lookup.exact.iter().flatten().any(|e| *e == v));
                let prefix = lookup.prefixes.iter().any(|p| name.starts_with(p.as_str()));
                let refused = lookup.refused.iter().any(|r| &r.user == name);
                proptest::prop_assert!(exact || prefix || refused, "{:?} lost", name);
            }
        }
    }
}
