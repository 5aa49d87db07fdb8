//! Paged reads: every row of a query (offset paging with a total order, or keyset under a fixed upper bound),
//! one page, and reads in the query's own order that stop as soon as the caller has what it wants.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::Client;
use crate::snow::answer::Shape;
use crate::snow::paging::{Cursor, Keyset, Offset, Page};
use crate::snow::retry;
use crate::snow::{ApiError, ApiErrorKind, Query, Row};

/// A quota-cancelled read is asked again with half the page, as long as the half is at least this.
pub(crate) const QUOTA_MIN_PAGE: u32 = 100;

impl Client {
    /// Reads every row matching `query` with offset paging. A total order (`ORDERBYsys_id`) is added
    /// so that no row is dropped or repeated between pages of a table that does not change meanwhile.
    pub async fn read_all(&self, table: &str, query: &Query, fields: &[&str]) -> Result<Vec<Row>, ApiError> {
        let mut all = Vec::new();
        self.drain(table, fields, Offset::new(query, self.opts.page_size), |rows| all.extend(rows)).await?;
        Ok(all)
    }

    /// Reads every row matching `query` whose `sys_created_on` is at most `upper` (inclusive), by
    /// keyset on `(sys_created_on, sys_id)`: rows inserted or rotated away while the read goes on
    /// cannot shift a page, so none is dropped or repeated. Hands each page's new rows to `fold` and
    /// keeps none, so what the read holds does not grow with the table. Returns how many rows were folded.
    pub async fn fold_keyset(
        &self,
        table: &str,
        query: &Query,
        fields: &[&str],
        upper: DateTime<Utc>,
        mut fold: impl FnMut(Vec<Row>),
    ) -> Result<u64, ApiError> {
        let fields: Vec<&str> = fields.iter().copied().chain(["sys_created_on", "sys_id"]).collect();
        let cursor = Keyset::new(table, query, upper, self.opts.page_size);
        let mut folded = 0u64;
        self.drain(table, &fields, cursor, |rows| {
            folded += rows.len() as u64;
            fold(rows);
        })
        .await?;
        Ok(folded)
    }

    /// Reads at most one row: proves that the table exists and that the account may read it.
    pub async fn read_first(&self, table: &str, query: &Query, fields: &[&str]) -> Result<Vec<Row>, ApiError> {
        Ok(self.read_page(table, query, fields, 1).await?.0)
    }

    /// Runs a cursor to its end, handing the rows of each page to `sink`. A page the REST quota
    /// cancelled is asked again with half the rows, down to [`QUOTA_MIN_PAGE`]; the rows of a
    /// cancelled page are never used.
    async fn drain(
        &self,
        table: &str,
        fields: &[&str],
        mut cursor: impl Cursor,
        mut sink: impl FnMut(Vec<Row>),
    ) -> Result<(), ApiError> {
        let mut page = 0u32;
        while let Some(req) = cursor.next() {
            page += 1;
            let _waiting = self.pending.enter(format!("waiting for {table} page {page}"));
            match self.get_page(table, &req.query, fields, req.offset, req.limit).await {
                Ok(page) => {
                    cursor.take(page)?;
                    let rows = cursor.take_rows();
                    if !rows.is_empty() {
                        sink(rows);
                    }
                }
                Err(e) if matches!(e.kind, ApiErrorKind::QuotaExceeded { .. }) && req.limit / 2 >= QUOTA_MIN_PAGE => {
                    let smaller = req.limit / 2;
                    tracing::warn!(
                        table,
                        page = req.limit,
                        smaller,
                        "the instance's transaction quota cancelled a page; asking for a smaller one"
                    );
                    cursor.set_limit(smaller);
                }
                Err(mut e) => {
                    if let ApiErrorKind::QuotaExceeded { smallest, .. } = &mut e.kind {
                        *smallest = req.limit;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// One GET, retried per the policy.
    pub(in crate::snow) async fn get_page(
        &self,
        table: &str,
        query: &Query,
        fields: &[&str],
        offset: u64,
        limit: u32,
    ) -> Result<Page, ApiError> {
        let attempt = || async move {
            let request = self.http.get(self.url(&format!("/api/now/table/{table}"))).query(&[
                ("sysparm_query", query.as_str()),
                ("sysparm_fields", &fields.join(",")),
                ("sysparm_limit", &limit.to_string()),
                ("sysparm_offset", &offset.to_string()),
                ("sysparm_exclude_reference_link", "true"),
                ("sysparm_display_value", "false"),
            ]);
            tracing::debug!(table, query = query.as_str(), offset, limit, "GET");
            let answer = self.exchange(table, request).await?;
            let object = self.data(table, &answer, Shape::Table)?;
            Ok(Page::new(rows(table, object)?, &answer.headers, limit))
        };
        retry::run(&self.opts.retry, table, retry::transient, attempt).await
    }
    /// One page of `query` (which carries its own order): the rows, and whether more follow.
    pub(crate) async fn read_page(
        &self,
        table: &str,
        query: &Query,
        fields: &[&str],
        limit: u32,
    ) -> Result<(Vec<Row>, bool), ApiError> {
        let _waiting = self.pending.enter(format!("waiting for {table}"));
        let page = self.get_page(table, query, fields, 0, limit).await?;
        Ok((page.rows, page.more))
    }

    /// Pages through `query` in its own order (offset paging, `limit` rows a page asked for, each page from
    /// where the last answer says: [`Page::next_offset`]), handing each row to `take` until it answers true
    /// (done) or the rows run out. Pages that the account's ACLs emptied are stepped over. Meant for a
    /// descending order under a fixed upper bound, where rows that arrive meanwhile can only repeat a row,
    /// never hide one.
    pub(crate) async fn read_until(
        &self,
        table: &str,
        query: &Query,
        fields: &[&str],
        limit: u32,
        mut take: impl FnMut(&Row) -> bool,
    ) -> Result<(), ApiError> {
        let mut offset = 0u64;
        loop {
            let _waiting = self.pending.enter(format!("waiting for {table} (rows from {offset})"));
            let page = self.get_page(table, query, fields, offset, limit).await?;
            if page.rows.iter().any(&mut take) || !page.more {
                return Ok(());
            }
            offset = page.next_offset(offset, limit);
        }
    }
}

/// The rows of a Table API `result` array.
fn rows(table: &str, mut object: Map<String, Value>) -> Result<Vec<Row>, ApiError> {
    let malformed = |reason: String| ApiError::new(table, ApiErrorKind::Malformed { reason });
    let Some(Value::Array(result)) = object.remove("result") else {
        return Err(malformed("\"result\" is not an array".into()));
    };
    result
        .into_iter()
        .map(|r| match r {
            Value::Object(m) => Ok(Row(m)),
            other => Err(malformed(format!("a result element is {}, not an object", kind(&other)))),
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
