//! One check cycle: collect → evaluate → reconcile / apply → notify. `check`, `demo` and each cycle of `run`
//! call this, under the cycle's deadline, which can fail the reads but only cut the side effects short.
//! Its two halves are `observe` (collect, evaluate: no side effect) and `conclude` (write-back, email);
//! `check --until-ok` (`watch.rs`) observes in rounds and concludes once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::collect::collect;
use crate::config::Config;
use crate::domain::{Report, Scope, Snapshot, Window};
use crate::evaluate::{Context, evaluate};
use crate::notify::{self, EmailOutcome};
use crate::present::email::Links;
use crate::present::{self, Detail, Format};
use crate::snow::{ApiError, Client, ClientError, ClientOptions, RetryPolicy};
use crate::writeback::{self, WriteBack};

/// What the command line overrides of the config file (`check` and `run`; `run` never has `dry_run`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--window`, instead of `[check] window`.
    pub(crate) window: Option<Duration>,
    /// `--timeout`, instead of `[check] timeout`.
    pub(crate) timeout: Option<Duration>,
    pub(crate) dry_run: bool,
    pub(crate) no_write: bool,
    pub(crate) no_email: bool,
    /// `--user`, `--mid-server`.
    pub(crate) scope: Scope,
}

/// The switches of one cycle: the config with the overrides applied.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub window: Duration,
    pub dry_run: bool,
    /// `--no-write` or `[check] write_issues = false`.
    pub no_write: bool,
    pub no_email: bool,
    /// The whole cycle's deadline (`--timeout`, `[check] timeout`).
    pub timeout: Duration,
    /// Everyone the built-in job checks, or a selection (`--user`, `--mid-server`).
    pub scope: Scope,
}

impl CheckOptions {
    /// The overrides applied to the config: the one place the command line and the config file meet.
    pub fn new(config: &Config, overrides: &Overrides) -> CheckOptions {
        CheckOptions {
            window: overrides.window.unwrap_or(config.check.window),
            dry_run: overrides.dry_run,
            no_write: overrides.no_write || !config.check.write_issues,
            no_email: overrides.no_email,
            timeout: overrides.timeout.unwrap_or(config.check.timeout),
            scope: overrides.scope.clone(),
        }
    }

    /// The config as it is, nothing overridden.
    pub fn from_config(config: &Config) -> CheckOptions {
        CheckOptions::new(config, &Overrides::default())
    }
}

/// Why a cycle did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// A read of the instance failed: the check cannot say anything.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The deadline passed before the report was computed: nothing was written or sent.
    #[error(
        "the check did not finish within its {} deadline: it was {pending}. Raise --timeout or [check] timeout \
         if the instance is merely slow; a monitoring plugin's own limit is usually 60s",
        humantime::format_duration(*.timeout)
    )]
    Deadline { timeout: Duration, pending: String },
    /// A `--user` or `--mid-server` name matched nothing on the instance: a usage error.
    #[error("{0}")]
    UnknownName(String),
}

/// What the cycle is doing now, for the deadline's message.
#[derive(Debug)]
struct Progress {
    step: Mutex<&'static str>,
}

impl Progress {
    fn at(&self, step: &'static str) {
        if let Ok(mut s) = self.step.lock() {
            *s = step;
        }
    }

    fn describe(&self, client: &Client, requests_before: u64) -> String {
        let step = self.step.lock().map(|s| *s).unwrap_or("running");
        let answered = client.stats().requests().saturating_sub(requests_before);
        let waiting = match client.pending() {
            w if w.is_empty() => String::new(),
            w => format!(", {w}"),
        };
        format!("{step}{waiting} ({answered} request{} answered so far)", if answered == 1 { "" } else { "s" })
    }
}

