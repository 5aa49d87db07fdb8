//! A simulated ServiceNow instance: a stateful Table API served on loopback.
//!
//! Used by `midwatch demo` and by the integration tests. It mimics the real instance's JSON shapes,
//! errors and paging headers (see `docs/servicenow.md` §2), understands a strict subset of encoded
//! queries ([`query`]) and can inject faults ([`Fault`]). With [`FakeInstance::enable_oauth`] it also
//! issues OAuth tokens at `/oauth_token.do` ([`oauth`]) and accepts them on the API. It has its own clock
//! (real time, stopped with [`FakeInstance::set_clock`], or off the host's with
//! [`FakeInstance::set_clock_ahead`]): its writes are dated by it, and every answer's `Date` header says it
//! (none with [`FakeInstance::set_date_header`] off).
//!
//! The `midwatch-sim` binary serves the demo data set as a process of its own, with an SMTP server and a ready
//! midwatch configuration on request ([`rehearsal`]).

mod dataset;
pub mod edits;
pub mod events;
pub mod generate;
pub mod oauth;
pub mod query;
pub mod rehearsal;
mod server;
mod shared;
pub mod smtp;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use dataset::{Dataset, REFERENCE_TIME};
pub use events::EventLog;
pub use oauth::OAuthApp;
pub use server::BATCH_FAULT_TABLE;

/// What the simulated instance makes each answer cost, as the benchmark's latency model: a round
/// trip per request, a cost per row returned (or counted by the Aggregate API), and server time per
/// Batch API sub-request, which the instance serves one after another. Zero by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostModel {
    pub per_request: Duration,
    pub per_row: Duration,
    pub per_batch_item: Duration,
}

/// How much of the Aggregate API (`/api/now/stats/{table}`) the instance offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AggregateSupport {
    /// No Aggregate API: 400, as for any unknown path.
    Unavailable,
    /// Counts, and MIN/MAX of non-date fields; `sysparm_max_fields` on a date-time is ignored (the
    /// answer carries no max for it). The default: MAX of a date-time over REST is unconfirmed.
    #[default]
    NoDateMax,
    /// Counts and MIN/MAX of every field, date-times included.
    Full,
}

/// What the instance served, for the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// HTTP requests answered (a Batch API call counts once).
    pub requests: u64,
    /// Response bodies as sent: gzip-compressed when the request accepted it.
    pub wire_bytes: u64,
    /// Response bodies before compression.
    pub body_bytes: u64,
    /// Requests by endpoint (`table/<t>`, `stats/<t>`, `batch`).
    pub requests_by_endpoint: BTreeMap<String, u64>,
    /// Batch API sub-requests by endpoint.
    pub sub_requests: BTreeMap<String, u64>,
    /// Rows the Table API returned, per table, directly or inside Batch API answers.
    pub rows_returned: BTreeMap<String, u64>,
    /// Rows the Aggregate API counted, per table.
    pub rows_aggregated: BTreeMap<String, u64>,
    /// Groups the Aggregate API returned, per table.
    pub groups_returned: BTreeMap<String, u64>,
}

/// One request the fake instance received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL path, e.g. `/api/now/table/sysevent`.
    pub path: String,
    /// The query parameters, URL-decoded, in order.
    pub query: Vec<(String, String)>,
    /// The request body (lossy UTF-8); for `/oauth_token.do` with the secrets replaced by `[redacted]`.
    pub body: String,
    /// The status answered; `0` for a request that was never answered ([`Fault::ApplyThenHang`]).
    pub status: u16,
    /// When it arrived.
    pub received: std::time::Instant,
    /// From its arrival until its answer was ready to go, the latency model's delays included; zero for a
    /// request never answered.
    pub took: Duration,
    /// Its answer's body as sent (gzip-compressed when asked for).
    pub wire_bytes: u64,
    /// Rows its answer returned (or the Aggregate API counted), Batch API sub-requests included.
    pub rows: u64,
}

