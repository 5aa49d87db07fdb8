//! [`Client`]: one instance's Table API and Batch API over HTTP, its options and its counters.
//!
//! Every answer is read incrementally up to a size limit and then classified (`answer.rs`); only
//! data reaches the caller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderValue};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use url::Url;

use super::answer::{Body, Shape, classify};
use super::auth::{Auth, Credentials};
use super::batch::{self, BATCH, BatchItem, BatchResult};
use super::deadline::Pending;
use super::error::Context;
use super::paging::{Cursor, Keyset, Offset, Page};
use super::retry::{self, RetryPolicy};
use super::{ApiError, Row};
use crate::domain::sn_time;

/// The largest answer read by default. A page of 10,000 `sysevent` rows with midwatch's fields is
/// a few MB; a bigger answer means a page size the instance should not be asked for.
pub const DEFAULT_RESPONSE_LIMIT: u64 = 64 * 1024 * 1024;

/// A quota-cancelled read is asked again with half the page, as long as the half is at least this.
pub const QUOTA_MIN_PAGE: u32 = 100;

/// Counters of what the client sent, for the cycle's summary line and the closing note.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub response_bytes: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
}

impl Stats {
    fn record(&self, status: u16, bytes: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.response_bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn response_bytes(&self) -> u64 {
        self.response_bytes.load(Ordering::Relaxed)
    }

    pub fn by_status(&self) -> BTreeMap<u16, u64> {
        self.by_status.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// How to reach and authenticate to one instance.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub base_url: Url,
    pub auth: Credentials,
    pub timeout: Duration,
    pub page_size: u32,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub proxy: Option<Url>,
    /// PEM file of an extra CA to trust (a TLS-inspecting proxy, an on-premise instance).
    pub extra_ca: Option<std::path::PathBuf>,
}

/// A Table API client for one instance.
#[derive(Clone)]
pub struct Client {
    pub(super) http: reqwest::Client,
    pub(super) opts: Arc<ClientOptions>,
    auth: Arc<Auth>,
    permits: Arc<Semaphore>,
    stats: Arc<Stats>,
    pub(super) pending: Arc<Pending>,
    response_limit: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base_url", &self.opts.base_url.as_str()).finish_non_exhaustive()
    }
}

/// An answer as it came off the wire.
pub(super) struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Body,
}