/// What a cycle produced, with what it cost.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub write_back: WriteBack,
    /// `None` when no `[email]` is configured or `--no-email` was given.
    pub(crate) email: Option<EmailOutcome>,
    pub requests: u64,
    pub(crate) response_bytes: u64,
    pub(crate) duration: Duration,
    /// `check --until-ok`: the rounds before this report.
    pub watch: Option<crate::watch::Watched>,
}

impl Outcome {
    /// What this cycle's email did; `None` when no `[email]` is configured or `--no-email` was given.
    pub fn email(&self) -> Option<&EmailOutcome> {
        self.email.as_ref()
    }

    /// The one line a cycle logs: duration, requests, findings by category (and, as they land,
    /// records created/counted/resolved and the email sent or queued).
    pub(crate) fn summary_line(&self) -> String {
        let by: Vec<String> =
            self.report.summary.findings_by_category.iter().map(|(c, n)| format!("{}={n}", c.name())).collect();
        format!(
            "cycle {} in {} ms: {} requests, {} bytes; findings={} [{}]; {}; {}",
            self.report.status.label(),
            self.duration.as_millis(),
            self.requests,
            self.response_bytes,
            self.report.findings.len(),
            by.join(" "),
            self.write_back.summary(),
            self.email.as_ref().map_or_else(|| "email off".to_string(), EmailOutcome::summary)
        )
    }

    /// The report in the requested format, with what the side effects did.
    pub fn render(&self, format: Format, detail: Detail) -> String {
        match format {
            Format::Text => {
                let mut out = present::text::render(&self.report, detail, Some(self.duration));
                out.push_str(&present::text::write_back(&self.write_back, detail));
                out.push_str(&present::text::email(self.email.as_ref().map(EmailOutcome::section).as_ref()));
                if let Some(watch) = &self.watch {
                    out.push_str(&watch.section());
                }
                out
            }
            Format::Json => present::json::render(&self.report, &self.json_extra()),
        }
    }

    /// The JSON document of this cycle (`check --format json`), as a value.
    #[cfg(feature = "demo")]
    pub(crate) fn to_json(&self) -> serde_json::Value {
        present::json::document(&self.report, &self.json_extra())
    }

    fn json_extra(&self) -> serde_json::Value {
        let mut extra = serde_json::json!({
            "write_back": self.write_back,
            "email": self.email,
            "duration_seconds": (self.duration.as_secs_f64() * 1000.0).round() / 1000.0,
        });
        // Only `check --until-ok` has rounds to tell.
        if let (Some(watch), Some(fields)) = (&self.watch, extra.as_object_mut()) {
            fields.insert("watch".into(), serde_json::json!(watch));
        }
        extra
    }
}

/// Builds the Table API client for the configured instance.
pub fn client(config: &Config, retry: RetryPolicy) -> Result<Client, ClientError> {
    let i = &config.instance;
    Client::new(ClientOptions {
        base_url: i.url.clone(),
        auth: i.auth.clone(),
        timeout: i.timeout,
        page_size: i.page_size,
        concurrency: i.concurrency,
        retry,
        proxy: i.proxy.clone(),
        extra_ca: i.ca_file.clone(),
    })
}

/// What is kept of the deadline for printing the report once the side effects have used the rest.
const PRINT_RESERVE: Duration = Duration::from_millis(500);

/// Runs one cycle whose window ends at `now`, within `opts.timeout`.
///
/// The deadline bounds the reads and the evaluation: when it passes before the report is computed, the cycle
/// fails with [`CycleError::Deadline`]. Once the report is computed, the deadline can cut the side effects
/// (write-back, email) but never the report: they get what is left of it (less 500 ms, or a tenth of a short timeout, to print), and what
/// they could not finish is said in the outcome, whose status is the findings'.
pub async fn check(
    config: &Config,
    client: &Client,
    opts: &CheckOptions,
    now: DateTime<Utc>,
) -> Result<Outcome, CycleError> {
    let meter = Meter::start(client);
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let observed = observe(config, client, opts, now, None, deadline).await?;
    Ok(conclude(config, client, opts, observed.report, now, deadline, meter).await)
}

