//! HTTP handling of the fake instance: one fallback handler that routes by hand, so that every
//! request (including malformed ones) gets a ServiceNow-shaped answer and lands in the request log.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::events::EVENT_FIELDS;
use super::query::{Query, field_string};
use super::{AggregateSupport, Dataset, Fault, RecordedRequest, Shared, State};
use crate::shared::sn_time;
use crate::shared::value_text;

const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";
const DEFAULT_LIMIT: usize = 10_000;
/// How long [`Fault::ApplyThenHang`] keeps a request unanswered.
const HANG: Duration = Duration::from_secs(3600);
/// How long [`Fault::CutOff`] waits after the bytes it sends before closing the connection.
const CUT_DELAY: Duration = Duration::from_millis(50);

/// Fields that, written as a string, are stored as a reference to the given table.
const REFERENCE_FIELDS: &[(&str, &str)] = &[
    ("mid_server", "ecc_agent"),
    ("ecc_agent", "ecc_agent"),
    ("sys_domain", "sys_user_group"),
    ("user", "sys_user"),
    ("role", "sys_user_role"),
    ("contains", "sys_user_role"),
];

/// System fields a write cannot set: the fake assigns them.
const SYSTEM_FIELDS: &[&str] =
    &["sys_id", "sys_created_on", "sys_updated_on", "sys_mod_count", "sys_created_by", "sys_updated_by"];

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What answering a request cost the instance, for the latency model.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    /// Table API rows returned.
    rows: usize,
    /// Rows the Aggregate API counted.
    aggregated: usize,
    /// Batch API sub-requests served.
    batch_items: usize,
}

/// A response being built (plain data, so that it can be recorded before it is sent).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: String,
    cost: Cost,
}

impl Reply {
    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            headers: vec![(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE))],
            body,
            cost: Cost::default(),
        }
    }

    fn with_cost(mut self, cost: Cost) -> Reply {
        self.cost = cost;
        self
    }

    /// `{"result": …}` with the record(s) in field order.
    fn result<T: Serialize>(status: u16, result: T) -> Reply {
        match serde_json::to_string(&Envelope { result }) {
            Ok(body) => Reply::json(status, body),
            Err(e) => Reply::error(500, &format!("fake instance cannot serialize the result: {e}"), None),
        }
    }

    /// `{"error":{"message":…,"detail":…},"status":"failure"}`, in that key order.
    fn error(status: u16, message: &str, detail: Option<&str>) -> Reply {
        let body = ErrorEnvelope { error: ErrorBody { message, detail }, status: "failure" };
        // Plain strings only: serialization cannot fail; fall back to a fixed body anyway.
        let body = serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":{"message":"fake instance error","detail":null},"status":"failure"}"#.to_string()
        });
        Reply::json(status, body)
    }

    /// A 400 the real instance would not send: the fake refuses something it does not support.
    fn unsupported(message: String) -> Reply {
        Reply::error(400, &message, None)
    }

    fn not_found() -> Reply {
        Reply::error(404, "No Record found", Some("Record doesn't exist or ACL restricts the record retrieval"))
    }

    fn with_header(mut self, name: HeaderName, value: &str) -> Reply {
        match HeaderValue::from_str(value) {
            Ok(v) => {
                self.headers.push((name, v));
                self
            }
            Err(_) => Reply::error(500, &format!("fake instance cannot encode header {name}: {value:?}"), None),
        }
    }

    /// The body as sent: gzip-compressed when the request accepted it (and the body is not empty).
    fn encode(mut self, gzip: bool) -> (Reply, Vec<u8>) {
        let body = std::mem::take(&mut self.body).into_bytes();
        if !gzip || body.is_empty() {
            return (self, body);
        }
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        match encoder.write_all(&body).and_then(|()| encoder.finish()) {
            Ok(compressed) => {
                self.headers.push((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
                (self, compressed)
            }
            Err(_) => (self, body),
        }
    }

    fn into_response(self, body: Vec<u8>) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Body::from(body)).into_response();
        let headers = response.headers_mut();
        // Without an explicit content type, axum labels a String body text/plain; an empty
        // body (X-no-response-body) should carry none.
        headers.remove(header::CONTENT_TYPE);
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

impl Reply {
    /// The reply with `Content-Length` of the whole body, of which only the first `bytes` are sent
    /// before the connection is closed.
    fn into_cut_response(self, bytes: usize) -> Response {
        let full = self.body.len();
        let head = Bytes::from(self.body.into_bytes()).slice(..bytes.min(full));
        // The error comes a moment after the head, so that what was sent is flushed before the
        // connection closes.
        let cut = futures::stream::once(async {
            tokio::time::sleep(CUT_DELAY).await;
            Err::<Bytes, _>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake instance: connection cut"))
        });
        let chunks = futures::StreamExt::chain(futures::stream::iter([Ok(head)]), cut);
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Body::from_stream(chunks)).into_response();
        let headers = response.headers_mut();
        headers.remove(header::CONTENT_TYPE);
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(full));
        response
    }
}

/// What the locked part of the handling decided.
enum Outcome {
    Reply(Reply),
    /// [`Fault::ApplyThenHang`]: the record is stored, the request is never answered.
    Hang,
    /// [`Fault::CutOff`]: the reply, its connection closed after this many bytes of the body.
    CutOff(Reply, usize),
}

