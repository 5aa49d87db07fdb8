//! Table API writes: create and update, with the instance's checks of a write body.

use super::*;

/// Checks the content type and parses the body into stored field values.
pub(super) fn parse_write_body(base_url: &str, req: &Incoming) -> Result<Vec<(String, Value)>, Reply> {
    let content_type = req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let is_json = content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Reply::error(
            400,
            "fake instance requires Content-Type: application/json",
            Some(&format!("got Content-Type {content_type:?}")),
        ));
    }
    let body: Value = serde_json::from_str(&req.body).map_err(|e| {
        Reply::error(400, "Exception while reading request", Some(&format!("The payload is not valid JSON: {e}")))
    })?;
    let Value::Object(body) = body else {
        return Err(Reply::error(
            400,
            "Exception while reading request",
            Some("fake instance expects one JSON object"),
        ));
    };
    let mut fields = Vec::with_capacity(body.len());
    for (field, value) in body {
        if !is_identifier(&field) {
            return Err(Reply::unsupported(format!("fake instance: invalid field name {field:?} in body")));
        }
        if SYSTEM_FIELDS.contains(&field.as_str()) {
            continue;
        }
        let text = match value {
            Value::String(s) => s,
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(Reply::unsupported(format!(
                    "fake instance expects a scalar for field {field}, got {value}"
                )));
            }
        };
        if javascript(&text) {
            return Err(Reply::unsupported(format!("fake instance refuses script value {text}")));
        }
        let stored = match REFERENCE_FIELDS.iter().find(|(f, _)| *f == field) {
            Some((_, ref_table)) if !text.is_empty() => json!({
                "link": format!("{base_url}/api/now/table/{ref_table}/{text}"),
                "value": text,
            }),
            _ => Value::String(text),
        };
        fields.push((field, stored));
    }
    Ok(fields)
}

pub(super) fn javascript(value: &str) -> bool {
    value.trim_start().get(..11).is_some_and(|p| p.eq_ignore_ascii_case("javascript:"))
}

pub(super) fn now_string(state: &State) -> String {
    sn_time::format(state.clock.now())
}

pub(super) fn new_sys_id(state: &mut State, table: &str) -> String {
    loop {
        state.next_id += 1;
        let candidate = format!("fa4e{:028x}", state.next_id);
        if find_index(state, table, &candidate).is_none() {
            return candidate;
        }
    }
}

pub(super) fn no_response_body(req: &Incoming) -> bool {
    req.headers
        .get("x-no-response-body")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

pub(super) fn create(shared: &Shared, state: &mut State, req: &Incoming, table: &str) -> Outcome {
    let params = match parse_params(&req.query, WRITE_PARAMS) {
        Ok(p) => p,
        Err(reply) => return Outcome::Reply(reply),
    };
    let fields = match parse_write_body(&shared.base_url, req) {
        Ok(f) => f,
        Err(reply) => return Outcome::Reply(reply),
    };
    let sys_id = new_sys_id(state, table);
    let now = now_string(state);
    let mut row = Map::new();
    for (field, value) in fields {
        row.insert(field, value);
    }
    if table == "ecc_agent_issue" {
        row.entry("state").or_insert_with(|| json!("new"));
        row.entry("count").or_insert_with(|| json!("1"));
    }
    row.insert("sys_id".into(), json!(sys_id));
    row.insert("sys_created_on".into(), json!(now));
    row.insert("sys_updated_on".into(), json!(now));
    row.insert("sys_mod_count".into(), json!("0"));
    let rendered = render(View::of(state), &row, &params);
    let rows = state.dataset.tables.entry(table.to_string()).or_default();
    rows.push(row);
    let at = rows.len() - 1;
    state.index.insert(table, &sys_id, at);

    if let Some(i) = state.faults.iter().position(|f| {
        matches!(f, Fault::ApplyThenHang { .. } | Fault::ApplyThen503 { .. } | Fault::ApplyThenRespond { .. })
            && f.table() == table
    }) {
        match state.faults.remove(i) {
            Fault::ApplyThenHang { .. } => return Outcome::Hang,
            Fault::ApplyThenRespond { status, body, headers, .. } => {
                return Outcome::Reply(injected_reply(status, body, &headers));
            }
            _ => {
                return Outcome::Reply(Reply::error(
                    503,
                    "Service Unavailable",
                    Some("fake instance: injected fault after storing the record"),
                ));
            }
        }
    }

    let location = format!("{}/api/now/table/{table}/{sys_id}", shared.base_url);
    let reply = if no_response_body(req) {
        Reply { status: 201, headers: Vec::new(), body: String::new(), cost: Cost::default() }
    } else {
        Reply::result(201, rendered)
    };
    Outcome::Reply(reply.with_header(header::LOCATION, &location))
}

pub(super) fn update(shared: &Shared, state: &mut State, req: &Incoming, table: &str, sys_id: &str) -> Reply {
    let params = match parse_params(&req.query, WRITE_PARAMS) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let Some(index) = find_index(state, table, sys_id) else {
        return Reply::not_found();
    };
    let fields = match parse_write_body(&shared.base_url, req) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let now = now_string(state);
    let Some(row) = state.dataset.tables.get_mut(table).and_then(|rows| rows.get_mut(index)) else {
        return Reply::not_found();
    };
    for (field, value) in fields {
        row.insert(field, value);
    }
    let mod_count = field_string(row, "sys_mod_count").parse::<u64>().map_or(1, |n| n + 1);
    row.insert("sys_updated_on".into(), json!(now));
    row.insert("sys_mod_count".into(), json!(mod_count.to_string()));
    let row = row.clone();
    if no_response_body(req) {
        return Reply { status: 200, headers: Vec::new(), body: String::new(), cost: Cost::default() };
    }
    Reply::result(200, render(View::of(state), &row, &params))
}