/// What a cycle's reads found: the report before any side effect, and the snapshot it was judged on (the
/// next round of `check --until-ok` reads only what is newer).
#[derive(Debug)]
pub(crate) struct Observed {
    pub(crate) report: Report,
    pub(crate) snapshot: Snapshot,
}

/// Where a cycle's cost is measured from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter {
    started: Instant,
    requests: u64,
    bytes: u64,
}

impl Meter {
    pub(crate) fn start(client: &Client) -> Meter {
        Meter { started: Instant::now(), requests: client.stats().requests(), bytes: client.stats().response_bytes() }
    }
}

/// Collect and evaluate, before `deadline`: the window ends at `now`. With `previous` (the last round of a
/// watch), the events are read only after what it read, and its events still in the window are kept.
pub(crate) async fn observe(
    config: &Config,
    client: &Client,
    opts: &CheckOptions,
    now: DateTime<Utc>,
    previous: Option<&Snapshot>,
    deadline: tokio::time::Instant,
) -> Result<Observed, CycleError> {
    let requests_before = client.stats().requests();
    let progress = Progress { step: Mutex::new("starting") };
    let reading = crate::snow::deadline::within(deadline, findings(config, client, opts, now, previous, &progress));
    let mut reading = std::pin::pin!(reading);
    tokio::select! {
        result = &mut reading => result,
        () = tokio::time::sleep_until(deadline) => {
            // Described while the reads still hold their requests, then dropped: nothing was written yet.
            let pending = progress.describe(client, requests_before);
            let timeout = opts.timeout;
            Err(CycleError::Deadline { timeout, pending })
        }
    }
}

/// The side effects of an observed report (write-back, email), within what is left of `deadline`.
pub(crate) async fn conclude(
    config: &Config,
    client: &Client,
    opts: &CheckOptions,
    mut report: Report,
    now: DateTime<Utc>,
    deadline: tokio::time::Instant,
    meter: Meter,
) -> Outcome {
    let side_deadline = deadline.checked_sub(PRINT_RESERVE.min(opts.timeout / 10)).unwrap_or(deadline);
    let (write_back, email) =
        crate::snow::deadline::within(side_deadline, side_effects(config, client, opts, &mut report, now)).await;
    Outcome {
        report,
        write_back,
        email,
        requests: client.stats().requests() - meter.requests,
        response_bytes: client.stats().response_bytes() - meter.bytes,
        duration: meter.started.elapsed(),
        watch: None,
    }
}

/// Collect and evaluate: the report, before anything is written.
async fn findings(
    config: &Config,
    client: &Client,
    opts: &CheckOptions,
    now: DateTime<Utc>,
    previous: Option<&Snapshot>,
    progress: &Progress,
) -> Result<Observed, CycleError> {
    let window = Window::ending_at(now, opts.window);
    // A later round of a watch reads the events after what the previous round read, up to now, and keeps the
    // previous round's still inside the window.
    let since = previous.and_then(|p| p.read_until).filter(|at| *at > window.start && *at < now);
    let read_window = since.map_or(window, |start| window.since(start));
    progress.at("reading the instance (roles, MID Servers, users, sysevent)");
    let mut snapshot = collect(client, &read_window, &opts.scope).await?;
    if let Some(unknown) = snapshot.selected.as_ref().and_then(|s| s.unknown()) {
        return Err(CycleError::UnknownName(unknown));
    }
    if let (Some(previous), Some(_)) = (previous, since) {
        snapshot.carry_from(previous, &window);
    }
    let ctx = Context {
        instance: &config.instance.name,
        window,
        messages: config.check.messages,
        down_for: config.check.down_for,
    };
    let mut report = evaluate(&snapshot, &ctx);
    if let (Some(start), Some(from)) = (since, snapshot.read_from) {
        report.notes.push(format!(
            "A later round of a watch: the events after {} UTC were read, the earlier ones kept; the event counts \
             cover everything read since {} UTC.",
            crate::domain::sn_time::format(start),
            crate::domain::sn_time::format(from)
        ));
    }
    Ok(Observed { report, snapshot })
}