/// The parts of a request the fake looks at.
struct Incoming {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: String,
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = Incoming {
        method,
        path: uri.path().to_string(),
        query: uri
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let gzip = incoming
        .headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|e| e.trim().split(';').next().is_some_and(|e| e.eq_ignore_ascii_case("gzip"))));
    let (outcome, model, latency) = {
        let mut state = shared.lock();
        let outcome = process(&shared, &mut state, &incoming);
        let status = match &outcome {
            Outcome::Reply(reply) | Outcome::CutOff(reply, _) => reply.status,
            Outcome::Hang => 0,
        };
        let body = match incoming.path.as_str() {
            super::oauth::TOKEN_PATH => super::oauth::redact(&incoming.body),
            _ => incoming.body.clone(),
        };
        state.log.push(RecordedRequest {
            method: incoming.method.to_string(),
            path: incoming.path.clone(),
            query: incoming.query.clone(),
            body,
            status,
        });
        state.tally.requests += 1;
        *state.tally.requests_by_endpoint.entry(endpoint(&incoming.path)).or_default() += 1;
        (outcome, state.cost, state.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match outcome {
        Outcome::CutOff(reply, bytes) => reply.into_cut_response(bytes),
        Outcome::Reply(reply) => {
            let cost = reply.cost;
            let plain = reply.body.len();
            let (reply, body) = reply.encode(gzip);
            {
                let mut state = shared.lock();
                state.tally.body_bytes += plain as u64;
                state.tally.wire_bytes += body.len() as u64;
            }
            let delay = model.per_request
                + model.per_row * u32::try_from(cost.rows + cost.aggregated).unwrap_or(u32::MAX)
                + model.per_batch_item * u32::try_from(cost.batch_items).unwrap_or(u32::MAX);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            reply.into_response(body)
        }
        Outcome::Hang => {
            let mut shutdown = shared.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(HANG) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
            let (reply, body) = Reply::error(503, "fake instance: hung request released", None).encode(false);
            reply.into_response(body)
        }
    }
}

/// Where a request points.
enum Target<'a> {
    Collection { table: &'a str },
    Record { table: &'a str, sys_id: &'a str },
}

impl<'a> Target<'a> {
    fn parse(path: &'a str) -> Option<Target<'a>> {
        let rest = path.strip_prefix("/api/now/table/").or_else(|| path.strip_prefix("/api/now/v2/table/"))?;
        let mut parts = rest.split('/');
        let table = parts.next().filter(|t| is_identifier(t))?;
        match (parts.next(), parts.next()) {
            (None, _) => Some(Target::Collection { table }),
            (Some(sys_id), None) if !sys_id.is_empty() => Some(Target::Record { table, sys_id }),
            _ => None,
        }
    }

    fn table(&self) -> &'a str {
        match self {
            Target::Collection { table } | Target::Record { table, .. } => table,
        }
    }
}

/// How the tally names the endpoint of a path: `table/<t>`, `stats/<t>`, `batch` or the path itself.
fn endpoint(path: &str) -> String {
    if path == BATCH_PATH {
        return "batch".into();
    }
    if let Some(t) = path.strip_prefix(STATS_PREFIX) {
        return format!("stats/{t}");
    }
    match Target::parse(path) {
        Some(target) => format!("table/{}", target.table()),
        None => path.to_string(),
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn process(shared: &Shared, state: &mut State, req: &Incoming) -> Outcome {
    if req.path == super::oauth::TOKEN_PATH {
        return Outcome::Reply(token(shared, state, req));
    }
    if !authorized(&req.headers, &shared.expected_credentials, state.oauth.as_ref()) {
        return Outcome::Reply(
            Reply::error(401, "User Not Authenticated", Some("Required to provide Auth information"))
                .with_header(header::WWW_AUTHENTICATE, "BASIC realm=\"Service-now\""),
        );
    }
    if req.path == BATCH_PATH {
        return batch(shared, state, req);
    }
    if !state.index.valid {
        state.index.rebuild(&state.dataset);
    }
    state.dataset.events.seal();
    if let Some(table) = req.path.strip_prefix(STATS_PREFIX)
        && state.aggregate != AggregateSupport::Unavailable
    {
        let reply = aggregate(state, req, table);
        *state.tally.rows_aggregated.entry(table.to_string()).or_default() += reply.cost.aggregated as u64;
        *state.tally.groups_returned.entry(table.to_string()).or_default() += reply.cost.rows as u64;
        return Outcome::Reply(reply);
    }
    let Some(target) = Target::parse(&req.path) else {
        return Outcome::Reply(Reply::error(
            400,
            "Requested URI does not represent any resource",
            Some(&format!(
                "fake instance serves only /api/now/table/{{table}}[/{{sys_id}}] and /api/now/v2/table/...: {}",
                req.path
            )),
        ));
    };
    let table = target.table();

    // Fault::Respond applies to any request to the table, before anything else.
    if let Some(i) = state.faults.iter().position(|f| matches!(f, Fault::Respond { .. }) && f.table() == table) {
        let fault = state.faults.remove(i);
        if let Fault::Respond { status, body, headers, .. } = fault {
            return Outcome::Reply(injected_reply(status, body, &headers));
        }
    }

    if !state.dataset.tables.contains_key(table) {
        return Outcome::Reply(Reply::error(
            400,
            &format!("Invalid table {table}"),
            Some(&format!("Table {table} does not exist")),
        ));
    }

    let list_request = req.method == Method::GET && matches!(target, Target::Collection { .. });
    let partial = take_fault(state, table, |f| match f {
        Fault::QuotaPartial { rows, .. } if list_request => Some(*rows),
        _ => None,
    });
    let cut = take_fault(state, table, |f| match f {
        Fault::CutOff { bytes, .. } => Some(*bytes),
        _ => None,
    });

    let outcome = match (&req.method, &target) {
        (&Method::GET, Target::Collection { table }) => {
            let reply = list(shared, state, req, table, partial);
            *state.tally.rows_returned.entry(table.to_string()).or_default() += reply.cost.rows as u64;
            Outcome::Reply(reply)
        }
        (&Method::GET, Target::Record { table, sys_id }) => Outcome::Reply(get_one(state, req, table, sys_id)),
        (&Method::POST, Target::Collection { table }) => create(shared, state, req, table),
        (&Method::PATCH | &Method::PUT, Target::Record { table, sys_id }) => {
            Outcome::Reply(update(shared, state, req, table, sys_id))
        }
        (method, _) => Outcome::Reply(Reply::error(
            405,
            "Method not Supported",
            Some(&format!("fake instance does not support {method} on {}", req.path)),
        )),
    };
    match (outcome, cut) {
        (Outcome::Reply(reply), Some(bytes)) => Outcome::CutOff(reply, bytes),
        (outcome, _) => outcome,
    }
}

/// Removes the first fault on `table` that `pick` accepts, and returns what `pick` made of it.
fn take_fault<T>(state: &mut State, table: &str, pick: impl Fn(&Fault) -> Option<T>) -> Option<T> {
    let i = state.faults.iter().position(|f| f.table() == table && pick(f).is_some())?;
    pick(&state.faults.remove(i))
}

fn injected_reply(status: u16, body: String, headers: &[(String, String)]) -> Reply {
    if StatusCode::from_u16(status).is_err() {
        return Reply::error(500, &format!("fake instance: injected status {status} is invalid"), None);
    }
    let mut reply = Reply { status, headers: Vec::new(), body, cost: Cost::default() };
    let has_content_type = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if !has_content_type {
        reply.headers.push((header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)));
    }
    for (name, value) in headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            return Reply::error(500, &format!("fake instance: injected header name {name:?} is invalid"), None);
        };
        reply = reply.with_header(name, value);
    }
    reply
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// Basic auth with the instance's user and password (unless OAuth refuses it), or a bearer token it issued.
fn authorized(headers: &HeaderMap, expected_credentials: &str, oauth: Option<&super::oauth::OAuthState>) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = value.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let credentials = parts.next().unwrap_or_default().trim();
    match oauth {
        Some(o) if scheme.eq_ignore_ascii_case("bearer") => o.accepts(credentials),
        Some(o) if o.app.basic_refused => false,
        _ => scheme.eq_ignore_ascii_case("basic") && credentials == expected_credentials,
    }
}

