//! Many small reads in one round trip: GET sub-requests through the Batch API
//! (docs/servicenow.md §2 item 8). The instance still serves each sub-request, so this saves round
//! trips, not work.

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use std::future::Future;

use futures::future::try_join_all;

use super::answer::Shape;
use super::paging::Page;
use super::retry;
use super::{ApiError, ApiErrorKind, BATCH, Client, Query, Row};

/// One GET of a Batch API call: the first `limit` rows of `query` (which carries its own order).
#[derive(Debug, Clone)]
pub(crate) struct PageRequest {
    pub(crate) table: String,
    pub(crate) query: Query,
    pub(crate) fields: Vec<String>,
    pub(crate) limit: u32,
}

impl PageRequest {
    /// The sub-request's URL, relative to the instance root.
    fn url(&self) -> String {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        params
            .append_pair("sysparm_query", self.query.as_str())
            .append_pair("sysparm_fields", &self.fields.join(","))
            .append_pair("sysparm_limit", &self.limit.to_string())
            .append_pair("sysparm_exclude_reference_link", "true")
            .append_pair("sysparm_display_value", "false")
            .append_pair("sysparm_no_count", "true");
        format!("/api/now/table/{}?{}", self.table, params.finish())
    }
}

impl Client {
    /// Asks about `items` through the Batch API, `per_call` items a call, the calls sent together: per item
    /// what `call` made of its sub-request, or `None` — for the caller to ask directly — where the sub-request
    /// failed, where its whole call failed, and for every item when `per_call` is `None` (see
    /// [`Client::batch_share`]). Only refused credentials or a 429 of a call end it all.
    pub(crate) async fn in_batches<'i, I, T, F, Fut>(
        &self,
        items: &'i [I],
        per_call: Option<usize>,
        call: F,
    ) -> Result<Vec<Option<T>>, ApiError>
    where
        T: Clone,
        F: Fn(&'i [I]) -> Fut,
        Fut: Future<Output = Result<Vec<Option<T>>, ApiError>>,
    {
        let Some(per_call) = per_call else { return Ok(vec![None; items.len()]) };
        let calls = items.chunks(per_call.max(1)).map(|group| {
            let answers = call(group);
            async move {
                match answers.await {
                    Ok(answers) => Ok(answers),
                    Err(e) if e.refuses_credentials() || matches!(e.kind(), ApiErrorKind::RateLimited { .. }) => Err(e),
                    Err(e) => {
                        tracing::info!(error = %e, "a Batch API call failed; asking its sub-requests directly");
                        Ok(vec![None; group.len()])
                    }
                }
            }
        });
        Ok(try_join_all(calls).await?.into_iter().flatten().collect())
    }

    /// Sends `requests` as GET sub-requests of one Batch API call. Each answer is `Some(rows)` when its
    /// sub-request answered 200 with a complete `result` (no `error`), `None` when it failed or was
    /// left unserviced: the caller reads that one directly. Retried like a read (GETs change nothing).
    pub(crate) async fn batch_get(&self, requests: &[PageRequest]) -> Result<Vec<Option<Vec<Row>>>, ApiError> {
        Ok(self.batch_get_pages(requests).await?.into_iter().map(|p| p.map(|p| p.rows)).collect())
    }

    /// [`Client::batch_get`] with, for each page, whether more rows follow: by the sub-answer's `Link` header,
    /// or (where the instance sent none) a full page, as for a direct read.
    pub(crate) async fn batch_get_pages(&self, requests: &[PageRequest]) -> Result<Vec<Option<Page>>, ApiError> {
        let urls: Vec<String> = requests.iter().map(PageRequest::url).collect();
        let bodies = self.batch_get_bodies(&urls, &format!("{} reads", requests.len())).await?;
        Ok(bodies
            .into_iter()
            .zip(requests)
            .map(|(b, r)| {
                let (body, headers) = b?;
                Some(Page::new(rows_of(&body)?, &headers, r.limit))
            })
            .collect())
    }

    /// GETs of any REST API of the instance (`urls` relative to its root) in one Batch API call: per URL the
    /// JSON object its sub-request answered with 200 and without an `error`, and its headers; else `None`.
    pub(crate) async fn batch_get_bodies(
        &self,
        urls: &[String],
        what: &str,
    ) -> Result<Vec<Option<(Value, HeaderMap)>>, ApiError> {
        let rest_requests: Vec<Value> = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                json!({
                    "id": i.to_string(),
                    "method": "GET",
                    "url": url,
                    "headers": [{"name": "Accept", "value": "application/json"}],
                    // The Link header says whether a page is all there is.
                    "exclude_response_headers": false,
                })
            })
            .collect();
        let envelope = json!({ "batch_request_id": "midwatch-read", "rest_requests": rest_requests });
        let mut url = self.opts.base_url.clone();
        url.set_path("/api/now/v1/batch");
        let _waiting = self.pending.enter(format!("waiting for a Batch API call of {what}"));
        let attempt = || async {
            let answer = self.exchange(BATCH, self.http.post(url.clone()).json(&envelope)).await?;
            self.data(BATCH, &answer, Shape::Batch)
        };
        let answer = Value::Object(retry::run(&self.opts.retry, BATCH, retry::transient, attempt).await?);
        let mut out: Vec<Option<(Value, HeaderMap)>> = vec![None; urls.len()];
        for served in answer.get("serviced_requests").and_then(Value::as_array).into_iter().flatten() {
            let id = served.get("id").map(|v| super::value_text(Some(v))).and_then(|i| i.parse::<usize>().ok());
            let status = served.get("status_code").map(|v| super::value_text(Some(v)));
            if let (Some(slot), Some("200")) = (id.and_then(|i| out.get_mut(i)), status.as_deref()) {
                *slot = served.get("body").and_then(Value::as_str).and_then(body_of).map(|b| (b, headers_of(served)));
            }
        }
        Ok(out)
    }
}

