//! Parser and matcher for the subset of ServiceNow encoded queries the fake instance understands.
//!
//! Grammar (values arrive URL-decoded):
//! - conditions are separated by `^` (AND); a condition written `^OR<cond>` is OR'ed with the previous
//!   condition, and OR binds tighter than AND (`a^b^ORc` = `a AND (b OR c)`);
//! - `^NQ<cond>` starts a new query OR'ed with everything before it (`a^b^NQc` = `(a AND b) OR c`);
//! - `ORDERBY<field>` / `ORDERBYDESC<field>` add sort keys (applied in order, stable);
//! - a trailing `^EQ` end marker is accepted and ignored;
//! - a condition is `<field><operator><value>`; fields are `[a-z0-9_]+`, optionally dot-walked
//!   (`user.user_name`), the operator is the longest one matching after the field.
//!
//! The parser is strict: anything it does not understand is an error, so client bugs surface instead of
//! being silently ignored the way a real instance would. A value starting with `javascript:` is refused.
//! Matching is the instance's: `=`, `!=`, `IN`, `NOT IN` and `STARTSWITH` ignore case.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value};

/// Why a query was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The fake cannot parse the query.
    Parse(String),
    /// A value starts with `javascript:`; the real instance would evaluate it as a script.
    Script(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Parse(msg) => write!(f, "fake instance cannot parse query: {msg}"),
            QueryError::Script(value) => {
                write!(f, "fake instance refuses script value {value}")
            }
        }
    }
}

impl std::error::Error for QueryError {}

/// A comparison operator with its operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(String),
    Ge(String),
    Lt(String),
    Le(String),
    StartsWith(String),
    IsEmpty,
    IsNotEmpty,
}

/// One `<field><op><value>` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    /// The operands of `=`, `!=`, `IN`, `NOT IN` and `STARTSWITH`, folded once ([`fold_case`]).
    folded: Vec<String>,
}

impl Condition {
    fn new(field: &str, op: Op) -> Condition {
        let folded = match &op {
            Op::Eq(v) | Op::Ne(v) | Op::StartsWith(v) => vec![fold_case(v).into_owned()],
            Op::In(list) | Op::NotIn(list) => list.iter().map(|v| fold_case(v).into_owned()).collect(),
            _ => Vec::new(),
        };
        Condition { field: field.to_string(), op, folded }
    }

    /// Whether a field's value satisfies the condition. `=`, `!=`, `IN`, `NOT IN` and `STARTSWITH` ignore case,
    /// as the instance does: GlideRecord queries are case-insensitive, and the Table API's encoded query runs as
    /// one (docs/servicenow.md §3). The ordering operators compare the text as it is (they serve date-times and
    /// sys_ids here).
    pub fn matches(&self, value: &str) -> bool {
        let is_one_of = || {
            let value = fold_case(value);
            self.folded.iter().any(|v| *v == value)
        };
        match &self.op {
            Op::Eq(_) | Op::In(_) => is_one_of(),
            Op::Ne(_) | Op::NotIn(_) => !is_one_of(),
            Op::StartsWith(_) => {
                let value = fold_case(value);
                self.folded.iter().any(|p| value.starts_with(p.as_str()))
            }
            Op::Gt(v) => value > v.as_str(),
            Op::Ge(v) => value >= v.as_str(),
            Op::Lt(v) => value < v.as_str(),
            Op::Le(v) => value <= v.as_str(),
            Op::IsEmpty => value.is_empty(),
            Op::IsNotEmpty => !value.is_empty(),
        }
    }
}

/// `text` as the instance compares it: each character lower-cased (borrowed when nothing changes).
pub fn fold_case(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| !b.is_ascii() || b.is_ascii_uppercase()) {
        Cow::Owned(text.chars().flat_map(char::to_lowercase).collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub field: String,
    pub descending: bool,
}

/// A parsed encoded query: an AND of OR-groups (OR'ed with the further `^NQ` queries), plus sort keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Every group must match; a group matches when any of its conditions does.
    pub groups: Vec<Vec<Condition>>,
    /// The queries after each `^NQ`, each shaped like `groups`; a row matches when `groups` or any of these does.
    pub new_queries: Vec<Vec<Vec<Condition>>>,
    pub order: Vec<OrderBy>,
}

