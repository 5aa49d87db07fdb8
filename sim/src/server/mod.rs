//! HTTP handling of the fake instance: one fallback handler that routes by hand, so that every
//! request (including malformed ones) gets a ServiceNow-shaped answer and lands in the request log.

mod aggregate;
mod batch;
mod listen;
mod params;
mod read;
mod render;
#[cfg(test)]
mod tests;
mod write;

use aggregate::*;
pub use batch::BATCH_FAULT_TABLE;
use batch::*;
pub(super) use listen::serve;
use params::*;
use read::*;
pub(crate) use render::SysIdIndex;
use render::*;
use write::*;

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
    /// The reply with only the first `bytes` bytes of its body (fewer where a character would be split), as a
    /// complete answer ([`Fault::Truncated`]).
    fn truncated(mut self, bytes: usize) -> Reply {
        let mut end = bytes.min(self.body.len());
        while !self.body.is_char_boundary(end) {
            end -= 1;
        }
        self.body.truncate(end);
        self
    }

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

/// Every answer, with the `Date` header of the instance's clock when it is ready (unless turned off).
async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = answer(&shared, method, uri, headers, body).await;
    let date = {
        let state = shared.lock();
        state.date_header.then(|| state.clock.now())
    };
    // RFC 9110 §5.6.7's IMF-fixdate, always GMT.
    if let Some(Ok(date)) = date.map(|at| HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())) {
        response.headers_mut().insert(header::DATE, date);
    }
    response
}

async fn answer(shared: &Arc<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
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
    let received = std::time::Instant::now();
    let (outcome, model, latency, entry) = {
        let mut state = shared.lock();
        let outcome = process(shared, &mut state, &incoming);
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
            received,
            took: Duration::ZERO,
            wire_bytes: 0,
            rows: 0,
        });
        state.tally.requests += 1;
        *state.tally.requests_by_endpoint.entry(endpoint(&incoming.path)).or_default() += 1;
        (outcome, state.cost, state.latency, state.log.len() - 1)
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
            // The entry is this request's unless the log was cleared meanwhile (between benchmark runs).
            if let Some(r) = shared.lock().log.get_mut(entry).filter(|r| r.received == received) {
                r.took = received.elapsed();
                r.wire_bytes = body.len() as u64;
                r.rows = (cost.rows + cost.aggregated) as u64;
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
    let truncated = take_fault(state, table, |f| match f {
        Fault::Truncated { bytes, .. } => Some(*bytes),
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
    match (outcome, cut, truncated) {
        (Outcome::Reply(reply), Some(bytes), _) => Outcome::CutOff(reply, bytes),
        (Outcome::Reply(reply), None, Some(bytes)) => Outcome::Reply(reply.truncated(bytes)),
        (outcome, ..) => outcome,
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