/// A base64 sub-request body that is a JSON object without an `error` (a quota-cut answer carries one).
fn body_of(body: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    (value.is_object() && value.get("error").is_none()).then_some(value)
}

/// A sub-answer's `headers` (`[{"name", "value"}]`); any that is not a valid header is left out.
fn headers_of(served: &Value) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for h in served.get("headers").and_then(Value::as_array).into_iter().flatten() {
        let name = h.get("name").and_then(Value::as_str).and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok());
        let value = h.get("value").and_then(Value::as_str).and_then(|v| HeaderValue::from_str(v).ok());
        if let (Some(n), Some(v)) = (name, value) {
            headers.append(n, v);
        }
    }
    headers
}

/// The rows of a complete `{"result":[…]}`.
fn rows_of(value: &Value) -> Option<Vec<Row>> {
    value.get("result")?.as_array()?.iter().map(|r| r.as_object().map(|m| Row(m.clone()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sn_time;
    use crate::snow::query::{Field, QueryValue, SYS_CREATED_ON};

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn only_complete_results_count() {
        let rows = |body: &str| body_of(body).as_ref().and_then(rows_of);
        assert_eq!(rows(&b64(r#"{"result":[{"a":"1"}]}"#)).map(|r| r.len()), Some(1));
        assert_eq!(rows(&b64(r#"{"result":[]}"#)).map(|r| r.len()), Some(0));
        assert!(rows(&b64(r#"{"result":[{"a":"1"}],"error":{"message":"Transaction cancelled"}}"#)).is_none());
        assert!(rows(&b64(r#"{"result":{"a":"1"}}"#)).is_none());
        assert!(rows(&b64(r#"{"result":["x"]}"#)).is_none());
        assert!(rows("not base64!").is_none());
    }

    #[test]
    fn urls_are_encoded() {
        let r = PageRequest {
            table: "sysevent".into(),
            query: Query::new()
                .eq(Field::new("parm1"), &QueryValue::fixed("o'brien"))
                .at(SYS_CREATED_ON, sn_time::parse("2026-11-22 10:00:00").unwrap_or_default())
                .order_by_desc(SYS_CREATED_ON),
            fields: vec!["name".into(), "parm1".into()],
            limit: 1,
        };
        assert_eq!(
            r.url(),
            "/api/now/table/sysevent?sysparm_query=parm1%3Do%27brien%5Esys_created_on%3D2026-11-22+10%3A00%3A00\
             %5EORDERBYDESCsys_created_on&sysparm_fields=name%2Cparm1\
             &sysparm_limit=1&sysparm_exclude_reference_link=true&sysparm_display_value=false&sysparm_no_count=true"
        );
    }
}
