//! The Batch API (`POST /api/now/v1/batch`, docs/servicenow.md §2 item 8): the envelope sent, and
//! what each sub-request's answer says about the write it carried.
//!
//! Each sub-request's answer goes through the same classifier as a direct answer (`answer.rs`): a
//! sub-request is written only when its body is data.

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

use super::answer::{Body, Shape, classify};
use super::error::Context;
use super::{ApiError, ApiErrorKind, Row};

/// The pseudo-table name used in errors of the Batch API.
pub(crate) const BATCH: &str = "the Batch API";

/// One sub-request of a Batch API call.
#[derive(Debug, Clone)]
pub(crate) struct BatchItem {
    pub(crate) id: String,
    pub(crate) method: &'static str,
    /// Relative to the instance root, e.g. `/api/now/table/ecc_agent_issue/<sys_id>?…`.
    pub(crate) url: String,
    pub(crate) body: Value,
}

/// What the answer to one sub-request says about its write.
#[derive(Debug, Clone)]
pub(crate) enum ItemOutcome {
    /// Carried out; the record as the instance answered it.
    Written(Row),
    /// Refused (4xx): not carried out.
    Refused(ApiError),
    /// Anything else (5xx, an unreadable body, not answered at all): it may or may not have been
    /// carried out.
    Unknown(String),
    /// The batch's 30 s quota ran out (docs/servicenow.md §2.8): left unserviced, or cancelled by the
    /// quota. It may or may not have been carried out; smaller batches may get through.
    Cut(String),
}

/// The answer to one sub-request.
#[derive(Debug, Clone)]
pub(crate) struct BatchResult {
    pub(crate) outcome: ItemOutcome,
}

impl ApiError {
    /// True for a clear "the Batch API is not here" (400, 403, 404, 405 on the endpoint): the
    /// instance refused the call before running any of it, so each write can go on its own.
    pub(crate) fn batch_not_offered(&self) -> bool {
        match &self.kind {
            ApiErrorKind::Forbidden { .. } | ApiErrorKind::InvalidTable => true,
            ApiErrorKind::Status { status, .. } => matches!(status, 400 | 404 | 405),
            _ => false,
        }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The request body for `items`.
pub(crate) fn envelope(items: &[BatchItem]) -> Value {
    let headers = json!([
        {"name": "Content-Type", "value": "application/json"},
        {"name": "Accept", "value": "application/json"},
    ]);
    let rest_requests: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "method": i.method,
                "url": i.url,
                "headers": headers,
                "body": b64().encode(i.body.to_string()),
                "exclude_response_headers": true,
            })
        })
        .collect();
    json!({ "batch_request_id": "midwatch", "rest_requests": rest_requests })
}

/// One result per item of `items`, from a valid batch answer (`serviced_requests` present).
pub(crate) fn decode(items: &[BatchItem], answer: &Map<String, Value>, page_size: u32) -> Vec<BatchResult> {
    let serviced: Vec<&Value> =
        answer.get("serviced_requests").and_then(Value::as_array).into_iter().flatten().collect();
    let unserviced: Vec<String> = answer
        .get("unserviced_requests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.as_str().map(str::to_string).or_else(|| v.get("id").and_then(Value::as_str).map(str::to_string))
        })
        .collect();
    items
        .iter()
        .map(|item| {
            let answered = serviced.iter().find(|r| r.get("id").and_then(Value::as_str) == Some(item.id.as_str()));
            match answered {
                Some(r) => sub_result(item, r, page_size),
                None if unserviced.contains(&item.id) => {
                    BatchResult { outcome: ItemOutcome::Cut("left unserviced by the Batch API".into()) }
                }
                None => BatchResult { outcome: ItemOutcome::Unknown("missing from the Batch API's answer".into()) },
            }
        })
        .collect()
}