/// `POST /oauth_token.do`: a 404 until OAuth is enabled, as on an instance without the OAuth plugin.
fn token(shared: &Shared, state: &mut State, req: &Incoming) -> Reply {
    let Some(oauth) = state.oauth.as_mut() else {
        return Reply::error(404, "Not Found", None);
    };
    if req.method != Method::POST {
        return Reply::error(405, "Method not Supported", None);
    }
    let content_type = req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (user, password) = &shared.account;
    let (status, body) = oauth.token_request(content_type, &req.body, (user, password));
    Reply::json(status, body)
}

/// Standard base64 with padding (RFC 4648).
pub(super) fn base64_encode(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

// ---------------------------------------------------------------------------------------------
// Batch API

/// The Batch API endpoint.
const BATCH_PATH: &str = "/api/now/v1/batch";
/// The Aggregate API's path, before the table name.
const STATS_PREFIX: &str = "/api/now/stats/";
/// The fault table name that targets Batch API calls themselves.
pub const BATCH_FAULT_TABLE: &str = "batch";

/// `POST /api/now/v1/batch`: runs each `rest_requests` item through the same handling as a direct
/// request (authorization is the outer request's), and answers `serviced_requests` with base64
/// bodies. Faults on table [`BATCH_FAULT_TABLE`] apply to the whole call: `Respond` answers without
/// running anything; `ApplyThenHang`, `ApplyThen503`, `ApplyThenRespond` and `CutOff` run every item,
/// then hang, answer 503, answer what they carry, or cut the answer off.
fn batch(shared: &Shared, state: &mut State, req: &Incoming) -> Outcome {
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
    let mut cost = Cost::default();
    for item in items {
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
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
            "headers": [],
            "execution_time": 1,
        }));
    }
    let batch_request_id = envelope.get("batch_request_id").cloned().unwrap_or(Value::Null);
    let reply = Reply::json(
        200,
        json!({"batch_request_id": batch_request_id, "serviced_requests": serviced, "unserviced_requests": []})
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
        _ => Outcome::Reply(reply),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// The sysparm_* parameters of a request, validated.
#[derive(Debug, Default)]
struct Params {
    query: Query,
    fields: Option<Vec<String>>,
    limit: usize,
    offset: usize,
    exclude_reference_link: bool,
    suppress_pagination_header: bool,
}

const LIST_PARAMS: &[&str] = &[
    "sysparm_query",
    "sysparm_fields",
    "sysparm_limit",
    "sysparm_offset",
    "sysparm_exclude_reference_link",
    "sysparm_display_value",
    "sysparm_no_count",
    "sysparm_suppress_pagination_header",
];
const RECORD_PARAMS: &[&str] = &["sysparm_fields", "sysparm_exclude_reference_link", "sysparm_display_value"];
const WRITE_PARAMS: &[&str] =
    &["sysparm_fields", "sysparm_exclude_reference_link", "sysparm_display_value", "sysparm_input_display_value"];

fn parse_bool(name: &str, value: &str) -> Result<bool, Reply> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Reply::unsupported(format!("fake instance expects true or false for {name}, got {value:?}"))),
    }
}

fn parse_usize(name: &str, value: &str) -> Result<usize, Reply> {
    value.parse::<usize>().map_err(|_| {
        Reply::unsupported(format!("fake instance expects a non-negative integer for {name}, got {value:?}"))
    })
}

fn parse_params(pairs: &[(String, String)], allowed: &[&str]) -> Result<Params, Reply> {
    let mut params = Params { limit: DEFAULT_LIMIT, ..Params::default() };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in pairs {
        if !allowed.contains(&name.as_str()) {
            return Err(Reply::unsupported(format!(
                "fake instance does not support parameter {name} here (supported: {})",
                allowed.join(", ")
            )));
        }
        if seen.contains(&name.as_str()) {
            return Err(Reply::unsupported(format!("fake instance: parameter {name} given more than once")));
        }
        seen.push(name);
        match name.as_str() {
            "sysparm_query" => {
                params.query = Query::parse(value).map_err(|e| Reply::unsupported(e.to_string()))?;
            }
            "sysparm_fields" => {
                let fields: Vec<String> =
                    value.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_string).collect();
                if let Some(bad) = fields.iter().find(|f| !f.split('.').all(is_identifier)) {
                    return Err(Reply::unsupported(format!(
                        "fake instance: invalid field name {bad:?} in sysparm_fields"
                    )));
                }
                params.fields = (!fields.is_empty()).then_some(fields);
            }
            "sysparm_limit" => {
                params.limit = parse_usize(name, value)?;
                if params.limit == 0 {
                    return Err(Reply::unsupported("fake instance expects sysparm_limit >= 1".to_string()));
                }
            }
            "sysparm_offset" => params.offset = parse_usize(name, value)?,
            "sysparm_exclude_reference_link" => {
                params.exclude_reference_link = parse_bool(name, value)?;
            }
            "sysparm_suppress_pagination_header" => {
                params.suppress_pagination_header = parse_bool(name, value)?;
            }
            "sysparm_no_count" => {
                parse_bool(name, value)?;
            }
            "sysparm_display_value" | "sysparm_input_display_value" if value != "false" => {
                return Err(Reply::unsupported(format!("fake instance supports only {name}=false, got {value:?}")));
            }
            _ => {}
        }
    }
    Ok(params)
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Where each stored row of every table is, by sys_id, for dot-walks and record paths. Rebuilt after
/// an outside edit; a create adds its row.
#[derive(Debug, Default)]
pub(super) struct SysIdIndex {
    tables: HashMap<String, HashMap<String, usize>>,
    pub(super) valid: bool,
}