/// Write-back and email, each cut off (and saying so) when the cycle's deadline passes. The findings' history
/// comes from the records read here.
async fn side_effects(
    config: &Config,
    client: &Client,
    opts: &CheckOptions,
    report: &mut Report,
    now: DateTime<Utc>,
) -> (WriteBack, Option<EmailOutcome>) {
    let records = match crate::snow::deadline::bounded(read_records(config, client, now)).await {
        Ok(records) => records,
        Err(_) => {
            let error = format!("the check's deadline passed while reading {}", writeback::ISSUE_TABLE);
            tracing::warn!("{error}: nothing written this cycle, no finding's history; the next cycle converges");
            Err(error)
        }
    };
    if let Ok(records) = &records {
        for f in &mut report.findings {
            f.history = Some(writeback::history(f, records, now));
        }
    }
    let write_back = write_back(config, client, opts, report, records, now).await;
    let email = match (&config.email, opts.no_email) {
        // The email state is of everyone's findings: a check of a few users would read as the others resolved.
        (Some(_), false) if report.selected_users.is_some() => {
            tracing::info!("a selected check (--user, --mid-server) sends no email; the service's cycles do");
            None
        }
        (Some(email), false) => {
            let links = Links { instance_url: config.instance.url.clone(), issue_ids: write_back.issue_ids() };
            let mode = if opts.dry_run { notify::Mode::DryRun } else { notify::Mode::Send };
            // Composing and queueing are local; delivery is bounded by the deadline `conclude` runs the side
            // effects within (the cycle's timeout, were none set).
            let deadline = crate::snow::deadline::current()
                .map_or_else(|| crate::deadline::Deadline::after(opts.timeout), crate::deadline::Deadline::at);
            let notice = notify::Notice { report, links: &links, now };
            Some(notify::notify(email, &config.state_directory, &notice, mode, deadline).await)
        }
        _ => None,
    };
    (write_back, email)
}

/// The records of our source: the open ones the plan needs and the recently resolved ones the history needs,
/// in one read. Read with `--no-write` too (the findings' history comes from them); a failure is logged and
/// leaves the findings without history.
async fn read_records(config: &Config, client: &Client, now: DateTime<Utc>) -> Result<writeback::Records, String> {
    writeback::read_records(client, &config.check.issue_source, now).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read ecc_agent_issue: nothing written this cycle, no finding's history");
        e.to_string()
    })
}

/// Reconciles the findings with the open records of our source and, unless told not to, applies
/// the plan. A failure here, or the deadline cutting it off, never changes the report or the exit status.
async fn write_back(
    config: &Config,
    client: &Client,
    opts: &CheckOptions,
    report: &Report,
    records: Result<writeback::Records, String>,
    now: DateTime<Utc>,
) -> WriteBack {
    if opts.no_write {
        return WriteBack::Disabled;
    }
    let source = config.check.issue_source.to_string();
    let open = match records {
        Ok(records) => records.open,
        Err(error) => return WriteBack::Failed { source, error },
    };
    // A selected check counts and resolves only its users' records; another user's record is left as it is.
    let open = match &report.selected_users {
        Some(users) => writeback::records_of(open, users),
        None => open,
    };
    let plan = writeback::reconcile(&report.findings, &open, &source, now);
    if opts.dry_run {
        return WriteBack::DryRun { source, plan };
    }
    let applying = writeback::apply(client, &plan, &config.check.issue_source, config.instance.batch);
    match crate::snow::deadline::bounded(applying).await {
        Ok(applied) => WriteBack::Applied { source, plan, applied },
        Err(_) => {
            tracing::warn!("the check's deadline passed while writing ecc_agent_issue; the next cycle converges");
            WriteBack::CutOff { source, plan }
        }
    }
}