impl Client {
    pub fn new(opts: ClientOptions) -> anyhow::Result<Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(15)))
            .user_agent(concat!("midwatch/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(proxy) = &opts.proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy.as_str())?);
        }
        if let Some(path) = &opts.extra_ca {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read [instance] ca_file {}: {e}", path.display()))?;
            // Every certificate of the file (a chain or several CAs), as the config check validated it.
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| anyhow::anyhow!("[instance] ca_file {} is not a PEM certificate: {e}", path.display()))?;
            if certs.is_empty() {
                anyhow::bail!("[instance] ca_file {} holds no PEM certificate", path.display());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build()?;
        let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        let auth = Arc::new(Auth::new(&opts.auth, http.clone(), &opts.base_url, opts.timeout));
        Ok(Client {
            http,
            auth,
            opts: Arc::new(opts),
            permits,
            stats: Arc::default(),
            pending: Arc::default(),
            response_limit: DEFAULT_RESPONSE_LIMIT,
        })
    }

    /// The same client with another limit on the size of one answer (default [`DEFAULT_RESPONSE_LIMIT`]).
    pub fn with_response_limit(mut self, bytes: u64) -> Client {
        self.response_limit = bytes.max(1);
        self
    }

    /// How requests sign in (one OAuth token shared by every clone of this client).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The requests in flight now (`waiting for sysevent page 3; …`), empty when idle.
    pub fn pending(&self) -> String {
        self.pending.describe()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn base_url(&self) -> &Url {
        &self.opts.base_url
    }

    pub fn page_size(&self) -> u32 {
        self.opts.page_size
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.opts.base_url.clone();
        url.set_path(path);
        url
    }

    /// Reads every row matching `query` with offset paging. A total order (`ORDERBYsys_id`) is added
    /// so that no row is dropped or repeated between pages of a table that does not change meanwhile.
    pub async fn read_all(&self, table: &str, query: &str, fields: &[&str]) -> Result<Vec<Row>, ApiError> {
        let mut all = Vec::new();
        self.drain(table, fields, Offset::new(query, self.opts.page_size), |rows| all.extend(rows)).await?;
        Ok(all)
    }

    /// Reads every row matching `query` whose `sys_created_on` is at most `upper` (inclusive), by
    /// keyset on `(sys_created_on, sys_id)`: rows inserted or rotated away while the read goes on
    /// cannot shift a page, so none is dropped or repeated.
    pub async fn read_keyset(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        upper: DateTime<Utc>,
    ) -> Result<Vec<Row>, ApiError> {
        let fields: Vec<&str> = fields.iter().copied().chain(["sys_created_on", "sys_id"]).collect();
        let mut all = Vec::new();
        self.fold_keyset(table, query, &fields, upper, |rows| all.extend(rows)).await?;
        Ok(all)
    }

    /// As [`Client::read_keyset`], but hands each page's new rows to `fold` and keeps none, so what the
    /// read holds does not grow with the table. Returns how many rows were folded.
    pub async fn fold_keyset(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        upper: DateTime<Utc>,
        mut fold: impl FnMut(Vec<Row>),
    ) -> Result<u64, ApiError> {
        let fields: Vec<&str> = fields.iter().copied().chain(["sys_created_on", "sys_id"]).collect();
        let cursor = Keyset::new(table, query, &sn_time::format(upper), self.opts.page_size);
        let mut folded = 0u64;
        self.drain(table, &fields, cursor, |rows| {
            folded += rows.len() as u64;
            fold(rows);
        })
        .await?;
        Ok(folded)
    }

    /// Reads at most one row: proves that the table exists and that the account may read it.
    pub async fn read_first(&self, table: &str, query: &str, fields: &[&str]) -> Result<Vec<Row>, ApiError> {
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
                Err(ApiError::QuotaExceeded { .. }) if req.limit / 2 >= QUOTA_MIN_PAGE => {
                    let smaller = req.limit / 2;
                    tracing::warn!(
                        table,
                        page = req.limit,
                        smaller,
                        "the instance's transaction quota cancelled a page; asking for a smaller one"
                    );
                    cursor.set_limit(smaller);
                }
                Err(ApiError::QuotaExceeded { table, message, page_size, .. }) => {
                    return Err(ApiError::QuotaExceeded { table, message, page_size, smallest: req.limit });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One GET, retried per the policy.
    pub(super) async fn get_page(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        offset: u64,
        limit: u32,
    ) -> Result<Page, ApiError> {
        let attempt = || async move {
            let request = self.http.get(self.url(&format!("/api/now/table/{table}"))).query(&[
                ("sysparm_query", query),
                ("sysparm_fields", &fields.join(",")),
                ("sysparm_limit", &limit.to_string()),
                ("sysparm_offset", &offset.to_string()),
                ("sysparm_exclude_reference_link", "true"),
                ("sysparm_display_value", "false"),
            ]);
            tracing::debug!(table, query, offset, limit, "GET");
            let answer = self.exchange(table, request).await?;
            let object = self.data(table, &answer, Shape::Table)?;
            Ok(Page::new(rows(table, object)?, &answer.headers, limit))
        };
        retry::run(&self.opts.retry, table, retry::transient, attempt).await
    }

    /// Creates one record. Only a 429 is retried (nothing was done): any other lost answer may
    /// hide a created record, so the caller must look before trying again
    /// ([`ApiError::outcome_unknown`]). Returns the created record's `fields`.
    pub async fn create(&self, table: &str, body: &Value, fields: &[&str]) -> Result<Row, ApiError> {
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
    pub async fn update(&self, table: &str, sys_id: &str, body: &Value) -> Result<(), ApiError> {
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
    pub async fn batch(&self, items: &[BatchItem]) -> Result<Vec<BatchResult>, ApiError> {
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
    pub fn table_path(table: &str, sys_id: Option<&str>, fields: &str) -> String {
        let mut path = format!("/api/now/table/{table}");
        if let Some(id) = sys_id {
            path.push('/');
            path.push_str(id);
        }
        format!("{path}?sysparm_fields={fields}&sysparm_exclude_reference_link=true")
    }

    /// The answer's JSON object, or the error its class means.
    pub(super) fn data(&self, table: &str, answer: &Answer, shape: Shape) -> Result<Map<String, Value>, ApiError> {
        classify(answer.status, &answer.headers, &answer.body, shape).map_err(|class| {
            ApiError::from_answer(class, &Context { table, page_size: self.opts.page_size, now: Utc::now() })
        })
    }

    /// Sends one request with the account's credentials and `Accept: application/json`, and reads
    /// the body incrementally, never beyond the size limit.
    pub(super) async fn exchange(&self, table: &str, request: reqwest::RequestBuilder) -> Result<Answer, ApiError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::Connect { table: table.into(), reason: "the client is shutting down".into() })?;
        let request = request.header(reqwest::header::ACCEPT, "application/json");
        // `auth.rs`: the credentials; a refused OAuth token is renewed once and the request repeated once.
        self.auth
            .send(
                table,
                |a: &Answer| a.status == 401,
                |authorization| self.send_once(table, request.try_clone(), authorization),
            )
            .await
    }

    /// One request with the given `Authorization` header (`None`: a request whose body cannot be sent twice),
    /// its body read incrementally, never beyond the size limit.
    async fn send_once(
        &self,
        table: &str,
        request: Option<reqwest::RequestBuilder>,
        authorization: HeaderValue,
    ) -> Result<Answer, ApiError> {
        let Some(request) = request else {
            let reason = "midwatch cannot send this request (its body is a stream); report it".into();
            return Err(ApiError::Connect { table: table.into(), reason });
        };
        let mut response =
            request.header(AUTHORIZATION, authorization).send().await.map_err(|e| self.transport_error(table, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let limit = self.response_limit;
        let declared =
            headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let mut received = BytesMut::new();
        let body = if declared.is_some_and(|n| n > limit) {
            Body::TooLarge { limit }
        } else {
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) if received.len() as u64 + chunk.len() as u64 > limit => {
                        break Body::TooLarge { limit };
                    }
                    Ok(Some(chunk)) => received.extend_from_slice(&chunk),
                    Ok(None) => break Body::Complete(Bytes::from(std::mem::take(&mut received))),
                    Err(e) if e.is_timeout() => {
                        self.stats.record(status, received.len() as u64);
                        return Err(ApiError::Timeout { table: table.into(), timeout: self.opts.timeout });
                    }
                    Err(e) => break Body::CutOff { received: received.len() as u64, reason: error_chain(&e) },
                }
            }
        };
        let bytes = match &body {
            Body::Complete(b) => b.len() as u64,
            _ => received.len() as u64,
        };
        self.stats.record(status, bytes);
        Ok(Answer { status, headers, body })
    }

    fn transport_error(&self, table: &str, e: &reqwest::Error) -> ApiError {
        let chain = crate::escape::clean(&error_chain(e));
        if e.is_timeout() {
            ApiError::Timeout { table: table.into(), timeout: self.opts.timeout }
        } else if is_certificate_error(&chain) {
            // Retrying cannot help: the same certificate comes back.
            ApiError::Certificate { table: table.into(), reason: chain }
        } else {
            ApiError::Connect { table: table.into(), reason: chain }
        }
    }
}

/// The rows of a Table API `result` array.
fn rows(table: &str, mut object: Map<String, Value>) -> Result<Vec<Row>, ApiError> {
    let malformed = |reason: String| ApiError::Malformed { table: table.into(), reason };
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

/// The record of a Table API `result` object.
fn record(table: &str, mut object: Map<String, Value>) -> Result<Row, ApiError> {
    match object.remove("result") {
        Some(Value::Object(m)) => Ok(Row(m)),
        _ => Err(ApiError::Malformed { table: table.into(), reason: "\"result\" is not an object".into() }),
    }
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

/// True when a transport error is rustls refusing the peer's certificate (`invalid peer certificate:
/// UnknownIssuer`, an expired or wrong-name certificate), as opposed to a network failure.
fn is_certificate_error(chain: &str) -> bool {
    let chain = chain.to_ascii_lowercase();
    chain.contains("invalid peer certificate") || chain.contains("certificate verify failed")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}
