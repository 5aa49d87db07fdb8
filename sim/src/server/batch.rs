//! The Batch API endpoint (`/api/now/v1/batch`): each sub-request handled as a direct one.

use super::*;

/// The Batch API endpoint.
pub(super) const BATCH_PATH: &str = "/api/now/v1/batch";
/// The Aggregate API's path, before the table name.
pub(super) const STATS_PREFIX: &str = "/api/now/stats/";
/// The fault table name that targets Batch API calls themselves.
pub const BATCH_FAULT_TABLE: &str = "batch";

/// `POST /api/now/v1/batch`: runs each `rest_requests` item through the same handling as a direct
/// request (authorization is the outer request's), and answers `serviced_requests` with base64
/// bodies and their headers. Faults on table [`BATCH_FAULT_TABLE`] apply to the whole call: `Respond` answers
/// without running anything; `ApplyThenHang`, `ApplyThen503`, `ApplyThenRespond`, `CutOff` and `Truncated` run
/// every item, then hang, answer 503, answer what they carry, cut the connection off, or send part of the body;
/// `BatchQuota` runs only the first items and leaves the others unserviced.
pub(super) fn batch(shared: &Shared, state: &mut State, req: &Incoming) -> Outcome {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    if req.method != Method::POST {
        return Outcome::Reply(Reply::error(405, "Method not Supported", None));
    }
    let mut after: Option<Fault> = None;
    if let Some(i) = state.faults.iter().position(|f| f.table() == BATCH_FAULT_TABLE) {
        match state.faults.remove(i) {
            Fault::Respond { status, body, headers, .. } => {
                return Outcome::Reply(injected_reply(status, body, &headers));
            }
            other => after = Some(other),
        }
    }
    let Ok(envelope) = serde_json::from_str::<Value>(&req.body) else {
        return Outcome::Reply(Reply::error(400, "Invalid batch request: body is not JSON", None));
    };
    let Some(items) = envelope.get("rest_requests").and_then(Value::as_array) else {
        return Outcome::Reply(Reply::error(400, "Invalid batch request: no rest_requests", None));
    };
    let mut serviced = Vec::new();
    let mut unserviced = Vec::new();
    let mut cost = Cost::default();
    let quota = match after {
        Some(Fault::BatchQuota { serviced }) => serviced,
        _ => usize::MAX,
    };
    for (n, item) in items.iter().enumerate() {
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        if n >= quota {
            unserviced.push(Value::String(id));
            continue;
        }
        let method = item.get("method").and_then(Value::as_str).unwrap_or("GET");
        let url = item.get("url").and_then(Value::as_str).unwrap_or_default();
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let body = item
            .get("body")
            .and_then(Value::as_str)
            .and_then(|b| b64.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let mut headers = req.headers.clone();
        for h in item.get("headers").and_then(Value::as_array).into_iter().flatten() {
            let name = h.get("name").and_then(Value::as_str).and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok());
            let value = h.get("value").and_then(Value::as_str).and_then(|v| HeaderValue::from_str(v).ok());
            if let (Some(n), Some(v)) = (name, value) {
                headers.insert(n, v);
            }
        }
        let sub = Incoming {
            method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
            path: path.to_string(),
            query: url::form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
            headers,
            body,
        };
        *state.tally.sub_requests.entry(endpoint(&sub.path)).or_default() += 1;
        let reply = match process(shared, state, &sub) {
            Outcome::Reply(r) | Outcome::CutOff(r, _) => r,
            Outcome::Hang => Reply::error(503, "fake instance: sub-request timed out", None),
        };
        cost.rows += reply.cost.rows;
        cost.aggregated += reply.cost.aggregated;
        cost.batch_items += 1;
        serviced.push(json!({
            "id": id,
            "body": b64.encode(reply.body.as_bytes()),
            "status_code": reply.status,
            "status_text": StatusCode::from_u16(reply.status).ok().and_then(|s| s.canonical_reason()).unwrap_or(""),
            "headers": sub_headers(&reply),
            "execution_time": 1,
        }));
    }
    let batch_request_id = envelope.get("batch_request_id").cloned().unwrap_or(Value::Null);
    let reply = Reply::json(
        200,
        json!({"batch_request_id": batch_request_id, "serviced_requests": serviced, "unserviced_requests": unserviced})
            .to_string(),
    )
    .with_cost(cost);
    match after {
        Some(Fault::ApplyThenHang { .. }) => Outcome::Hang,
        Some(Fault::ApplyThen503 { .. }) => {
            Outcome::Reply(Reply::error(503, "fake instance: injected 503 after applying the batch", None))
        }
        Some(Fault::ApplyThenRespond { status, body, headers, .. }) => {
            Outcome::Reply(injected_reply(status, body, &headers))
        }
        Some(Fault::CutOff { bytes, .. }) => Outcome::CutOff(reply, bytes),
        Some(Fault::Truncated { bytes, .. }) => Outcome::Reply(reply.truncated(bytes)),
        _ => Outcome::Reply(reply),
    }
}

/// A sub-answer's headers as the Batch API returns them when `exclude_response_headers` is false: its `Link`
/// header among them.
fn sub_headers(reply: &Reply) -> Value {
    reply
        .headers
        .iter()
        .filter_map(|(name, value)| Some(json!({"name": name.as_str(), "value": value.to_str().ok()?})))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parameters