/// Operators, longest first so that the longest match wins (`>=` before `>`, `NOT IN` before `IN`...).
const OPERATORS: &[&str] = &["ISNOTEMPTY", "STARTSWITH", "ISEMPTY", "NOT IN", "!=", ">=", "<=", "IN", "=", ">", "<"];

/// Operators the real instance knows but the fake does not implement: named in the error message.
const UNSUPPORTED_OPERATORS: &[&str] = &[
    "NOT LIKE",
    "LIKE",
    "ENDSWITH",
    "ANYTHING",
    "EMPTYSTRING",
    "BETWEEN",
    "SAMEAS",
    "NSAMEAS",
    "DYNAMIC",
    "ON",
    "NOTON",
    "RELATIVE",
    "DATEPART",
    "MORETHAN",
    "LESSTHAN",
    "VALCHANGES",
    "CHANGESFROM",
    "CHANGESTO",
];

fn is_field_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Checks a field name: `[a-z0-9_]+` segments joined by single dots.
fn valid_field(field: &str) -> bool {
    !field.is_empty() && field.split('.').all(|seg| !seg.is_empty() && seg.chars().all(is_field_char))
}

fn refuse_script(value: &str) -> Result<(), QueryError> {
    let trimmed = value.trim_start();
    let is_script = trimmed.get(..11).is_some_and(|p| p.eq_ignore_ascii_case("javascript:"));
    if is_script { Err(QueryError::Script(value.to_string())) } else { Ok(()) }
}

fn parse_list(cond: &str, value: &str) -> Result<Vec<String>, QueryError> {
    if value.is_empty() {
        return Err(QueryError::Parse(format!("empty list in condition {cond:?}")));
    }
    let items: Vec<String> = value.split(',').map(str::to_string).collect();
    if items.iter().any(String::is_empty) {
        return Err(QueryError::Parse(format!("empty item in list of condition {cond:?}")));
    }
    for item in &items {
        refuse_script(item)?;
    }
    Ok(items)
}

fn parse_condition(cond: &str) -> Result<Condition, QueryError> {
    let field_end = cond.char_indices().find(|&(_, c)| !(is_field_char(c) || c == '.')).map_or(cond.len(), |(i, _)| i);
    let field = &cond[..field_end];
    let rest = &cond[field_end..];
    if field.is_empty() {
        return Err(QueryError::Parse(format!("condition {cond:?} does not start with a field name")));
    }
    if !valid_field(field) {
        return Err(QueryError::Parse(format!("invalid field name {field:?} in condition {cond:?}")));
    }
    let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) else {
        if let Some(op) = UNSUPPORTED_OPERATORS.iter().find(|op| rest.starts_with(**op)) {
            return Err(QueryError::Parse(format!("operator {op} (in condition {cond:?}) is not supported")));
        }
        return Err(QueryError::Parse(format!("no known operator after field {field:?} in condition {cond:?}")));
    };
    let value = &rest[op.len()..];
    refuse_script(value)?;
    let need_value = |v: &str| -> Result<String, QueryError> {
        if v.is_empty() {
            Err(QueryError::Parse(format!("operator {op} needs a value in condition {cond:?}")))
        } else {
            Ok(v.to_string())
        }
    };
    let op = match *op {
        "ISNOTEMPTY" | "ISEMPTY" => {
            if !value.is_empty() {
                return Err(QueryError::Parse(format!("operator {op} takes no value in condition {cond:?}")));
            }
            if *op == "ISEMPTY" { Op::IsEmpty } else { Op::IsNotEmpty }
        }
        "STARTSWITH" => Op::StartsWith(need_value(value)?),
        "NOT IN" => Op::NotIn(parse_list(cond, value)?),
        "IN" => Op::In(parse_list(cond, value)?),
        "!=" => Op::Ne(value.to_string()),
        "=" => Op::Eq(value.to_string()),
        ">=" => Op::Ge(need_value(value)?),
        "<=" => Op::Le(need_value(value)?),
        ">" => Op::Gt(need_value(value)?),
        "<" => Op::Lt(need_value(value)?),
        other => {
            return Err(QueryError::Parse(format!("operator {other} not handled")));
        }
    };
    Ok(Condition::new(field, op))
}

