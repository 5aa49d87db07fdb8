//! The rows a fake instance serves, and the built-in demo data set.

use std::collections::BTreeMap;

use crate::shared::sn_time;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::events::EventLog;

/// The "now" the demo fixtures are written against (UTC).
pub const REFERENCE_TIME: &str = "2026-11-22 12:00:00";

/// Fields whose date-time values [`Dataset::demo`] moves to the present.
const SHIFTED_FIELDS: &[&str] =
    &["sys_created_on", "sys_updated_on", "last_refreshed", "last_login_time", "last_detected"];

/// The demo fixtures, one per table (`wiremock_fixtures/demo/`).
const DEMO_FIXTURES: &[(&str, &str)] = &[
    ("sys_user_role", include_str!("../../wiremock_fixtures/demo/sys_user_role.json")),
    ("sys_user_role_contains", include_str!("../../wiremock_fixtures/demo/sys_user_role_contains.json")),
    ("sys_user", include_str!("../../wiremock_fixtures/demo/sys_user.json")),
    ("sys_user_has_role", include_str!("../../wiremock_fixtures/demo/sys_user_has_role.json")),
    ("ecc_agent", include_str!("../../wiremock_fixtures/demo/ecc_agent.json")),
    ("ecc_agent_config", include_str!("../../wiremock_fixtures/demo/ecc_agent_config.json")),
    ("sysevent", include_str!("../../wiremock_fixtures/demo/sysevent.json")),
    ("sys_user_login_history", include_str!("../../wiremock_fixtures/demo/sys_user_login_history.json")),
    ("ecc_agent_issue", include_str!("../../wiremock_fixtures/demo/ecc_agent_issue.json")),
];

/// Tables of rows, each row exactly as the Table API returns it with
/// `sysparm_exclude_reference_link=false`: every scalar a string, references
/// `{"link":"…","value":"…"}` or `""`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub tables: BTreeMap<String, Vec<Map<String, Value>>>,
    /// More `sysevent` rows, stored compactly and indexed (a generated large instance); served together
    /// with `tables["sysevent"]`, which must then exist.
    pub events: EventLog,
}

impl Dataset {
    /// Parses one fixture file body `{"result":[...]}` into rows of `table` (appended after any
    /// existing rows). Every field value must be a string or a reference object
    /// `{"link": "<string>", "value": "<string>"}`.
    pub fn insert_fixture(&mut self, table: &str, json: &str) -> Result<(), String> {
        let body: Value =
            serde_json::from_str(json).map_err(|e| format!("fixture for table {table}: invalid JSON: {e}"))?;
        let Some(Value::Array(result)) = body.get("result") else {
            return Err(format!("fixture for table {table}: expected an object with a \"result\" array"));
        };
        let mut rows = Vec::with_capacity(result.len());
        for (i, row) in result.iter().enumerate() {
            let Value::Object(row) = row else {
                return Err(format!("fixture for table {table}: result[{i}] is not an object"));
            };
            for (field, value) in row {
                if !valid_value(value) {
                    return Err(format!(
                        "fixture for table {table}: result[{i}].{field} is neither a string nor \
                         a {{\"link\",\"value\"}} reference: {value}"
                    ));
                }
            }
            rows.push(row.clone());
        }
        self.tables.entry(table.to_string()).or_default().extend(rows);
        Ok(())
    }

    /// The built-in demo data set (`wiremock_fixtures/demo/`), with every date-time value of the
    /// fields `sys_created_on`, `sys_updated_on`, `last_refreshed`, `last_login_time` and
    /// `last_detected` shifted by `now - REFERENCE_TIME` (whole seconds), so the scenario always
    /// looks as if it happened just now.
    pub fn demo(now: DateTime<Utc>) -> Dataset {
        let mut dataset = Dataset::default();
        for (table, json) in DEMO_FIXTURES {
            if let Err(e) = dataset.insert_fixture(table, json) {
                // The fixtures are embedded at compile time and covered by tests.
                panic!("embedded demo fixture is invalid: {e}");
            }
        }
        dataset.ensure_table("ecc_agent_issue");
        let reference = sn_time::parse(REFERENCE_TIME).map(|t| t.timestamp()).unwrap_or_default();
        let delta = TimeDelta::seconds(now.timestamp() - reference);
        dataset.shift_times(delta);
        dataset
    }

    /// Makes `table` exist (with no rows if it did not), so that reads return `[]` instead of
    /// "Invalid table".
    pub fn ensure_table(&mut self, table: &str) {
        self.tables.entry(table.to_string()).or_default();
    }