impl SysIdIndex {
    pub(super) fn invalidate(&mut self) {
        self.valid = false;
    }

    pub(super) fn rebuild(&mut self, dataset: &Dataset) {
        self.tables = dataset
            .tables
            .iter()
            .map(|(t, rows)| {
                (t.clone(), rows.iter().enumerate().map(|(i, r)| (field_string(r, "sys_id"), i)).collect())
            })
            .collect();
        self.valid = true;
    }

    fn insert(&mut self, table: &str, sys_id: &str, at: usize) {
        if self.valid {
            self.tables.entry(table.to_string()).or_default().insert(sys_id.to_string(), at);
        }
    }

    fn find(&self, table: &str, sys_id: &str) -> Option<usize> {
        self.tables.get(table)?.get(sys_id).copied()
    }
}

/// The stored data as the handlers read it.
#[derive(Clone, Copy)]
struct View<'a> {
    dataset: &'a Dataset,
    index: &'a SysIdIndex,
}

impl<'a> View<'a> {
    fn of(state: &'a State) -> View<'a> {
        View { dataset: &state.dataset, index: &state.index }
    }

    fn row(&self, table: &str, sys_id: &str) -> Option<&'a Map<String, Value>> {
        let rows = self.dataset.tables.get(table)?;
        match self.index.find(table, sys_id) {
            Some(i) => rows.get(i).filter(|r| field_string(r, "sys_id") == sys_id),
            None if !self.index.valid => rows.iter().find(|r| field_string(r, "sys_id") == sys_id),
            None => None,
        }
    }

    /// A field of a row as comparable text (dot-walks followed).
    fn text(&self, row: RowRef<'a>, field: &str) -> Cow<'a, str> {
        match row {
            RowRef::Map(m) => Cow::Owned(lookup_string(*self, m, field)),
            RowRef::Event(i) => self.dataset.events.field(i, field).unwrap_or(Cow::Borrowed("")),
        }
    }

    /// The rows of `table` matching `query` (not yet ordered).
    fn select(&self, table: &str, query: &Query) -> Vec<RowRef<'a>> {
        let rows = self.dataset.tables.get(table).map(Vec::as_slice).unwrap_or_default();
        let view = *self;
        let mut matching: Vec<RowRef<'a>> = rows
            .iter()
            .filter(|row| query.matches_with(|field| lookup_string(view, row, field)))
            .map(RowRef::Map)
            .collect();
        if table == "sysevent" {
            matching.extend(self.dataset.events.select(query).into_iter().map(RowRef::Event));
        }
        matching
    }

    /// Orders rows by the query's ORDERBY keys (stable).
    fn sort(&self, rows: &mut Vec<RowRef<'a>>, query: &Query) {
        if query.order.is_empty() {
            return;
        }
        let compact: Option<Vec<u32>> =
            rows.iter().map(|r| if let RowRef::Event(i) = r { Some(*i) } else { None }).collect();
        if let Some(mut ids) = compact
            && self.dataset.events.sort(&mut ids, &query.order)
        {
            *rows = ids.into_iter().map(RowRef::Event).collect();
            return;
        }
        query.sort_with(rows, |r, field| self.text(*r, field).into_owned());
    }
}

/// One stored row: a JSON map, or a compact `sysevent` row.
#[derive(Debug, Clone, Copy)]
enum RowRef<'a> {
    Map(&'a Map<String, Value>),
    Event(u32),
}

/// The value at a field path: a plain field, or a dot-walk through references
/// (`user.user_name`), following the table named in each reference's link.
fn lookup(view: View<'_>, row: &Map<String, Value>, path: &str) -> Option<Value> {
    let mut parts = path.split('.');
    let mut current = row.get(parts.next()?)?;
    for part in parts {
        let Value::Object(reference) = current else {
            return None;
        };
        let link = reference.get("link")?.as_str()?;
        let sys_id = reference.get("value")?.as_str()?;
        let mut segments = link.rsplit('/');
        segments.next()?;
        let ref_table = segments.next()?;
        current = view.row(ref_table, sys_id)?.get(part)?;
    }
    Some(current.clone())
}

fn lookup_string(view: View<'_>, row: &Map<String, Value>, path: &str) -> String {
    if path.contains('.') { value_text(lookup(view, row, path).as_ref()) } else { field_string(row, path) }
}

/// A rendered record: fields in response order (`serde_json::Map` would sort them).
#[derive(Debug)]
struct Record(Vec<(String, Value)>);

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (field, value) in &self.0 {
            map.serialize_entry(field, value)?;
        }
        map.end()
    }
}

/// The error envelope of the Table API.
#[derive(serde::Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
    status: &'a str,
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    detail: Option<&'a str>,
}

/// The `{"result": …}` envelope.
#[derive(serde::Serialize)]
struct Envelope<T> {
    result: T,
}

/// A row as the API returns it, honouring `sysparm_fields` (fields in the order asked, absent ones
/// omitted) and `sysparm_exclude_reference_link`.
fn render(view: View<'_>, row: &Map<String, Value>, params: &Params) -> Record {
    let shape = |value: Value| -> Value {
        match value {
            Value::Object(ref obj) if params.exclude_reference_link => Value::String(value_text(obj.get("value"))),
            other => other,
        }
    };
    let fields = match &params.fields {
        Some(fields) => fields
            .iter()
            .filter_map(|field| lookup(view, row, field).map(|value| (field.clone(), shape(value))))
            .collect(),
        None => row.iter().map(|(field, value)| (field.clone(), shape(value.clone()))).collect(),
    };
    Record(fields)
}