fn sub_result(item: &BatchItem, r: &Value, page_size: u32) -> BatchResult {
    let status = r
        .get("status_code")
        .and_then(|s| s.as_u64().or_else(|| s.as_str().and_then(|t| t.trim().parse().ok())))
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(0);
    if status == 0 {
        return BatchResult { outcome: ItemOutcome::Unknown("answered without a status".into()) };
    }
    let Some(body) = r.get("body").and_then(Value::as_str).and_then(|b| b64().decode(b.trim()).ok()) else {
        return BatchResult { outcome: ItemOutcome::Unknown(format!("HTTP {status} without a readable body")) };
    };
    let table = table_of(&item.url);
    let cx = Context { table: &table, page_size, now: chrono::Utc::now() };
    let outcome = match classify(status, &HeaderMap::new(), &Body::Complete(Bytes::from(body)), Shape::Table) {
        Ok(object) => match object.get("result") {
            Some(Value::Object(record)) => ItemOutcome::Written(Row(record.clone())),
            _ => ItemOutcome::Unknown(format!("HTTP {status} without a record")),
        },
        Err(class) => {
            let e = ApiError::from_answer(class, &cx);
            if e.was_refused() {
                ItemOutcome::Refused(e)
            } else if matches!(e.kind(), ApiErrorKind::QuotaExceeded { .. }) {
                ItemOutcome::Cut(e.to_string())
            } else {
                ItemOutcome::Unknown(e.to_string())
            }
        }
    };
    BatchResult { outcome }
}

/// The table a sub-request's URL addresses, for messages.
fn table_of(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    path.strip_prefix("/api/now/table/")
        .and_then(|rest| rest.split('/').next())
        .filter(|t| !t.is_empty())
        .map_or_else(|| BATCH.to_string(), crate::escape::clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<BatchItem> {
        (0..n)
            .map(|i| BatchItem {
                id: i.to_string(),
                method: "POST",
                url: "/api/now/table/ecc_agent_issue?sysparm_fields=sys_id,message".into(),
                body: json!({"message": format!("m{i}")}),
            })
            .collect()
    }

    fn answer(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn sub(id: &str, status: Value, body: &str) -> Value {
        json!({"id": id, "status_code": status, "status_text": "", "headers": [], "body": b64().encode(body), "execution_time": 3})
    }

    #[test]
    fn the_envelope_carries_base64_bodies() {
        let env = envelope(&items(1));
        assert_eq!(env["rest_requests"][0]["method"], "POST");
        let body = env["rest_requests"][0]["body"].as_str().and_then(|b| b64().decode(b).ok()).unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&body), r#"{"message":"m0"}"#);
    }

    #[test]
    fn every_item_gets_an_outcome_from_its_own_answer() {
        let quota = r#"{"result":{"sys_id":"x"},"error":{"message":"Transaction cancelled: maximum execution time exceeded","detail":null},"status":"failure"}"#;
        let a = answer(json!({
            "batch_request_id": "midwatch",
            "serviced_requests": [
                sub("0", json!(201), r#"{"result":{"sys_id":"s0","message":"m0"}}"#),
                sub("1", json!("400"), r#"{"error":{"message":"Invalid field","detail":null},"status":"failure"}"#),
                sub("2", json!(503), "<html><title>Service Unavailable</title></html>"),
                sub("3", json!(201), quota),
                sub("4", json!(201), "<html>"),
            ],
            "unserviced_requests": ["5"],
        }));
        let results = decode(&items(7), &a, 1000);
        let kinds: Vec<String> = results
            .iter()
            .map(|r| match &r.outcome {
                ItemOutcome::Written(row) => format!("written {}", row.text("sys_id")),
                ItemOutcome::Refused(e) => format!("refused {e}"),
                ItemOutcome::Unknown(why) => format!("unknown {why}"),
                ItemOutcome::Cut(why) => format!("cut {why}"),
            })
            .collect();
        assert_eq!(kinds[0], "written s0");
        assert_eq!(kinds[1], "refused HTTP 400 from the instance for ecc_agent_issue: Invalid field");
        assert!(kinds[2].starts_with("unknown HTTP 503"), "{}", kinds[2]);
        assert!(kinds[3].starts_with("cut the instance cancelled the request for ecc_agent_issue"), "{}", kinds[3]);
        assert!(
            kinds[4].starts_with("unknown the instance answered ecc_agent_issue with an HTML page"),
            "{}",
            kinds[4]
        );
        assert_eq!(kinds[5], "cut left unserviced by the Batch API");
        assert_eq!(kinds[6], "unknown missing from the Batch API's answer");
    }

    #[test]
    fn only_a_clear_refusal_of_the_endpoint_means_not_offered() {
        let status = |s| ApiError::new(BATCH, ApiErrorKind::Status { status: s, message: String::new() });
        assert!(status(400).batch_not_offered() && status(404).batch_not_offered());
        assert!(!status(503).batch_not_offered() && !status(500).batch_not_offered());
        assert!(!ApiError::new(BATCH, ApiErrorKind::NotJson { status: 200, title: None }).batch_not_offered());
        assert!(
            !ApiError::new(BATCH, ApiErrorKind::Unauthorized { who: String::new(), secrets: String::new() })
                .batch_not_offered()
        );
    }
}
