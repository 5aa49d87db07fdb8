//! Lenient decoding of the instance's value shapes (docs/servicenow.md §2 item 2).
//!
//! Every value is a string; references are `{"link","value"}` objects, plain strings (with
//! `sysparm_exclude_reference_link=true`) or `""` when empty; booleans are `"true"`/`"false"`; a
//! field the account may not read is simply absent. [`Row`] accepts all of these.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::{SysId, sn_time};

/// A value as text: strings as they are, numbers and booleans printed, a reference object's `value`, anything
/// else (absent, null, other objects, arrays) as "".
pub(crate) fn value_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Object(o)) => o.get("value").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// One record of a Table API `result` array.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Map<String, Value>);

impl Row {
    /// The field as text: strings as they are, numbers and booleans printed, anything else (absent,
    /// null, objects) as "". A reference object yields its `value`.
    pub fn text(&self, field: &str) -> String {
        value_text(self.0.get(field))
    }

    /// A reference field's sys_id, or `None` when empty or absent.
    pub(crate) fn reference(&self, field: &str) -> Option<String> {
        Some(self.text(field)).filter(|v| !v.is_empty())
    }

    /// A reference field as a sys_id: `None` when empty, absent or not 32 lowercase hexadecimal digits, so an
    /// id from an answer reaches a query or a URL path only once it is known to be one.
    pub(crate) fn sys_id(&self, field: &str) -> Option<SysId> {
        SysId::parse(&self.text(field))
    }

    /// A boolean field; `"true"` (any case), `"1"` and JSON `true` are true, anything else false.
    pub(crate) fn flag(&self, field: &str) -> bool {
        let t = self.text(field);
        t.eq_ignore_ascii_case("true") || t == "1"
    }

    /// A date-time field in the Table API's UTC format.
    pub(crate) fn time(&self, field: &str) -> Option<DateTime<Utc>> {
        sn_time::parse(&self.text(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        match v {
            Value::Object(m) => Row(m),
            _ => Row::default(),
        }
    }

    #[test]
    fn references_in_every_shape() {
        let r = row(json!({
            "a": {"link": "https://x/api/now/table/ecc_agent/abc", "value": "abc"},
            "b": "abc",
            "c": "",
            "d": {"display_value": "x", "link": "https://x"},
        }));
        assert_eq!(r.reference("a").as_deref(), Some("abc"));
        assert_eq!(r.reference("b").as_deref(), Some("abc"));
        assert_eq!(r.reference("c"), None);
        assert_eq!(r.reference("d"), None);
        assert_eq!(r.reference("missing"), None);
    }

    #[test]
    fn scalars_and_flags() {
        let r = row(json!({"t": "true", "f": "false", "b": true, "n": 3, "s": "4", "null": null}));
        assert!(r.flag("t") && r.flag("b"));
        assert!(!r.flag("f") && !r.flag("missing") && !r.flag("null"));
        assert_eq!((r.text("n"), r.text("s"), r.text("null")), ("3".into(), "4".into(), "".into()));
    }

    #[test]
    fn times() {
        let r = row(json!({"at": "2026-11-22 11:45:00", "bad": "22/11/2026"}));
        assert_eq!(r.time("at").map(sn_time::format).as_deref(), Some("2026-11-22 11:45:00"));
        assert_eq!(r.time("bad"), None);
    }
}