/// A fault to inject into the next matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Next POST to `table`: store the record, then never answer (sleep ~1 hour) so the client times out.
    ApplyThenHang { table: String },
    /// Next POST to `table`: store the record, then answer 503.
    ApplyThen503 { table: String },
    /// Next request to `table` (any method) answers this status + JSON body without touching data.
    Respond { table: String, status: u16, body: String, headers: Vec<(String, String)> },
    /// Next POST to `table` (with [`BATCH_FAULT_TABLE`]: the next Batch API call): store the record(s),
    /// then answer this instead, as a gateway that replaced the real answer with its own page would.
    ApplyThenRespond { table: String, status: u16, body: String, headers: Vec<(String, String)> },
    /// Next GET of `table`: the REST quota cancels it after `rows` rows of the page. HTTP 200, those rows,
    /// then the quota's error (docs/servicenow.md §2 item 6).
    QuotaPartial { table: String, rows: usize },
    /// Next request to `table` (with [`BATCH_FAULT_TABLE`]: the next Batch API call, after running it): the
    /// real answer, its connection closed after `bytes` bytes of the body.
    CutOff { table: String, bytes: usize },
    /// Next request to `table` (with [`BATCH_FAULT_TABLE`]: the next Batch API call, after running it): the
    /// real status and headers with only the first `bytes` bytes of the body (`0`: an empty body), sent as a
    /// complete HTTP answer (its `Content-Length` that of what is sent), as a gateway that cut the body would.
    Truncated { table: String, bytes: usize },
    /// Next Batch API call ([`BATCH_FAULT_TABLE`]): the batch's 30 s quota runs out after `serviced`
    /// sub-requests; those are run and answered, the others are left in `unserviced_requests`, not run.
    BatchQuota { serviced: usize },
}

impl Fault {
    fn table(&self) -> &str {
        match self {
            Fault::ApplyThenHang { table }
            | Fault::ApplyThen503 { table }
            | Fault::Respond { table, .. }
            | Fault::ApplyThenRespond { table, .. }
            | Fault::QuotaPartial { table, .. }
            | Fault::CutOff { table, .. }
            | Fault::Truncated { table, .. } => table,
            Fault::BatchQuota { .. } => BATCH_FAULT_TABLE,
        }
    }
}

/// Mutable state of a running fake instance.
#[derive(Debug)]
struct State {
    dataset: Dataset,
    log: Vec<RecordedRequest>,
    faults: Vec<Fault>,
    clock: Clock,
    /// Whether answers carry a `Date` header (default: yes). Set by [`FakeInstance::set_date_header`].
    date_header: bool,
    next_id: u64,
    /// Set by [`FakeInstance::enable_oauth`].
    oauth: Option<oauth::OAuthState>,
    /// Set by [`FakeInstance::set_latency`].
    latency: std::time::Duration,
    index: server::SysIdIndex,
    tally: Tally,
    cost: CostModel,
    aggregate: AggregateSupport,
    /// Set by [`FakeInstance::set_page_cap`].
    page_cap: Option<usize>,
}

/// The simulated instance's clock: what its writes' `sys_created_on`/`sys_updated_on` and its answers'
/// `Date` header say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// This host's real time.
    Real,
    /// Stopped at this instant ([`FakeInstance::set_clock`]).
    Fixed(DateTime<Utc>),
    /// This host's real time plus this (minus, when negative): an instance whose clock is off from the host's
    /// ([`FakeInstance::set_clock_ahead`]).
    Ahead(chrono::TimeDelta),
}

impl Clock {
    fn now(self) -> DateTime<Utc> {
        match self {
            Clock::Real => Utc::now(),
            Clock::Fixed(at) => at,
            Clock::Ahead(by) => Utc::now().checked_add_signed(by).unwrap_or_else(Utc::now),
        }
    }
}