    fn shift_times(&mut self, delta: TimeDelta) {
        for rows in self.tables.values_mut() {
            for row in rows.iter_mut() {
                for field in SHIFTED_FIELDS {
                    let Some(Value::String(text)) = row.get_mut(*field) else {
                        continue;
                    };
                    if let Some(shifted) = sn_time::parse(text).and_then(|t| t.checked_add_signed(delta)) {
                        *text = sn_time::format(shifted);
                    }
                }
            }
        }
    }
}

fn valid_value(value: &Value) -> bool {
    match value {
        Value::String(_) => true,
        Value::Object(obj) => {
            obj.len() == 2
                && matches!(obj.get("link"), Some(Value::String(_)))
                && matches!(obj.get("value"), Some(Value::String(_)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::field_string;

    fn at(s: &str) -> DateTime<Utc> {
        match sn_time::parse(s) {
            Some(t) => t,
            None => panic!("bad time {s}"),
        }
    }

    fn find<'a>(d: &'a Dataset, table: &str, field: &str, value: &str) -> &'a Map<String, Value> {
        d.tables
            .get(table)
            .and_then(|rows| rows.iter().find(|r| field_string(r, field) == value))
            .unwrap_or_else(|| panic!("no {table} row with {field}={value}"))
    }

    #[test]
    fn insert_fixture_validates_shapes() {
        let mut d = Dataset::default();
        assert!(d.insert_fixture("t", r#"{"result":[{"a":"1","r":{"link":"l","value":"v"},"e":""}]}"#).is_ok());
        assert_eq!(d.tables["t"].len(), 1);
        assert!(d.insert_fixture("t", r#"{"result":[{"a":1}]}"#).is_err());
        assert!(d.insert_fixture("t", r#"{"result":[{"a":null}]}"#).is_err());
        assert!(d.insert_fixture("t", r#"{"result":[{"r":{"value":"v"}}]}"#).is_err());
        assert!(d.insert_fixture("t", r#"{"result":{}}"#).is_err());
        assert!(d.insert_fixture("t", r#"[]"#).is_err());
        assert!(d.insert_fixture("t", "not json").is_err());
        assert_eq!(d.tables["t"].len(), 1);
    }

    #[test]
    fn demo_at_reference_time_is_unshifted() {
        let d = Dataset::demo(at(REFERENCE_TIME));
        for table in [
            "sys_user_role",
            "sys_user_role_contains",
            "sys_user",
            "sys_user_has_role",
            "ecc_agent",
            "ecc_agent_config",
            "sysevent",
            "sys_user_login_history",
            "ecc_agent_issue",
        ] {
            assert!(d.tables.contains_key(table), "{table}");
        }
        let ev = find(&d, "sysevent", "name", "login.authorization.failed");
        assert_eq!(field_string(ev, "sys_created_on"), "2026-11-22 11:50:00");
        assert_eq!(field_string(ev, "parm2"), "soap_ecc,soap_query");
        assert_eq!(d.tables["ecc_agent_issue"].len(), 1);
    }

    #[test]
    fn demo_shifts_date_times_by_whole_seconds() {
        let now = at("2030-01-01 00:00:00") + TimeDelta::milliseconds(700);
        let d = Dataset::demo(now);
        let ev = find(&d, "sysevent", "name", "login.authorization.failed");
        assert_eq!(field_string(ev, "sys_created_on"), "2029-12-31 23:50:00");
        let mid = find(&d, "ecc_agent", "name", "mid-healthy-01");
        assert_eq!(field_string(mid, "last_refreshed"), "2029-12-31 23:59:03");
        let user = find(&d, "sys_user", "user_name", "ardis.maison");
        assert_eq!(field_string(user, "last_login_time"), "2029-12-31 23:15:00");
        let issue = &d.tables["ecc_agent_issue"][0];
        assert_eq!(field_string(issue, "last_detected"), "2029-12-31 18:45:00");
        // non-date fields are untouched
        assert_eq!(field_string(mid, "status"), "Up");
    }

    #[test]
    fn demo_sysevent_is_sorted_and_ids_are_unique_hex() {
        let d = Dataset::demo(at(REFERENCE_TIME));
        let times: Vec<String> = d.tables["sysevent"].iter().map(|r| field_string(r, "sys_created_on")).collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted);
        let mut ids = std::collections::BTreeSet::new();
        for (table, rows) in &d.tables {
            for r in rows {
                let id = field_string(r, "sys_id");
                assert_eq!(id.len(), 32, "{table}: {id}");
                assert!(id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{table}: {id}");
                assert!(ids.insert(id.clone()), "duplicate sys_id {id}");
            }
        }
    }
}
