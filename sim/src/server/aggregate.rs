//! The Aggregate API (`/api/now/stats/{table}`): counts and MAX per group.

use super::*;

pub(super) const STATS_PARAMS: &[&str] = &[
    "sysparm_query",
    "sysparm_group_by",
    "sysparm_count",
    "sysparm_max_fields",
    "sysparm_min_fields",
    "sysparm_display_value",
];

/// Fields holding instance date-times: MIN/MAX of these is what [`AggregateSupport::NoDateMax`] withholds.
pub(super) const DATE_TIME_FIELDS: &[&str] =
    &["sys_created_on", "sys_updated_on", "last_detected", "last_refreshed", "last_login_time"];

/// The statistics of one group.
#[derive(Debug, Default)]
pub(super) struct GroupStats {
    pub(super) count: u64,
    pub(super) max: BTreeMap<String, String>,
    pub(super) min: BTreeMap<String, String>,
}

/// `GET /api/now/stats/{table}`: `{"result":[{"stats":{"count":"N","max":{…}},"groupby_fields":[{"field","value"}]}]}`
/// with `sysparm_group_by`, `{"result":{"stats":{…}}}` without; every number a string.
pub(super) fn aggregate(state: &State, req: &Incoming, table: &str) -> Reply {
    if !is_identifier(table) || !state.dataset.tables.contains_key(table) {
        return Reply::error(400, &format!("Invalid table {table}"), Some(&format!("Table {table} does not exist")));
    }
    let mut query = Query::default();
    let (mut group_by, mut max_fields, mut min_fields) = (Vec::new(), Vec::new(), Vec::new());
    let mut count = false;
    let list = |v: &str| -> Result<Vec<String>, Reply> {
        let fields: Vec<String> = v.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_string).collect();
        match fields.iter().find(|f| !f.split('.').all(is_identifier)) {
            Some(bad) => Err(Reply::unsupported(format!("fake instance: invalid field name {bad:?}"))),
            None => Ok(fields),
        }
    };
    for (name, value) in &req.query {
        let parsed = match name.as_str() {
            "sysparm_query" => Query::parse(value).map(|q| query = q).map_err(|e| Reply::unsupported(e.to_string())),
            "sysparm_group_by" => list(value).map(|f| group_by = f),
            "sysparm_max_fields" => list(value).map(|f| max_fields = f),
            "sysparm_min_fields" => list(value).map(|f| min_fields = f),
            "sysparm_count" => parse_bool(name, value).map(|c| count = c),
            "sysparm_display_value" if value == "false" => Ok(()),
            "sysparm_display_value" => {
                Err(Reply::unsupported(format!("fake instance supports only {name}=false, got {value:?}")))
            }
            _ => Err(Reply::unsupported(format!(
                "fake instance does not support parameter {name} here (supported: {})",
                STATS_PARAMS.join(", ")
            ))),
        };
        if let Err(reply) = parsed {
            return reply;
        }
    }
    let dates = state.aggregate == AggregateSupport::Full;
    let offered = |f: &String| dates || !DATE_TIME_FIELDS.contains(&f.as_str());
    max_fields.retain(offered);
    min_fields.retain(offered);

    let view = View::of(state);
    let rows = view.select(table, &query);
    let mut groups: BTreeMap<Vec<String>, GroupStats> = BTreeMap::new();
    for row in &rows {
        let key: Vec<String> = group_by.iter().map(|f| view.text(*row, f).into_owned()).collect();
        let g = groups.entry(key).or_default();
        g.count += 1;
        for f in &max_fields {
            let v = view.text(*row, f);
            if g.max.get(f).is_none_or(|m| v.as_ref() > m.as_str()) {
                g.max.insert(f.clone(), v.into_owned());
            }
        }
        for f in &min_fields {
            let v = view.text(*row, f);
            if g.min.get(f).is_none_or(|m| v.as_ref() < m.as_str()) {
                g.min.insert(f.clone(), v.into_owned());
            }
        }
    }
    let stats = |g: &GroupStats| -> Value {
        let mut stats = Map::new();
        if count {
            stats.insert("count".into(), Value::String(g.count.to_string()));
        }
        for (name, values) in [("max", &g.max), ("min", &g.min)] {
            if !values.is_empty() {
                let values = values.iter().map(|(f, v)| (f.clone(), Value::String(v.clone()))).collect();
                stats.insert(name.into(), Value::Object(values));
            }
        }
        Value::Object(stats)
    };
    let cost = Cost { rows: 0, aggregated: rows.len(), batch_items: 0 };
    if group_by.is_empty() {
        let all = groups.remove(&Vec::new()).unwrap_or_default();
        return Reply::result(200, json!({ "stats": stats(&all) })).with_cost(cost);
    }
    let result: Vec<Value> = groups
        .iter()
        .map(|(key, g)| {
            let fields: Vec<Value> = group_by.iter().zip(key).map(|(f, v)| json!({"field": f, "value": v})).collect();
            json!({"stats": stats(g), "groupby_fields": fields})
        })
        .collect();
    let returned = result.len();
    Reply::result(200, result).with_cost(Cost { rows: returned, ..cost })
}