/// What the request handlers share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// `http://127.0.0.1:PORT`
    base_url: String,
    /// `base64(user:password)`
    expected_credentials: String,
    /// The user and password, for the OAuth password grant.
    account: (String, String),
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake instance. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeInstance {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FakeInstance {
    /// Binds 127.0.0.1:0 and serves in a tokio task. Every request must carry HTTP basic auth
    /// `user`/`password`.
    pub async fn start(dataset: Dataset, user: &str, password: &str) -> std::io::Result<FakeInstance> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                dataset,
                log: Vec::new(),
                faults: Vec::new(),
                clock: Clock::Real,
                date_header: true,
                next_id: 0,
                oauth: None,
                latency: std::time::Duration::ZERO,
                index: server::SysIdIndex::default(),
                tally: Tally::default(),
                cost: CostModel::default(),
                aggregate: AggregateSupport::default(),
                page_cap: None,
            }),
            base_url: format!("http://{addr}"),
            expected_credentials: server::base64_encode(format!("{user}:{password}").as_bytes()),
            account: (user.to_string(), password.to_string()),
            shutdown: shutdown_rx.clone(),
        });
        let app = server::router(Arc::clone(&shared));
        let task = tokio::spawn(server::serve(listener, app, shutdown_rx));
        Ok(FakeInstance { shared, shutdown, task })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().log.clone()
    }

    /// The rows currently stored in `table` (empty if the table does not exist).
    pub fn rows(&self, table: &str) -> Vec<Map<String, Value>> {
        self.shared.lock().dataset.tables.get(table).cloned().unwrap_or_default()
    }

    /// Changes the instance behind the client's back, as an administrator (or a MID Server) would:
    /// `f` gets the stored tables.
    pub fn edit(&self, f: impl FnOnce(&mut std::collections::BTreeMap<String, Vec<Map<String, Value>>>)) {
        let mut state = self.shared.lock();
        f(&mut state.dataset.tables);
        state.index.invalidate();
    }

    /// Sets the latency model (see [`CostModel`]).
    pub fn set_cost(&self, cost: CostModel) {
        self.shared.lock().cost = cost;
    }

    /// Sets how much of the Aggregate API the instance offers.
    pub fn set_aggregate(&self, support: AggregateSupport) {
        self.shared.lock().aggregate = support;
    }

    /// Every Table API list answer (Batch API sub-requests included) carries at most `rows` rows, whatever
    /// `sysparm_limit` asks, and its `Link` header names pages of that size: an instance, or an API gateway in
    /// front of it, that caps the page.
    pub fn set_page_cap(&self, rows: usize) {
        self.shared.lock().page_cap = Some(rows.max(1));
    }

    /// What the instance served so far.
    pub fn tally(&self) -> Tally {
        self.shared.lock().tally.clone()
    }

    /// Forgets the request log and the tally (between benchmark runs).
    pub fn reset_counters(&self) {
        let mut state = self.shared.lock();
        state.log.clear();
        state.tally = Tally::default();
    }

    /// Injects a fault; it applies to the next matching request only. Several faults queue up in
    /// the order injected.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Stops the instance's clock at `now` (default: real time): the `sys_created_on`/`sys_updated_on` of
    /// writes and the `Date` header of every answer say it.
    pub fn set_clock(&self, now: DateTime<Utc>) {
        self.shared.lock().clock = Clock::Fixed(now);
    }

    /// Runs the instance's clock `by` ahead of this host's (behind when negative), as an instance whose clock
    /// differs from the host's: its writes and the `Date` header of its answers say that time.
    pub fn set_clock_ahead(&self, by: chrono::TimeDelta) {
        self.shared.lock().clock = Clock::Ahead(by);
    }

    /// The instance's time now, by its clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.lock().clock.now()
    }

    /// Whether answers carry a `Date` header (RFC 9110 §6.6.1) from the instance's clock; on by default, as
    /// every HTTP server's. Off, an answer carries none at all.
    pub fn set_date_header(&self, on: bool) {
        self.shared.lock().date_header = on;
    }

    /// Registers an OAuth client: `/oauth_token.do` issues tokens for it and the API accepts them (and, with
    /// [`OAuthApp::basic_refused`], nothing else). The password grant takes the user and password the instance
    /// was started with.
    pub fn enable_oauth(&self, app: OAuthApp) {
        self.shared.lock().oauth = Some(oauth::OAuthState::new(app));
    }

    /// Every access token issued so far stops being accepted (an administrator revoked them), though each
    /// looks valid to the client.
    pub fn revoke_access_tokens(&self) {
        if let Some(o) = self.shared.lock().oauth.as_mut() {
            o.revoke_access_tokens();
        }
    }

    /// Every refresh token issued so far is refused from now on.
    pub fn revoke_refresh_tokens(&self) {
        if let Some(o) = self.shared.lock().oauth.as_mut() {
            o.revoke_refresh_tokens();
        }
    }

    /// Every access and refresh token issued so far (for tests that look for them in outputs).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().oauth.as_ref().map(oauth::OAuthState::issued).unwrap_or_default()
    }

    /// The `grant_type` and status of every token request so far, in order.
    pub fn token_requests(&self) -> Vec<(String, u16)> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == oauth::TOKEN_PATH)
            .map(|r| {
                let grant = url::form_urlencoded::parse(r.body.as_bytes())
                    .find(|(k, _)| k == "grant_type")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                (grant, r.status)
            })
            .collect()
    }

    /// Every answer is delayed by `latency` (after the request was authorized), as a slow instance's would be.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.shared.lock().latency = latency;
    }
}

impl Drop for FakeInstance {
    fn drop(&mut self) {
        // Graceful shutdown: stop accepting, close idle connections, wake hanging handlers.
        let _ = self.shutdown.send(true);
        // If connections linger (a client keeping one open), do not keep the listener task around.
        self.task.abort();
    }
}