/// The REST quota's error, as KB1297438 quotes it (docs/servicenow.md §2 item 6).
const QUOTA_MESSAGE: &str = "Transaction cancelled: maximum execution time exceeded";
const QUOTA_DETAIL: &str = "Transaction cancelled: maximum execution time exceeded Check logs for error trace or \
                            enable glide.rest.debug property to verify REST request processing";

/// A page the quota cut: the rows sent before it struck, then its error.
#[derive(serde::Serialize)]
struct CancelledPage<'a> {
    result: Vec<Record>,
    error: ErrorBody<'a>,
    status: &'a str,
}

fn render_ref(view: View<'_>, row: RowRef<'_>, params: &Params) -> Record {
    match row {
        RowRef::Map(m) => render(view, m, params),
        RowRef::Event(i) => {
            let all: Vec<String>;
            let fields = match &params.fields {
                Some(f) => f.as_slice(),
                None => {
                    all = EVENT_FIELDS.iter().map(|f| f.to_string()).collect();
                    all.as_slice()
                }
            };
            Record(
                fields
                    .iter()
                    .filter_map(|f| view.dataset.events.field(i, f).map(|v| (f.clone(), Value::String(v.into_owned()))))
                    .collect(),
            )
        }
    }
}

/// `partial`: [`Fault::QuotaPartial`], the rows sent before the quota cancels the transaction.
fn list(shared: &Shared, state: &State, req: &Incoming, table: &str, partial: Option<usize>) -> Reply {
    let params = match parse_params(&req.query, LIST_PARAMS) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let view = View::of(state);
    let mut matching = view.select(table, &params.query);
    view.sort(&mut matching, &params.query);
    let total = matching.len();
    let page: Vec<Record> =
        matching.iter().skip(params.offset).take(params.limit).map(|row| render_ref(view, *row, &params)).collect();
    let rows = page.len();
    if let Some(cut) = partial {
        let result = page.into_iter().take(cut).collect();
        let cancelled = CancelledPage {
            result,
            error: ErrorBody { message: QUOTA_MESSAGE, detail: Some(QUOTA_DETAIL) },
            status: "failure",
        };
        return match serde_json::to_string(&cancelled) {
            Ok(body) => Reply::json(200, body).with_cost(Cost { rows, ..Cost::default() }),
            Err(e) => Reply::error(500, &format!("fake instance cannot serialize the result: {e}"), None),
        };
    }
    let mut reply = Reply::result(200, page).with_header(HeaderName::from_static("x-total-count"), &total.to_string());
    if !params.suppress_pagination_header {
        let link = link_header(&shared.base_url, &req.path, &req.query, &params, total);
        reply = reply.with_header(header::LINK, &link);
    }
    reply.with_cost(Cost { rows, ..Cost::default() })
}

// ---------------------------------------------------------------------------------------------
// Aggregate API

const STATS_PARAMS: &[&str] = &[
    "sysparm_query",
    "sysparm_group_by",
    "sysparm_count",
    "sysparm_max_fields",
    "sysparm_min_fields",
    "sysparm_display_value",
];

/// Fields holding instance date-times: MIN/MAX of these is what [`AggregateSupport::NoDateMax`] withholds.
const DATE_TIME_FIELDS: &[&str] =
    &["sys_created_on", "sys_updated_on", "last_detected", "last_refreshed", "last_login_time"];

/// The statistics of one group.
#[derive(Debug, Default)]
struct GroupStats {
    count: u64,
    max: BTreeMap<String, String>,
    min: BTreeMap<String, String>,
}

/// `GET /api/now/stats/{table}`: `{"result":[{"stats":{"count":"N","max":{…}},"groupby_fields":[{"field","value"}]}]}`
/// with `sysparm_group_by`, `{"result":{"stats":{…}}}` without; every number a string.
fn aggregate(state: &State, req: &Incoming, table: &str) -> Reply {
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

/// `<url?sysparm_offset=…&sysparm_limit=…&…>;rel="next",…`, keeping the other sysparm_* parameters.
fn link_header(base_url: &str, path: &str, query: &[(String, String)], params: &Params, total: usize) -> String {
    let limit = params.limit;
    let offset = params.offset;
    let url_at = |offset: usize| -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        serializer.append_pair("sysparm_offset", &offset.to_string());
        serializer.append_pair("sysparm_limit", &limit.to_string());
        for (name, value) in query {
            if name != "sysparm_offset" && name != "sysparm_limit" && name.starts_with("sysparm_") {
                serializer.append_pair(name, value);
            }
        }
        format!("<{base_url}{path}?{}>", serializer.finish())
    };
    let mut links = Vec::new();
    if offset.saturating_add(limit) < total {
        links.push(format!("{};rel=\"next\"", url_at(offset + limit)));
    }
    if offset > 0 {
        links.push(format!("{};rel=\"prev\"", url_at(offset.saturating_sub(limit))));
    }
    links.push(format!("{};rel=\"first\"", url_at(0)));
    let last = if total == 0 { 0 } else { (total - 1) / limit * limit };
    links.push(format!("{};rel=\"last\"", url_at(last)));
    links.join(",")
}

fn find_index(state: &State, table: &str, sys_id: &str) -> Option<usize> {
    let rows = state.dataset.tables.get(table)?;
    match state.index.find(table, sys_id) {
        Some(i) => Some(i).filter(|i| rows.get(*i).is_some_and(|r| field_string(r, "sys_id") == sys_id)),
        None if !state.index.valid => rows.iter().position(|r| field_string(r, "sys_id") == sys_id),
        None => None,
    }
}

