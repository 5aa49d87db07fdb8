//! The Aggregate API (`GET /api/now/stats/{table}`, docs/servicenow.md §2 item 9): how many rows each
//! group holds, and the latest value of a field where the instance offers MAX of it.
//!
//! Answers are read leniently: `result` is an array of groups (with `sysparm_group_by`) or one object;
//! a count may be a string or a number; `groupby_fields` values may be strings or reference objects;
//! a MAX the instance did not compute is absent or empty. A count that cannot be read is `None`, never
//! zero, so a caller never skips reading a group it knows nothing about.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use url::Url;

use super::answer::Shape;
use super::retry;
use super::row::value_text;
use super::{ApiError, ApiErrorKind, Client, Query};

/// One group of an Aggregate API answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Group {
    /// Each group-by field and its value in this group.
    pub(crate) fields: BTreeMap<String, String>,
    /// The rows in the group; `None` when the answer's count is absent or not a number.
    pub(crate) count: Option<u64>,
    /// The `sysparm_max_fields` values the answer carried (empty ones left out).
    pub(crate) max: BTreeMap<String, String>,
}

/// How errors of the Aggregate API name what failed.
pub(crate) fn label(table: &str) -> String {
    format!("{table} (Aggregate API)")
}

impl Client {
    /// Counts the rows of `table` matching `query` per distinct `group_by` values, asking for the MAX of
    /// `max_fields` too. Retried like a read.
    pub(crate) async fn aggregate(
        &self,
        table: &str,
        query: &Query,
        group_by: &[&str],
        max_fields: &[&str],
    ) -> Result<Vec<Group>, ApiError> {
        let label = label(table);
        let mut url: Url = self.opts.base_url.clone();
        url.set_path(&format!("/api/now/stats/{table}"));
        let params = params(query, group_by, max_fields);
        let (group_by, max_fields) = (group_by.join(","), max_fields.join(","));
        let _waiting = self.pending.enter(format!("waiting for counts of {table}"));
        let attempt = || async {
            tracing::debug!(table, query = query.as_str(), group_by, max_fields, "GET stats");
            let request = self.http.get(url.clone()).query(&params);
            let answer = self.exchange(&label, request).await?;
            // The classifier has refused anything but a complete answer without an `error` (a 200 that
            // carries one is a transaction the quota cut short: docs/servicenow.md §2 item 6).
            decode_groups(&label, self.data(&label, &answer, Shape::Table)?)
        };
        retry::run(&self.opts.retry, &label, retry::transient, attempt).await
    }

    /// [`Client::aggregate`] of each of `queries`, in one Batch API call: per query its groups, or `None` where
    /// its sub-request did not answer complete data (the caller asks that one directly).
    pub(crate) async fn aggregate_many(
        &self,
        table: &str,
        queries: &[Query],
        group_by: &[&str],
        max_fields: &[&str],
    ) -> Result<Vec<Option<Vec<Group>>>, ApiError> {
        let label = label(table);
        let urls: Vec<String> = queries
            .iter()
            .map(|q| {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.extend_pairs(params(q, group_by, max_fields));
                format!("/api/now/stats/{table}?{}", form.finish())
            })
            .collect();
        let bodies = self.batch_get_bodies(&urls, &format!("{} counts of {table}", queries.len())).await?;
        Ok(bodies
            .into_iter()
            .map(|b| match b {
                Some((Value::Object(object), _)) => decode_groups(&label, object).ok(),
                _ => None,
            })
            .collect())
    }
}

/// The query parameters of an Aggregate API call.
fn params<'a>(
    query: &'a Query,
    group_by: &[&str],
    max_fields: &[&str],
) -> Vec<(&'static str, std::borrow::Cow<'a, str>)> {
    let mut params: Vec<(&str, std::borrow::Cow<'a, str>)> = vec![
        ("sysparm_query", query.as_str().into()),
        ("sysparm_count", "true".into()),
        ("sysparm_display_value", "false".into()),
    ];
    if !group_by.is_empty() {
        params.push(("sysparm_group_by", group_by.join(",").into()));
    }
    if !max_fields.is_empty() {
        params.push(("sysparm_max_fields", max_fields.join(",").into()));
    }
    params
}

fn decode_groups(label: &str, object: Map<String, Value>) -> Result<Vec<Group>, ApiError> {
    match object.get("result") {
        Some(Value::Array(groups)) => Ok(groups.iter().map(group).collect()),
        Some(single @ Value::Object(_)) => Ok(vec![group(single)]),
        _ => Err(ApiError::new(label, ApiErrorKind::Malformed { reason: "no \"result\" array or object".into() })),
    }
}

fn group(v: &Value) -> Group {
    let stats = v.get("stats");
    let count = stats.and_then(|s| s.get("count")).map(|c| value_text(Some(c))).and_then(|c| c.trim().parse().ok());
    let max = stats
        .and_then(|s| s.get("max"))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(f, v)| (f.clone(), value_text(Some(v)))).filter(|(_, v)| !v.is_empty()).collect())
        .unwrap_or_default();
    let fields = v
        .get("groupby_fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f.get("field")?.as_str()?.to_string(), value_text(f.get("value")))))
        .collect();
    Group { fields, count, max }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_in_every_shape() {
        let answer = json!({"result": [
            {"stats": {"count": "12", "max": {"sys_created_on": "2026-11-22 11:00:00"}},
             "groupby_fields": [{"field": "parm1", "value": "bob"}, {"field": "name", "value": "login"}]},
            {"stats": {"count": 3}, "groupby_fields": [{"field": "parm1", "value": {"value": "eve", "link": "x"}}]},
            {"stats": {"count": "many", "max": {"sys_created_on": ""}}, "groupby_fields": [{"field": "parm1", "value": ""}]},
            {"groupby_fields": []},
        ]});
        let groups: Vec<Group> = answer["result"].as_array().into_iter().flatten().map(group).collect();
        assert_eq!(groups[0].count, Some(12));
        assert_eq!(groups[0].fields["parm1"], "bob");
        assert_eq!(groups[0].fields["name"], "login");
        assert_eq!(groups[0].max["sys_created_on"], "2026-11-22 11:00:00");
        assert_eq!((groups[1].count, groups[1].fields["parm1"].as_str()), (Some(3), "eve"));
        assert_eq!(groups[2].count, None, "an unreadable count is unknown, not zero");
        assert!(groups[2].max.is_empty(), "an empty max is no max");
        assert_eq!(groups[3], Group::default());
        let single = group(&json!({"stats": {"count": "5"}}));
        assert_eq!(single.count, Some(5));
    }
}