fn parse_order_field(segment: &str, field: &str) -> Result<String, QueryError> {
    if valid_field(field) {
        Ok(field.to_string())
    } else {
        Err(QueryError::Parse(format!("invalid field name {field:?} in {segment:?}")))
    }
}

impl Query {
    /// Parses an encoded query (already URL-decoded). The empty string matches every row.
    pub fn parse(query: &str) -> Result<Query, QueryError> {
        let mut parsed = Query::default();
        if query.is_empty() {
            return Ok(parsed);
        }
        let segments: Vec<&str> = query.split('^').collect();
        let last = segments.len() - 1;
        // Whether the previous segment was a condition, so that `^OR` can attach to it.
        let mut after_condition = false;
        for (i, segment) in segments.iter().enumerate() {
            if segment.is_empty() {
                return Err(QueryError::Parse(format!(
                    "empty condition at position {} in {query:?} (`^^` escapes are not supported)",
                    i + 1
                )));
            }
            if let Some(field) = segment.strip_prefix("ORDERBYDESC") {
                parsed.order.push(OrderBy { field: parse_order_field(segment, field)?, descending: true });
                after_condition = false;
            } else if let Some(field) = segment.strip_prefix("ORDERBY") {
                parsed.order.push(OrderBy { field: parse_order_field(segment, field)?, descending: false });
                after_condition = false;
            } else if *segment == "EQ" {
                if i != last {
                    return Err(QueryError::Parse(format!("`EQ` marker must be last in {query:?}")));
                }
            } else if segment.starts_with("RLQUERY") {
                return Err(QueryError::Parse(format!("{segment:?} is not supported in {query:?}")));
            } else if let Some(cond) = segment.strip_prefix("NQ") {
                if i == 0 || cond.is_empty() {
                    return Err(QueryError::Parse(format!("`NQ` query {segment:?} must follow a query in {query:?}")));
                }
                let previous = std::mem::take(&mut parsed.groups);
                parsed.new_queries.push(previous);
                parsed.groups.push(vec![parse_condition(cond)?]);
                after_condition = true;
            } else if let Some(cond) = segment.strip_prefix("OR") {
                if i == 0 || !after_condition {
                    return Err(QueryError::Parse(format!(
                        "`OR` condition {segment:?} does not follow a condition in {query:?}"
                    )));
                }
                let condition = parse_condition(cond)?;
                match parsed.groups.last_mut() {
                    Some(group) => group.push(condition),
                    None => {
                        return Err(QueryError::Parse(format!("`OR` condition {segment:?} has nothing to attach to")));
                    }
                }
            } else {
                parsed.groups.push(vec![parse_condition(segment)?]);
                after_condition = true;
            }
        }
        // Parsing pushed each finished query in front of the current one: put the first query first.
        if !parsed.new_queries.is_empty() {
            let last = std::mem::take(&mut parsed.groups);
            parsed.new_queries.push(last);
            parsed.groups = parsed.new_queries.remove(0);
        }
        Ok(parsed)
    }

    /// The OR'ed queries: `groups`, then each `^NQ` query.
    pub fn queries(&self) -> impl Iterator<Item = &Vec<Vec<Condition>>> {
        std::iter::once(&self.groups).chain(&self.new_queries)
    }

