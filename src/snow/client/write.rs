//! Writes: create and update one record, and many writes in one Batch API call.

use serde_json::{Map, Value};

use super::Client;
use crate::domain::SysId;
use crate::snow::answer::Shape;
use crate::snow::batch::{self, BATCH, BatchItem, BatchResult};
use crate::snow::retry;
use crate::snow::{ApiError, ApiErrorKind, Row};

impl Client {
    /// Creates one record. Only a 429 is retried (nothing was done): any other lost answer may
    /// hide a created record, so the caller must look before trying again
    /// ([`ApiError::outcome_unknown`]). Returns the created record's `fields`.
    pub(crate) async fn create(&self, table: &str, body: &Value, fields: &[&str]) -> Result<Row, ApiError> {
        let _waiting = self.pending.enter(format!("waiting for the answer to a create in {table}"));
        let attempt = || async move {
            let request = self
                .http
                .post(self.url(&format!("/api/now/table/{table}")))
                .query(&[("sysparm_fields", fields.join(",").as_str()), ("sysparm_exclude_reference_link", "true")])
                .json(body);
            let answer = self.exchange(table, request).await?;
            record(table, self.data(table, &answer, Shape::Table)?)
        };
        retry::run(&self.opts.retry, table, retry::rate_limited, attempt).await
    }

    /// Updates the given fields of one record. Retried like a read: the values written are absolute,
    /// so applying the same PATCH twice changes nothing.
    pub(crate) async fn update(&self, table: &str, sys_id: &SysId, body: &Value) -> Result<(), ApiError> {
        let _waiting = self.pending.enter(format!("waiting for the answer to an update in {table}"));
        let url = self.url(&format!("/api/now/table/{table}/{sys_id}"));
        let attempt = || async {
            let request = self
                .http
                .patch(url.clone())
                .query(&[("sysparm_fields", "sys_id"), ("sysparm_exclude_reference_link", "true")])
                .json(body);
            let answer = self.exchange(table, request).await?;
            self.data(table, &answer, Shape::Table).map(|_| ())
        };
        retry::run(&self.opts.retry, table, retry::transient, attempt).await
    }

    /// Sends sub-requests through the Batch API (`POST /api/now/v1/batch`) in one round trip and
    /// returns one result per item. Only a 429 is retried. An `Err` is about the whole call:
    /// [`ApiError::batch_not_offered`] means nothing was run; otherwise
    /// [`ApiError::outcome_unknown`] tells whether any item may have been.
    pub(crate) async fn batch(&self, items: &[BatchItem]) -> Result<Vec<BatchResult>, ApiError> {
        let _waiting =
            self.pending.enter(format!("waiting for the answer to a Batch API call of {} writes", items.len()));
        let envelope = batch::envelope(items);
        let attempt = || async {
            let request = self.http.post(self.url("/api/now/v1/batch")).json(&envelope);
            let answer = self.exchange(BATCH, request).await?;
            self.data(BATCH, &answer, Shape::Batch)
        };
        let object = retry::run(&self.opts.retry, BATCH, retry::rate_limited, attempt).await?;
        Ok(batch::decode(items, &object, self.opts.page_size))
    }

    /// The path of a record relative to the instance root, for batch sub-requests.
    pub(crate) fn table_path(table: &str, sys_id: Option<&SysId>, fields: &str) -> String {
        let mut path = format!("/api/now/table/{table}");
        if let Some(id) = sys_id {
            path.push('/');
            path.push_str(id.as_str());
        }
        format!("{path}?sysparm_fields={fields}&sysparm_exclude_reference_link=true")
    }
}

/// The record of a Table API `result` object.
fn record(table: &str, mut object: Map<String, Value>) -> Result<Row, ApiError> {
    match object.remove("result") {
        Some(Value::Object(m)) => Ok(Row(m)),
        _ => Err(ApiError::new(table, ApiErrorKind::Malformed { reason: "\"result\" is not an object".into() })),
    }
}
