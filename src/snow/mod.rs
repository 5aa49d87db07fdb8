//! The ServiceNow REST Table API client: the only code that knows HTTP, paging, retries and JSON.
//!
//! Reads are retried (429 honouring `Retry-After` up to a cap, 502/503/504 and connection errors with
//! exponential backoff, within a finite budget; never 400/401/403). Every paged read has a total
//! order; `sysevent`, which grows while it is read, is paged by keyset on `(sys_created_on, sys_id)`
//! under the window's fixed upper bound ([`Client::read_keyset`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, LINK, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Semaphore;
use url::Url;

pub mod aggregate;
mod batch_get;
mod fold;
pub mod query;
pub mod row;

pub use aggregate::Group;
pub use batch_get::PageRequest;
pub use row::{Row, value_text};

use crate::domain::sn_time;

/// Why a Table API call failed, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the instance refused the credentials (HTTP 401 on {table}): check [instance] user and password; a Basic-auth \
         account may also need web_service_access_only or the snc_basic_auth_api_access role"
    )]
    Unauthorized { table: String },
    #[error(
        "the account may not read table {table} (HTTP 403: {message}): grant it a role whose ACLs allow reading {table}"
    )]
    Forbidden { table: String, message: String },
    #[error(
        "table {table} does not exist on the instance (HTTP 400 Invalid table): check the instance URL, or install the \
         plugin that provides it"
    )]
    InvalidTable { table: String },
    #[error(
        "the instance answered {table} with an HTML page instead of JSON (HTTP {status}): a developer instance may be \
         hibernating (wake it up), or an SSO/login page was served (check [instance] url and that the account can use \
         Basic auth)"
    )]
    NotJson { table: String, status: u16 },
    #[error("the instance's answer for {table} is not valid Table API JSON ({reason}); if it persists, report it")]
    Malformed { table: String, reason: String },
    #[error(
        "rate limited by the instance on {table} until {until} (HTTP 429: {detail}); run the check later, or raise the \
         rate-limit rule (sys_rate_limit_rules) for this account"
    )]
    RateLimited { table: String, until: String, detail: String },
    #[error(
        "the instance cancelled the request for {table} at its 60 s transaction quota ({message}); lower [instance] \
         page_size (now {page_size})"
    )]
    QuotaExceeded { table: String, message: String, page_size: u32 },
    #[error("HTTP {status} from the instance for {table}: {message}")]
    Status { table: String, status: u16, message: String },
    #[error(
        "no answer from the instance for {table} within {timeout:?}; check the network, or raise [instance] timeout"
    )]
    Timeout { table: String, timeout: Duration },
    #[error(
        "could not reach the instance for {table}: {reason}; check [instance] url, DNS, the proxy and the firewall"
    )]
    Connect { table: String, reason: String },
}

impl ApiError {
    /// True for the errors a read retries: rate limiting, gateway errors and lost connections.
    fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Connect { .. })
            || matches!(self, Self::Status { status, .. } if matches!(status, 502..=504))
    }
}

/// An error with the server's `Retry-After`, kept while the retry loop decides.
#[derive(Debug)]
struct Attempt {
    error: ApiError,
    retry_after: Option<Duration>,
}

impl From<ApiError> for Attempt {
    fn from(error: ApiError) -> Self {
        Attempt { error, retry_after: None }
    }
}

/// The pseudo-table name used in errors of the Batch API.
pub const BATCH: &str = "the Batch API";

/// One sub-request of a Batch API call.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub id: String,
    pub method: &'static str,
    /// Relative to the instance root, e.g. `/api/now/table/ecc_agent_issue/<sys_id>?…`.
    pub url: String,
    pub body: Value,
}

/// The answer to one sub-request.
#[derive(Debug, Clone)]
pub struct BatchResult {
    pub id: String,
    pub status: u16,
    pub record: Option<Row>,
    pub message: String,
}