    /// Whether a row matches, reading field values with `get` (missing field = empty string).
    pub fn matches_with(&self, get: impl Fn(&str) -> String) -> bool {
        self.queries().any(|groups| groups.iter().all(|group| group.iter().any(|c| c.matches(&get(&c.field)))))
    }

    /// Whether a stored row matches (plain fields only; a dotted field reads as empty).
    pub fn matches(&self, row: &Map<String, Value>) -> bool {
        self.matches_with(|field| field_string(row, field))
    }

    /// Sorts `rows` by the ORDERBY keys (stable; no keys = order unchanged).
    pub fn sort_with<T>(&self, rows: &mut [T], get: impl Fn(&T, &str) -> String) {
        if self.order.is_empty() {
            return;
        }
        rows.sort_by(|a, b| {
            for key in &self.order {
                let ord = get(a, &key.field).cmp(&get(b, &key.field));
                let ord = if key.descending { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }

    /// Sorts stored rows by the ORDERBY keys (plain fields only).
    pub fn sort(&self, rows: &mut [Map<String, Value>]) {
        self.sort_with(rows, field_string);
    }
}

/// The comparable string of `field` in `row`: the product's own decoding of the instance's value shapes
/// (`value_text`: strings as they are, references by their `value`, absent or null as "").
pub fn field_string(row: &Map<String, Value>, field: &str) -> String {
    crate::shared::value_text(row.get(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn q(s: &str) -> Query {
        match Query::parse(s) {
            Ok(q) => q,
            Err(e) => panic!("query {s:?} should parse: {e}"),
        }
    }

    fn parse_err(s: &str) -> QueryError {
        match Query::parse(s) {
            Ok(q) => panic!("query {s:?} should not parse, got {q:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn empty_query_matches_everything() {
        let query = q("");
        assert!(query.matches(&row(json!({"a": "1"}))));
        assert!(query.groups.is_empty() && query.order.is_empty());
    }

    #[test]
    fn and_of_conditions() {
        let query = q("name=login^parm1=bob");
        assert!(query.matches(&row(json!({"name": "login", "parm1": "bob"}))));
        assert!(!query.matches(&row(json!({"name": "login", "parm1": "alice"}))));
    }

    #[test]
    fn or_binds_tighter_than_and() {
        // a^b^ORc = a AND (b OR c)
        let query = q("a=1^b=2^ORc=3");
        assert_eq!(query.groups.len(), 2);
        assert_eq!(query.groups[1].len(), 2);
        assert!(query.matches(&row(json!({"a": "1", "b": "2", "c": "0"}))));
        assert!(query.matches(&row(json!({"a": "1", "b": "0", "c": "3"}))));
        assert!(!query.matches(&row(json!({"a": "0", "b": "2", "c": "3"}))));
        assert!(!query.matches(&row(json!({"a": "1", "b": "0", "c": "0"}))));
        // a^ORb^c = (a OR b) AND c
        let query = q("a=1^ORb=2^c=3");
        assert!(query.matches(&row(json!({"a": "0", "b": "2", "c": "3"}))));
        assert!(!query.matches(&row(json!({"a": "1", "b": "2", "c": "0"}))));
    }

    #[test]
    fn in_and_not_in() {
        let query = q("nameINlogin,login.failed,login.authorization.failed");
        assert!(query.matches(&row(json!({"name": "login.failed"}))));
        assert!(!query.matches(&row(json!({"name": "logout"}))));
        let query = q("nameNOT INlogin,login.failed");
        assert_eq!(query.groups[0][0].op, Op::NotIn(vec!["login".into(), "login.failed".into()]));
        assert!(query.matches(&row(json!({"name": "logout"}))));
        assert!(query.matches(&row(json!({}))));
        assert!(!query.matches(&row(json!({"name": "login"}))));
    }

    #[test]
    fn is_empty_and_is_not_empty() {
        let query = q("parm2ISEMPTY");
        assert!(query.matches(&row(json!({"parm2": ""}))));
        assert!(query.matches(&row(json!({}))));
        assert!(!query.matches(&row(json!({"parm2": "x"}))));
        let query = q("mid_serverISNOTEMPTY");
        assert!(!query.matches(&row(json!({"mid_server": ""}))));
        assert!(query.matches(&row(json!({"mid_server": {"link": "l", "value": "abc"}}))));
        // ISNOTEMPTY is not read as ISEMPTY + value, nor as field "mid_serverISNOT" ...
        assert_eq!(query.groups[0][0].op, Op::IsNotEmpty);
    }

    #[test]
    fn comparisons_and_startswith() {
        let query = q("sys_created_on>=2026-11-22 08:00:00^sys_created_on<2026-11-22 12:00:00");
        assert!(query.matches(&row(json!({"sys_created_on": "2026-11-22 08:00:00"}))));
        assert!(query.matches(&row(json!({"sys_created_on": "2026-11-22 11:59:59"}))));
        assert!(!query.matches(&row(json!({"sys_created_on": "2026-11-22 12:00:00"}))));
        assert!(!query.matches(&row(json!({"sys_created_on": "2026-11-21 23:00:00"}))));
        let query = q("sys_created_on>2026-11-22 08:00:00^sys_created_on<=2026-11-22 09:00:00");
        assert!(!query.matches(&row(json!({"sys_created_on": "2026-11-22 08:00:00"}))));
        assert!(query.matches(&row(json!({"sys_created_on": "2026-11-22 09:00:00"}))));
        let query = q("nameSTARTSWITHlogin");
        assert!(query.matches(&row(json!({"name": "login.failed"}))));
        assert!(!query.matches(&row(json!({"name": "session.established"}))));
        let query = q("name!=login");
        assert!(query.matches(&row(json!({"name": "login.failed"}))));
        assert!(!query.matches(&row(json!({"name": "login"}))));
    }

    #[test]
    fn string_comparisons_ignore_case_as_a_gliderecord_query_does() {
        let r = row(json!({"parm1": "MidServer.Case", "name": "login.failed"}));
        for matching in [
            "parm1=midserver.case",
            "parm1=MIDSERVER.CASE",
            "parm1INother,midServer.case",
            "parm1STARTSWITHmidserver",
            "parm1STARTSWITHMIDS",
            "parm1!=midserver.other",
            "parm1NOT INmidserver.other,x",
            "name=LOGIN.FAILED",
        ] {
            assert!(q(matching).matches(&r), "{matching}");
        }
        for not_matching in [
            "parm1!=midserver.case",
            "parm1NOT INx,MIDSERVER.CASE",
            "parm1=midserver.cas",
            "parm1STARTSWITHmidserver.cased",
        ] {
            assert!(!q(not_matching).matches(&r), "{not_matching}");
        }
        // Beyond ASCII too: each character lower-cased.
        assert!(q("parm1=JÜRGEN.MÜLLER").matches(&row(json!({"parm1": "jürgen.müller"}))));
        assert!(q("parm1STARTSWITHjürgen").matches(&row(json!({"parm1": "JÜRGEN.MÜLLER"}))));
    }

    #[test]
    fn value_may_contain_operator_characters() {
        let query = q("parm1=a=b");
        assert_eq!(query.groups[0][0].op, Op::Eq("a=b".into()));
        let query = q("parm1=");
        assert!(query.matches(&row(json!({"parm1": ""}))));
    }

    #[test]
    fn reference_fields_compare_their_value() {
        let r = row(json!({
            "user": {"link": "https://x/api/now/table/sys_user/u1", "value": "u1"},
            "granted_by": ""
        }));
        assert!(q("user=u1").matches(&r));
        assert!(q("userINu0,u1").matches(&r));
        assert!(!q("user=u2").matches(&r));
        assert!(q("granted_byISEMPTY").matches(&r));
        assert!(q("userISNOTEMPTY").matches(&r));
    }

    #[test]
    fn order_by_and_order_by_desc() {
        let mut rows = vec![
            row(json!({"id": "1", "t": "b", "u": "x"})),
            row(json!({"id": "2", "t": "a", "u": "y"})),
            row(json!({"id": "3", "t": "b", "u": "z"})),
            row(json!({"id": "4", "t": "a", "u": "x"})),
        ];
        let ids = |rows: &[Map<String, Value>]| -> Vec<String> { rows.iter().map(|r| field_string(r, "id")).collect() };
        q("ORDERBYDESCt").sort(&mut rows);
        // stable: ties keep insertion order
        assert_eq!(ids(&rows), ["1", "3", "2", "4"]);
        q("t=a^ORt=b^ORDERBYt^ORDERBYDESCu").sort(&mut rows);
        assert_eq!(ids(&rows), ["2", "4", "3", "1"]);
        let query = q("ORDERBYDESCsys_created_on");
        assert_eq!(query.order, vec![OrderBy { field: "sys_created_on".into(), descending: true }]);
        assert!(query.groups.is_empty());
    }

    #[test]
    fn new_query_is_ored_with_everything_before_it() {
        let query = q("parm1=a^sys_created_on=1^NQparm1=b^sys_created_on=2^ORsys_created_on=3^ORDERBYsys_id");
        assert_eq!((query.groups.len(), query.new_queries.len(), query.order.len()), (2, 1, 1));
        assert!(query.matches(&row(json!({"parm1": "a", "sys_created_on": "1"}))));
        assert!(query.matches(&row(json!({"parm1": "b", "sys_created_on": "3"}))));
        assert!(!query.matches(&row(json!({"parm1": "a", "sys_created_on": "2"}))));
        assert!(!query.matches(&row(json!({"parm1": "b", "sys_created_on": "1"}))));
        let three = q("a=1^NQa=2^NQa=3");
        assert_eq!(three.queries().count(), 3);
        assert_eq!(three.groups[0][0].op, Op::Eq("1".into()));
    }

    #[test]
    fn trailing_eq_marker_and_dot_walk_fields() {
        let query = q("active=true^EQ");
        assert_eq!(query.groups.len(), 1);
        let query = q("user.user_name=bob");
        assert_eq!(query.groups[0][0].field, "user.user_name");
        let got = query.matches_with(|f| if f == "user.user_name" { "bob".into() } else { String::new() });
        assert!(got);
    }

    #[test]
    fn strict_parse_errors() {
        for bad in [
            "^name=login",
            "name=login^",
            "name=login^^parm1=x",
            "ORname=login",
            "ORDERBYname^ORparm1=x",
            "name",
            "Name=login",
            "=login",
            "nameLIKElogin",
            "nameENDSWITHfailed",
            "parm2ISEMPTYx",
            "nameIN",
            "nameINa,,b",
            "nameSTARTSWITH",
            "sys_created_on>",
            "ORDERBY",
            "ORDERBYDESCName",
            "NQa=1",
            "a=1^NQ",
            "a=1^EQ^b=2",
            "user..name=x",
            "name =login",
        ] {
            let err = parse_err(bad);
            assert!(matches!(err, QueryError::Parse(_)), "{bad:?}: {err:?}");
            assert!(err.to_string().starts_with("fake instance cannot parse query: "), "{err}");
        }
    }

    #[test]
    fn javascript_values_are_refused() {
        for bad in [
            "sys_created_on>javascript:gs.hoursAgo(4)",
            "sys_created_on>JavaScript:gs.hoursAgo(4)",
            "parm1=javascript:1",
            "parm1INa,javascript:gs.getUserName()",
            "parm1STARTSWITH javascript:x",
        ] {
            let err = parse_err(bad);
            assert!(matches!(err, QueryError::Script(_)), "{bad:?}: {err:?}");
            assert!(err.to_string().starts_with("fake instance refuses script value "), "{err}");
        }
        // not at the start of the value: a plain string
        assert!(Query::parse("parm1=xjavascript:").is_ok());
    }
}