fn get_one(state: &State, req: &Incoming, table: &str, sys_id: &str) -> Reply {
    let params = match parse_params(&req.query, RECORD_PARAMS) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let row =
        find_index(state, table, sys_id).and_then(|i| state.dataset.tables.get(table).and_then(|rows| rows.get(i)));
    match row {
        Some(row) => Reply::result(200, render(View::of(state), row, &params)),
        None => Reply::not_found(),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Checks the content type and parses the body into stored field values.
fn parse_write_body(base_url: &str, req: &Incoming) -> Result<Vec<(String, Value)>, Reply> {
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

fn javascript(value: &str) -> bool {
    value.trim_start().get(..11).is_some_and(|p| p.eq_ignore_ascii_case("javascript:"))
}

fn now_string(state: &State) -> String {
    sn_time::format(state.clock.unwrap_or_else(chrono::Utc::now))
}

fn new_sys_id(state: &mut State, table: &str) -> String {
    loop {
        state.next_id += 1;
        let candidate = format!("fa4e{:028x}", state.next_id);
        if find_index(state, table, &candidate).is_none() {
            return candidate;
        }
    }
}

fn no_response_body(req: &Incoming) -> bool {
    req.headers
        .get("x-no-response-body")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn create(shared: &Shared, state: &mut State, req: &Incoming, table: &str) -> Outcome {
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

fn update(shared: &Shared, state: &mut State, req: &Incoming, table: &str, sys_id: &str) -> Reply {
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

#[cfg(test)]
mod tests {
    use super::super::{Dataset, FakeInstance, Fault, REFERENCE_TIME};
    use super::*;
    use chrono::{TimeZone, Utc};

    const USER: &str = "agent";
    const PASSWORD: &str = "s3cret:pw";

    fn small_dataset() -> Dataset {
        let mut d = Dataset::default();
        let rows: Vec<Value> = (1..=25)
            .map(|i| {
                json!({
                    "sys_id": format!("e7e7{:028x}", i),
                    "name": if i % 5 == 0 { "login.failed" } else { "login" },
                    "parm1": format!("user{}", i % 3),
                    "sys_created_on": format!("2026-11-22 10:{:02}:00", i),
                })
            })
            .collect();
        if let Err(e) = d.insert_fixture("sysevent", &json!({ "result": rows }).to_string()) {
            panic!("{e}");
        }
        d.ensure_table("ecc_agent_issue");
        d
    }

    async fn start(d: Dataset) -> FakeInstance {
        match FakeInstance::start(d, USER, PASSWORD).await {
            Ok(f) => f,
            Err(e) => panic!("start: {e}"),
        }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    async fn body_json(resp: reqwest::Response) -> Value {
        match resp.json::<Value>().await {
            Ok(v) => v,
            Err(e) => panic!("json body: {e}"),
        }
    }

    async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
        match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("request failed: {e}"),
        }
    }

    fn header(resp: &reqwest::Response, name: &str) -> String {
        resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    }

    /// The `rel` → decoded query pairs of a Link header.
    fn links(link: &str) -> Vec<(String, Vec<(String, String)>)> {
        link.split(",<")
            .map(|part| {
                let part = part.trim_start_matches('<');
                let (url, rel) = part.split_once(">;rel=").unwrap_or(("", ""));
                let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
                (
                    rel.trim_matches('"').to_string(),
                    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
                )
            })
            .collect()
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }

    #[tokio::test]
    async fn missing_or_wrong_auth_is_401() {
        let fake = start(small_dataset()).await;
        let url = format!("{}/api/now/table/sysevent", fake.url());
        for req in [
            client().get(&url),
            client().get(&url).basic_auth(USER, Some("wrong")),
            client().get(&url).basic_auth("other", Some(PASSWORD)),
        ] {
            let resp = send(req).await;
            assert_eq!(resp.status(), 401);
            assert_eq!(
                resp.text().await.unwrap_or_else(|e| panic!("{e}")),
                r#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#
            );
        }
        let resp = send(client().get(&url).basic_auth(USER, Some(PASSWORD))).await;
        assert_eq!(resp.status(), 200);
        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [401, 401, 401, 200]);
    }

    #[tokio::test]
    async fn invalid_table_and_bad_requests_are_400() {
        let fake = start(small_dataset()).await;
        let resp = send(
            client().get(format!("{}/api/now/table/sys_nonexistent", fake.url())).basic_auth(USER, Some(PASSWORD)),
        )
        .await;
        assert_eq!(resp.status(), 400);
        assert_eq!(
            body_json(resp).await,
            json!({"error":{"message":"Invalid table sys_nonexistent","detail":"Table sys_nonexistent does not exist"},"status":"failure"})
        );
        let url = format!("{}/api/now/table/sysevent", fake.url());
        for (query, message_start) in [
            (vec![("sysparm_query", "nameLIKElogin")], "fake instance cannot parse query: "),
            (
                vec![("sysparm_query", "sys_created_on>javascript:gs.hoursAgo(4)")],
                "fake instance refuses script value ",
            ),
            (vec![("sysparm_display_value", "true")], "fake instance supports only"),
            (vec![("name", "login")], "fake instance does not support parameter"),
            (vec![("sysparm_limit", "-1")], "fake instance expects a non-negative"),
        ] {
            let resp = send(client().get(&url).query(&query).basic_auth(USER, Some(PASSWORD))).await;
            assert_eq!(resp.status(), 400, "{query:?}");
            let body = body_json(resp).await;
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with(message_start), "{query:?}: {body}");
            assert_eq!(body["error"]["detail"], Value::Null);
            assert_eq!(body["status"], "failure");
        }
        // every request was logged with its status, query decoded
        let log = fake.requests();
        assert_eq!(log.len(), 6);
        assert!(log.iter().all(|r| r.status == 400 && r.method == "GET"));
        assert_eq!(
            log[2].query,
            [("sysparm_query".to_string(), "sys_created_on>javascript:gs.hoursAgo(4)".to_string())]
        );
    }

    #[tokio::test]
    async fn get_pages_with_link_headers_and_total_count() {
        let fake = start(small_dataset()).await;
        let url = format!("{}/api/now/v2/table/sysevent", fake.url());
        let query = "name=login^ORDERBYDESCsys_created_on";
        // 20 rows match
        let resp = send(
            client()
                .get(&url)
                .query(&[
                    ("sysparm_query", query),
                    ("sysparm_fields", "sys_id,parm1,no_such_field"),
                    ("sysparm_limit", "8"),
                    ("sysparm_offset", "8"),
                ])
                .basic_auth(USER, Some(PASSWORD)),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "content-type"), "application/json;charset=UTF-8");
        assert_eq!(header(&resp, "x-total-count"), "20");
        let link = header(&resp, "link");
        assert!(link.starts_with(&format!("<{url}?sysparm_offset=16&sysparm_limit=8&")), "{link}");
        let parsed = links(&link);
        let rels: Vec<&str> = parsed.iter().map(|(rel, _)| rel.as_str()).collect();
        assert_eq!(rels, ["next", "prev", "first", "last"]);
        let offsets: Vec<&str> = parsed.iter().map(|(_, q)| q[0].1.as_str()).collect();
        assert_eq!(offsets, ["16", "0", "0", "16"]);
        // other sysparm_* parameters are kept, decoded back to the original values
        assert!(parsed[0].1.contains(&("sysparm_query".to_string(), query.to_string())));
        let text = resp.text().await.unwrap_or_else(|e| panic!("{e}"));
        // fields in the order asked for, absent ones omitted
        assert!(text.starts_with(&format!(r#"{{"result":[{{"sys_id":"e7e7{:028x}","parm1":"#, 14)), "{text}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let result = body["result"].as_array().cloned().unwrap_or_default();
        assert_eq!(result.len(), 8);
        // descending order, skipping every 5th (login.failed): 24,23,22,21,19,18,17,16 | 14,...
        assert_eq!(result[0]["sys_id"], format!("e7e7{:028x}", 14));
        assert_eq!(result[0].as_object().map(Map::len), Some(2));

        // the last page: no next
        let resp = send(
            client()
                .get(&url)
                .query(&[("sysparm_query", query), ("sysparm_limit", "8"), ("sysparm_offset", "16")])
                .basic_auth(USER, Some(PASSWORD)),
        )
        .await;
        let rels: Vec<String> = links(&header(&resp, "link")).into_iter().map(|(r, _)| r).collect();
        assert_eq!(rels, ["prev", "first", "last"]);
        assert_eq!(body_json(resp).await["result"].as_array().map(Vec::len), Some(4));

        // nothing matches: 200 with [] (v2), total 0
        let resp =
            send(client().get(&url).query(&[("sysparm_query", "name=nothing")]).basic_auth(USER, Some(PASSWORD))).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-total-count"), "0");
        assert_eq!(body_json(resp).await, json!({"result": []}));
    }

    #[tokio::test]
    async fn post_then_get_and_patch() {
        let fake = start(small_dataset()).await;
        let clock = Utc.with_ymd_and_hms(2026, 11, 22, 12, 5, 0).single();
        let Some(clock) = clock else { panic!("bad clock") };
        fake.set_clock(clock);
        let url = format!("{}/api/now/table/ecc_agent_issue", fake.url());
        let resp = send(client().post(&url).basic_auth(USER, Some(PASSWORD)).json(&json!({
            "source": "MIDUserConnectivity",
            "message": "hello",
            "mid_server": "",
            "sys_domain": "global",
            "extra": 5,
        })))
        .await;
        assert_eq!(resp.status(), 201);
        let location = header(&resp, "location");
        let created = body_json(resp).await["result"].clone();
        let sys_id = created["sys_id"].as_str().unwrap_or_default().to_string();
        assert_eq!(sys_id.len(), 32);
        assert_eq!(location, format!("{url}/{sys_id}"));
        assert_eq!(created["state"], "new");
        assert_eq!(created["count"], "1");
        assert_eq!(created["extra"], "5");
        assert_eq!(created["mid_server"], "");
        assert_eq!(created["sys_created_on"], "2026-11-22 12:05:00");
        assert_eq!(created["sys_mod_count"], "0");
        assert_eq!(
            created["sys_domain"],
            json!({"link": format!("{}/api/now/table/sys_user_group/global", fake.url()), "value": "global"})
        );
        assert_eq!(fake.rows("ecc_agent_issue").len(), 1);

        // GET the record, plain references
        let resp = send(
            client()
                .get(format!("{url}/{sys_id}"))
                .query(&[("sysparm_exclude_reference_link", "true")])
                .basic_auth(USER, Some(PASSWORD)),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let got = body_json(resp).await["result"].clone();
        assert_eq!(got["sys_domain"], "global");
        assert_eq!(got["message"], "hello");

        // found by query
        let resp = send(
            client()
                .get(&url)
                .query(&[("sysparm_query", "source=MIDUserConnectivity^stateINnew,acknowledged")])
                .basic_auth(USER, Some(PASSWORD)),
        )
        .await;
        assert_eq!(body_json(resp).await["result"].as_array().map(Vec::len), Some(1));

        // PATCH
        fake.set_clock(clock + chrono::TimeDelta::minutes(10));
        let resp = send(
            client()
                .patch(format!("{url}/{sys_id}"))
                .query(&[("sysparm_fields", "sys_id,count,state,sys_updated_on,sys_mod_count")])
                .basic_auth(USER, Some(PASSWORD))
                .json(&json!({"count": 2, "state": "resolved"})),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            body_json(resp).await,
            json!({"result": {"sys_id": sys_id, "count": "2", "state": "resolved",
                "sys_updated_on": "2026-11-22 12:15:00", "sys_mod_count": "1"}})
        );
        let stored = fake.rows("ecc_agent_issue");
        assert_eq!(stored[0]["sys_created_on"], "2026-11-22 12:05:00");
        assert_eq!(stored[0]["message"], "hello");

        // PATCH / GET of a missing record: 404
        for req in [
            client().patch(format!("{url}/{}", "0".repeat(32))).json(&json!({"state": "resolved"})),
            client().get(format!("{url}/{}", "0".repeat(32))),
        ] {
            let resp = send(req.basic_auth(USER, Some(PASSWORD))).await;
            assert_eq!(resp.status(), 404);
            assert_eq!(
                body_json(resp).await,
                json!({"error":{"message":"No Record found","detail":"Record doesn't exist or ACL restricts the record retrieval"},"status":"failure"})
            );
        }

        // POST without JSON content type: 400, nothing stored
        let resp = send(client().post(&url).basic_auth(USER, Some(PASSWORD)).body("{\"message\":\"x\"}")).await;
        assert_eq!(resp.status(), 400);
        // X-no-response-body
        let resp = send(
            client()
                .post(&url)
                .basic_auth(USER, Some(PASSWORD))
                .header("X-no-response-body", "true")
                .json(&json!({"message": "quiet"})),
        )
        .await;
        assert_eq!(resp.status(), 201);
        assert!(!header(&resp, "location").is_empty());
        assert_eq!(resp.text().await.unwrap_or_else(|e| panic!("{e}")), "");
        assert_eq!(fake.rows("ecc_agent_issue").len(), 2);
        let methods: Vec<(String, u16)> = fake.requests().into_iter().map(|r| (r.method, r.status)).collect();
        assert_eq!(
            methods,
            [
                ("POST".to_string(), 201),
                ("GET".to_string(), 200),
                ("GET".to_string(), 200),
                ("PATCH".to_string(), 200),
                ("PATCH".to_string(), 404),
                ("GET".to_string(), 404),
                ("POST".to_string(), 400),
                ("POST".to_string(), 201),
            ]
        );
    }

    #[tokio::test]
    async fn faults_apply_once() {
        let fake = start(small_dataset()).await;
        let url = format!("{}/api/now/table/ecc_agent_issue", fake.url());
        let post = || {
            client()
                .post(&url)
                .basic_auth(USER, Some(PASSWORD))
                .timeout(Duration::from_millis(500))
                .json(&json!({"message": "m"}))
        };

        fake.inject(Fault::ApplyThen503 { table: "ecc_agent_issue".into() });
        assert_eq!(send(post()).await.status(), 503);
        assert_eq!(fake.rows("ecc_agent_issue").len(), 1);

        fake.inject(Fault::ApplyThenHang { table: "ecc_agent_issue".into() });
        match post().send().await {
            Ok(resp) => panic!("expected a timeout, got {}", resp.status()),
            Err(e) => assert!(e.is_timeout(), "{e}"),
        }
        assert_eq!(fake.rows("ecc_agent_issue").len(), 2);

        fake.inject(Fault::Respond {
            table: "sysevent".into(),
            status: 429,
            body: r#"{"error":{"message":"Rate limit exceeded","detail":"x"},"status":"failure"}"#.into(),
            headers: vec![("Retry-After".into(), "7".into())],
        });
        // a request to another table does not consume it
        assert_eq!(send(post()).await.status(), 201);
        let events = format!("{}/api/now/table/sysevent", fake.url());
        let resp = send(client().get(&events).basic_auth(USER, Some(PASSWORD))).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(header(&resp, "retry-after"), "7");
        assert_eq!(header(&resp, "content-type"), "application/json;charset=UTF-8");
        assert_eq!(body_json(resp).await["error"]["message"], "Rate limit exceeded");
        let resp = send(client().get(&events).basic_auth(USER, Some(PASSWORD))).await;
        assert_eq!(resp.status(), 200);

        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [503, 0, 201, 429, 200]);
    }

    #[tokio::test]
    async fn quota_partial_and_cut_off_answers() {
        let fake = start(small_dataset()).await;
        let events = format!("{}/api/now/table/sysevent", fake.url());
        fake.inject(Fault::QuotaPartial { table: "sysevent".into(), rows: 2 });
        let resp = send(client().get(&events).basic_auth(USER, Some(PASSWORD))).await;
        assert_eq!(resp.status(), 200);
        let body = body_json(resp).await;
        assert_eq!(body["result"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["error"]["message"], "Transaction cancelled: maximum execution time exceeded");
        assert_eq!(body["status"], "failure");

        fake.inject(Fault::CutOff { table: "sysevent".into(), bytes: 100 });
        let mut resp = send(client().get(&events).basic_auth(USER, Some(PASSWORD))).await;
        assert_eq!(resp.status(), 200);
        let declared: usize = header(&resp, "content-length").parse().unwrap_or_default();
        assert!(declared > 100, "{declared}");
        let mut received = 0;
        let error = loop {
            match resp.chunk().await {
                Ok(Some(c)) => received += c.len(),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        assert!(error.is_some(), "the body was cut");
        assert_eq!(received, 100);

        // Applied, then answered with a gateway's page.
        let url = format!("{}/api/now/table/ecc_agent_issue", fake.url());
        fake.inject(Fault::ApplyThenRespond {
            table: "ecc_agent_issue".into(),
            status: 200,
            body: "<html><body>Gateway</body></html>".into(),
            headers: vec![("Content-Type".into(), "text/html".into())],
        });
        let resp = send(client().post(&url).basic_auth(USER, Some(PASSWORD)).json(&json!({"message": "m"}))).await;
        assert_eq!((resp.status().as_u16(), header(&resp, "content-type")), (200, "text/html".to_string()));
        assert_eq!(fake.rows("ecc_agent_issue").len(), 1);
        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 200, 200]);
    }

    #[tokio::test]
    async fn demo_dataset_dot_walk_and_reference_queries() {
        let now = sn_time::parse(REFERENCE_TIME).unwrap_or_else(|| panic!("{REFERENCE_TIME} is an instance time"));
        let fake = start(Dataset::demo(now)).await;
        let get = |table: &str, query: &str, fields: &str| {
            client()
                .get(format!("{}/api/now/table/{table}", fake.url()))
                .query(&[
                    ("sysparm_query", query),
                    ("sysparm_fields", fields),
                    ("sysparm_exclude_reference_link", "true"),
                ])
                .basic_auth(USER, Some(PASSWORD))
        };
        // roles of local-midserver, by dot-walk
        let resp = send(get(
            "sys_user_has_role",
            "user.user_name=local-midserver^ORDERBYrole.name",
            "role.name,inherited,user",
        ))
        .await;
        let body = body_json(resp).await;
        let roles: Vec<&str> = body["result"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["role.name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(roles, ["mid_server", "soap", "soap_create", "soap_delete", "soap_script", "soap_update"]);
        assert_eq!(body["result"][0]["user"], "05e40000000000000000000000000002");

        // reference compared by value; login events in the default window
        let resp = send(get(
            "ecc_agent_config",
            "param_name=mid.instance.username^ecc_agent=ec0a0000000000000000000000000001",
            "value",
        ))
        .await;
        assert_eq!(body_json(resp).await, json!({"result": [{"value": "midserver2"}]}));
        let resp = send(get(
            "sysevent",
            "nameSTARTSWITHlogin^sys_created_on>=2026-11-22 07:59:00^parm1=midserver2^ORDERBYDESCsys_created_on",
            "name,sys_created_on",
        ))
        .await;
        assert_eq!(
            body_json(resp).await["result"][0],
            json!({"name": "login.failed", "sys_created_on": "2026-11-22 11:45:00"})
        );
    }
}