/// How reads are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// The first backoff delay (doubled each time, with jitter).
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a longer one fails the read at once with the time to wait.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Counters of what the client sent, for the cycle's summary line and the closing note.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub response_bytes: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
}

impl Stats {
    fn record(&self, status: u16, bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.response_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
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
    pub user: String,
    pub password: SecretString,
    pub timeout: Duration,
    pub page_size: u32,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub proxy: Option<Url>,
    /// PEM file of an extra CA to trust (a TLS-inspecting proxy, an on-premise instance).
    pub extra_ca: Option<std::path::PathBuf>,
}

/// One page of a read.
#[derive(Debug)]
struct Page {
    rows: Vec<Row>,
    /// The instance says more rows follow (`Link: …;rel="next"`, or a full page when no Link is sent).
    more: bool,
}

/// A Table API client for one instance.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    opts: Arc<ClientOptions>,
    permits: Arc<Semaphore>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base_url", &self.opts.base_url.as_str()).finish_non_exhaustive()
    }
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
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("[instance] ca_file {} is not a PEM certificate: {e}", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build()?;
        let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        Ok(Client { http, opts: Arc::new(opts), permits, stats: Arc::default() })
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

    fn table_url(&self, table: &str) -> Url {
        let mut url = self.opts.base_url.clone();
        url.set_path(&format!("/api/now/table/{table}"));
        url
    }

    /// Reads every row matching `query` with offset paging. A total order (`ORDERBYsys_id`) is added
    /// so that no row is dropped or repeated between pages of a table that does not change meanwhile.
    pub async fn read_all(&self, table: &str, query: &str, fields: &[&str]) -> Result<Vec<Row>, ApiError> {
        let ordered = join_query(&[query, "ORDERBYsys_id"]);
        let mut rows = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self.get_page(table, &ordered, fields, offset, self.opts.page_size).await?;
            rows.extend(page.rows);
            if !page.more {
                return Ok(rows);
            }
            offset += u64::from(self.opts.page_size);
        }
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
        /// Where the next page starts.
        enum From {
            Start,
            /// `sys_created_on >= ts`: rows of that second already emitted are filtered out again.
            AtOrAfter(String),
            /// `sys_created_on > ts`: the second `ts` has been read completely.
            After(String),
            /// `sys_created_on = ts ^ sys_id > id`: a whole page shared the second `ts`.
            Tie(String, String),
        }
        let upper = format!("sys_created_on<={}", sn_time::format(upper));
        let fields: Vec<&str> = fields.iter().copied().chain(["sys_created_on", "sys_id"]).collect();
        let mut rows: Vec<Row> = Vec::new();
        let mut last: Option<(String, String)> = None;
        let mut from = From::Start;
        // Steps over pages that the account's ACLs emptied (the limit applies before ACLs).
        let mut offset = 0u64;
        let mut idle_pages = 0u32;
        loop {
            let q = match &from {
                From::Start => join_query(&[query, &upper, "ORDERBYsys_created_on^ORDERBYsys_id"]),
                From::AtOrAfter(ts) => join_query(&[
                    query,
                    &upper,
                    &format!("sys_created_on>={ts}"),
                    "ORDERBYsys_created_on^ORDERBYsys_id",
                ]),
                From::After(ts) => {
                    join_query(&[query, &upper, &format!("sys_created_on>{ts}"), "ORDERBYsys_created_on^ORDERBYsys_id"])
                }
                From::Tie(ts, id) => join_query(&[query, &format!("sys_created_on={ts}^sys_id>{id}"), "ORDERBYsys_id"]),
            };
            let page = self.get_page(table, &q, &fields, offset, self.opts.page_size).await?;
            let returned = page.rows.len();
            let before = rows.len();
            for r in page.rows {
                let key = (r.text("sys_created_on"), r.text("sys_id"));
                if last.as_ref().is_none_or(|l| key > *l) {
                    last = Some(key);
                    rows.push(r);
                }
            }
            let progressed = rows.len() > before;
            if progressed {
                offset = 0;
                idle_pages = 0;
            } else {
                idle_pages += 1;
                if idle_pages > 10_000 {
                    return Err(ApiError::Malformed {
                        table: table.into(),
                        reason: "paging made no progress over 10000 pages".into(),
                    });
                }
            }
            let Some((ts, id)) = last.clone() else {
                if !page.more {
                    return Ok(rows);
                }
                offset += u64::from(self.opts.page_size);
                continue;
            };
            from = match (from, page.more) {
                // The tie second is exhausted: go on strictly after it.
                (From::Tie(..), false) => From::After(ts),
                (_, false) => return Ok(rows),
                (From::Tie(..), true) if progressed => From::Tie(ts, id),
                (_, true) if progressed => From::AtOrAfter(ts),
                // A full page of rows already emitted: they all share the cursor's second.
                (From::AtOrAfter(_) | From::After(_) | From::Start, true) if returned > 0 => From::Tie(ts, id),
                (from, true) => {
                    offset += u64::from(self.opts.page_size);
                    from
                }
            };
        }
    }

    /// Reads at most one row: proves that the table exists and that the account may read it.
    pub async fn read_first(&self, table: &str, query: &str, fields: &[&str]) -> Result<Vec<Row>, ApiError> {
        Ok(self.get_page(table, query, fields, 0, 1).await?.rows)
    }

    /// One GET, retried per the policy.
    async fn get_page(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        offset: u64,
        limit: u32,
    ) -> Result<Page, ApiError> {
        self.with_retry(table, || self.get_page_once(table, query, fields, offset, limit)).await
    }

    /// Retries `attempt` per the policy: 429 honouring `Retry-After` up to the cap, 502/503/504 and
    /// lost connections with exponential backoff; anything else fails at once.
    async fn with_retry<T, F, Fut>(&self, table: &str, attempt: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let policy = &self.opts.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.base_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_retries)
            .with_jitter();
        let max_retry_after = policy.max_retry_after;
        attempt
            .retry(backoff)
            .when(|a: &Attempt| match &a.error {
                ApiError::RateLimited { .. } => a.retry_after.is_none_or(|d| d <= max_retry_after),
                e => e.is_transient(),
            })
            .adjust(|a: &Attempt, planned| match (&a.error, a.retry_after) {
                (ApiError::RateLimited { .. }, Some(wait)) => Some(wait),
                _ => planned,
            })
            .notify(|a: &Attempt, wait| {
                tracing::warn!(table, error = %a.error, retry_in = ?wait, "Table API request failed; retrying");
            })
            .await
            .map_err(|a| a.error)
    }

    async fn get_page_once(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        offset: u64,
        limit: u32,
    ) -> Result<Page, Attempt> {
        let request = self.http.get(self.table_url(table)).query(&[
            ("sysparm_query", query),
            ("sysparm_fields", &fields.join(",")),
            ("sysparm_limit", &limit.to_string()),
            ("sysparm_offset", &offset.to_string()),
            ("sysparm_exclude_reference_link", "true"),
            ("sysparm_display_value", "false"),
        ]);
        tracing::debug!(table, query, offset, "GET");
        let (headers, body) = self.exchange(table, request).await?;
        let rows = decode_rows(table, &headers, &body).map_err(Attempt::from)?;
        let more = match next_link(&headers) {
            Some(next) => next,
            None => rows.len() as u64 >= u64::from(limit),
        };
        Ok(Page { rows, more })
    }

    /// Sends one request with the account's credentials and `Accept: application/json`; a non-2xx
    /// answer becomes the matching [`ApiError`], with the server's `Retry-After`.
    async fn exchange(
        &self,
        table: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(HeaderMap, bytes::Bytes), Attempt> {
        let _permit = self.permits.acquire().await.map_err(|_| {
            Attempt::from(ApiError::Connect { table: table.into(), reason: "the client is shutting down".into() })
        })?;
        let request = request
            .basic_auth(&self.opts.user, Some(self.opts.password.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json");
        let response = request.send().await.map_err(|e| Attempt::from(self.transport_error(table, &e)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| Attempt::from(self.transport_error(table, &e)))?;
        self.stats.record(status, body.len());
        if (200..300).contains(&status) {
            return Ok((headers, body));
        }
        let error = self.status_error(table, status, &headers, &body);
        Err(Attempt { error, retry_after: retry_after(&headers) })
    }

    /// Creates one record (never retried: a lost answer may hide a created record, so the caller
    /// must look before trying again). Returns the created record's `fields`.
    pub async fn create(&self, table: &str, body: &Value, fields: &[&str]) -> Result<Row, ApiError> {
        let request = self
            .http
            .post(self.table_url(table))
            .query(&[("sysparm_fields", fields.join(",").as_str()), ("sysparm_exclude_reference_link", "true")])
            .json(body);
        let (headers, bytes) = self.exchange(table, request).await.map_err(|a| a.error)?;
        decode_record(table, &headers, &bytes)
    }

    /// Updates the given fields of one record. Retried like a read: the values written are absolute,
    /// so applying the same PATCH twice changes nothing.
    pub async fn update(&self, table: &str, sys_id: &str, body: &Value) -> Result<(), ApiError> {
        let url = self.record_url(table, sys_id);
        let attempt = || {
            let request = self
                .http
                .patch(url.clone())
                .query(&[("sysparm_fields", "sys_id"), ("sysparm_exclude_reference_link", "true")])
                .json(body);
            self.exchange(table, request)
        };
        self.with_retry(table, attempt).await.map(|_| ())
    }

    /// Sends sub-requests through the Batch API (`POST /api/now/v1/batch`) in one round trip.
    /// Each sub-request is `(id, method, path relative to the instance root, JSON body)`.
    pub async fn batch(&self, items: &[BatchItem]) -> Result<Vec<BatchResult>, ApiError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let headers = serde_json::json!([
            {"name": "Content-Type", "value": "application/json"},
            {"name": "Accept", "value": "application/json"},
        ]);
        let rest_requests: Vec<Value> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id,
                    "method": i.method,
                    "url": i.url,
                    "headers": headers,
                    "body": b64.encode(i.body.to_string()),
                    "exclude_response_headers": true,
                })
            })
            .collect();
        let envelope = serde_json::json!({ "batch_request_id": "midwatch", "rest_requests": rest_requests });
        let mut url = self.opts.base_url.clone();
        url.set_path("/api/now/v1/batch");
        let request = self.http.post(url).json(&envelope);
        let (headers, bytes) = self.exchange(BATCH, request).await.map_err(|a| a.error)?;
        if is_html(&headers, &bytes) {
            return Err(ApiError::NotJson { table: BATCH.into(), status: 200 });
        }
        let malformed = |reason: String| ApiError::Malformed { table: BATCH.into(), reason };
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        let serviced = value.get("serviced_requests").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(serviced
            .iter()
            .map(|r| {
                let body = r
                    .get("body")
                    .and_then(Value::as_str)
                    .and_then(|b| b64.decode(b).ok())
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .unwrap_or(Value::Null);
                let record = body.get("result").and_then(Value::as_object).cloned().map(Row);
                let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or_default().to_string();
                BatchResult {
                    id: r.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                    status: r
                        .get("status_code")
                        .and_then(|s| s.as_u64().or_else(|| s.as_str().and_then(|t| t.parse().ok())))
                        .and_then(|s| u16::try_from(s).ok())
                        .unwrap_or(0),
                    record,
                    message,
                }
            })
            .collect())
    }

    fn record_url(&self, table: &str, sys_id: &str) -> Url {
        let mut url = self.opts.base_url.clone();
        url.set_path(&format!("/api/now/table/{table}/{sys_id}"));
        url
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

    fn transport_error(&self, table: &str, e: &reqwest::Error) -> ApiError {
        if e.is_timeout() {
            ApiError::Timeout { table: table.into(), timeout: self.opts.timeout }
        } else {
            ApiError::Connect { table: table.into(), reason: error_chain(e) }
        }
    }

    fn status_error(&self, table: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> ApiError {
        let (message, detail) = error_body(body);
        let table = table.to_string();
        if is_html(headers, body) {
            return ApiError::NotJson { table, status };
        }
        let text = format!("{message} {detail}").to_ascii_lowercase();
        if text.contains("maximum execution time exceeded") || text.contains("transaction cancelled") {
            return ApiError::QuotaExceeded { table, message, page_size: self.opts.page_size };
        }
        match status {
            401 => ApiError::Unauthorized { table },
            403 => ApiError::Forbidden { table, message },
            400 if message.starts_with("Invalid table") => ApiError::InvalidTable { table },
            429 => {
                let wait = retry_after(headers);
                let until = wait
                    .and_then(|w| chrono::Duration::from_std(w).ok())
                    .map(|w| format!("{} UTC", sn_time::format(Utc::now() + w)))
                    .unwrap_or_else(|| "an unknown time".into());
                ApiError::RateLimited { table, until, detail: if detail.is_empty() { message } else { detail } }
            }
            _ => {
                let message = match (message.is_empty(), detail.is_empty()) {
                    (true, _) => String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string(),
                    (false, true) => message,
                    (false, false) => format!("{message}: {detail}"),
                };
                ApiError::Status { table, status, message }
            }
        }
    }
}

/// Joins query parts with `^`, skipping empty ones.
pub fn join_query(parts: &[&str]) -> String {
    parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("^")
}

fn is_html(headers: &HeaderMap, body: &[u8]) -> bool {
    let ct = headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let start = String::from_utf8_lossy(&body[..body.len().min(64)]).trim_start().to_ascii_lowercase();
    ct.contains("html") || start.starts_with("<!doctype") || start.starts_with("<html")
}

fn decode_record(table: &str, headers: &HeaderMap, body: &[u8]) -> Result<Row, ApiError> {
    if is_html(headers, body) {
        return Err(ApiError::NotJson { table: table.into(), status: 201 });
    }
    let malformed = |reason: String| ApiError::Malformed { table: table.into(), reason };
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    match value.get("result") {
        Some(Value::Object(m)) => Ok(Row(m.clone())),
        _ => Err(malformed("no \"result\" object".into())),
    }
}

fn decode_rows(table: &str, headers: &HeaderMap, body: &[u8]) -> Result<Vec<Row>, ApiError> {
    if is_html(headers, body) {
        return Err(ApiError::NotJson { table: table.into(), status: 200 });
    }
    let malformed = |reason: String| ApiError::Malformed { table: table.into(), reason };
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let Some(Value::Array(result)) = value.get("result") else {
        return Err(malformed("no \"result\" array".into()));
    };
    result
        .iter()
        .map(|r| match r {
            Value::Object(m) => Ok(Row(m.clone())),
            other => Err(malformed(format!("a result element is {other}, not an object"))),
        })
        .collect()
}

/// `{"error":{"message","detail"}}`, with `detail` possibly null.
fn error_body(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |f: &str| v.pointer(&format!("/error/{f}")).and_then(Value::as_str).unwrap_or_default().to_string();
    (field("message"), field("detail"))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

/// `Some(true)` when the `Link` header has `rel="next"`, `Some(false)` when it has none, `None` without a header.
fn next_link(headers: &HeaderMap) -> Option<bool> {
    let links: Vec<&str> = headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok()).collect();
    if links.is_empty() {
        return None;
    }
    Some(links.iter().flat_map(|l| l.split(',')).any(|l| l.replace(' ', "").contains("rel=\"next\"")))
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
