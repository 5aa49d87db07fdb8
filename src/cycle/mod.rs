//! One check cycle: collect → evaluate → reconcile / apply → notify. `check`, `demo` and each cycle of `run`
//! call [`Cycle::check`], under the cycle's deadline, which can fail the reads but only cut the side effects
//! short. Its two halves are `Cycle::observe` (collect, evaluate: no side effect) and `Cycle::conclude`
//! (write-back, email); a caller that observes in rounds (the watch of `check --until-ok`) reads with
//! `Cycle::read` and judges with `Cycle::evaluate`, and concludes once. "Now" is the instance's: the caller
//! gives the host's clock, and `Cycle::read` takes the instance's time from its first answers before it
//! makes the window (`clock.rs`).
//!
//! - `clock.rs`: whose clock "now" is, and what is said of the difference;
//! - `options.rs`: the command line's overrides merged with the config, and the client it describes;
//! - `outcome.rs`: what a cycle produced and what it cost;
//! - `side_effects.rs`: write-back, email and the alerts to `[alertmanager]`.
//!
//! A cycle knows nothing of its callers: what bounds it (the host's clock, the window's length, the
//! `Deadline`) comes in as arguments, and what it did goes out as an [`Outcome`].

pub(crate) mod clock;
mod options;
mod outcome;
mod side_effects;

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use self::clock::{HostClock, Now};
pub(crate) use self::options::ALERT_LIFETIME_CYCLES;
pub use self::options::{CheckOptions, Overrides, client};
pub(crate) use self::outcome::Meter;
pub use self::outcome::Outcome;
use crate::alerts::AlertsOutcome;
use crate::config::Config;
use crate::deadline::Deadline;
use crate::domain::{Report, Snapshot, Window};
use crate::evaluate::Context;
use crate::notify::EmailOutcome;
use crate::snow::{ApiError, Client};

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

/// What a cycle read: the snapshot, the window it was read for (a watch's later round reads only the part
/// after `resumed`), and the "now" the window ends at.
#[derive(Debug)]
pub(crate) struct Read {
    pub(crate) snapshot: Snapshot,
    pub(crate) window: Window,
    pub(crate) now: Now,
    /// Where the events' read resumed: the previous round's end, when it lay inside this window.
    pub(crate) resumed: Option<DateTime<Utc>>,
}

/// What a cycle's reads found: the report before any side effect, and the snapshot it was judged on.
#[derive(Debug)]
pub(crate) struct Observed {
    pub(crate) report: Report,
    pub(crate) snapshot: Snapshot,
}

/// What a cycle's write-back may do with the records of our source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Writes {
    /// The report's plan: create, count and resolve (a check, a cycle of `run`).
    Plan,
    /// Only resolve the open records of these users, found clear; create, count and resolve nothing else (the end
    /// of a watch: its short window must not rewrite what the configured window wrote).
    ResolveClear(Vec<String>),
}

/// What is kept of the deadline for printing the report once the side effects have used the rest.
const PRINT_RESERVE: Duration = Duration::from_millis(500);

/// One cycle's inputs: the validated config, the instance's client and the cycle's switches.
#[derive(Debug, Clone, Copy)]
pub struct Cycle<'a> {
    config: &'a Config,
    client: &'a Client,
    opts: &'a CheckOptions,
}

impl<'a> Cycle<'a> {
    pub fn new(config: &'a Config, client: &'a Client, opts: &'a CheckOptions) -> Cycle<'a> {
        Cycle { config, client, opts }
    }

    /// The cycle's switches.
    pub(crate) fn options(&self) -> &'a CheckOptions {
        self.opts
    }

    /// The same cycle with other switches.
    pub(crate) fn with_options<'b>(&self, opts: &'b CheckOptions) -> Cycle<'b>
    where
        'a: 'b,
    {
        Cycle { config: self.config, client: self.client, opts }
    }

    /// The client, for what a cycle costs.
    pub(crate) fn client(&self) -> &'a Client {
        self.client
    }

    /// The cycle's deadline, from now.
    pub(crate) fn deadline(&self) -> Deadline {
        Deadline::after(self.opts.timeout)
    }

    /// Runs one cycle, within `opts.timeout`; `now` is this host's clock, and the window ends at the instance's
    /// time (the `Date` header of its answers), which the report names when the two differ.
    ///
    /// The deadline bounds the reads and the evaluation: when it passes before the report is computed, the
    /// cycle fails with [`CycleError::Deadline`]. Once the report is computed, the deadline can cut the side
    /// effects (write-back, email) but never the report: they get what is left of it (less 500 ms, or a tenth
    /// of a short timeout, to print), and what they could not finish is said in the outcome, whose status is
    /// the findings'.
    pub async fn check(&self, now: DateTime<Utc>) -> Result<Outcome, CycleError> {
        let meter = Meter::start(self.client);
        let deadline = self.deadline();
        let observed = self.observe(HostClock::reads(now), deadline).await?;
        Ok(self.conclude(observed.report, &Writes::Plan, deadline, meter).await)
    }

    /// Collect and evaluate the window ending at the instance's time, before `deadline`.
    async fn observe(&self, host: HostClock, deadline: Deadline) -> Result<Observed, CycleError> {
        let read = self.read(host, None, deadline).await?;
        let report = self.evaluate(&read.snapshot, read.window, &read.now);
        Ok(Observed { report, snapshot: read.snapshot })
    }

    /// Reads the instance before `deadline`: first what needs no window, then, "now" taken from the instance's
    /// answers (or `host`'s clock when they carry no `Date`), the window's events — only those after `resume`
    /// when it lies inside the window (a watch's later round). A selection that names nobody on the instance
    /// is an error.
    pub(crate) async fn read(
        &self,
        host: HostClock,
        resume: Option<DateTime<Utc>>,
        deadline: Deadline,
    ) -> Result<Read, CycleError> {
        let requests_before = self.client.stats().requests();
        let progress = Progress { step: Mutex::new("starting") };
        let reading = crate::snow::deadline::within(deadline.instant(), async {
            progress.at("reading the instance (roles, MID Servers, users, sysevent)");
            let mut base = crate::collect::base(self.client, &self.opts.scope).await?;
            base.early_warnings = self.config.check.early_warnings;
            if let Some(unknown) = base.selected.as_ref().and_then(|s| s.unknown()) {
                return Err(CycleError::UnknownName(unknown));
            }
            let now = Now::of(host, self.client.date_reading());
            let window = Window::ending_at(now.at, self.opts.window);
            let resumed = resume.filter(|at| *at > window.start && *at < window.end);
            let events = resumed.map_or(window, |start| window.since(start));
            let snapshot = crate::collect::in_window(self.client, base, &events).await?;
            Ok::<_, CycleError>(Read { snapshot, window, now, resumed })
        });
        let mut reading = std::pin::pin!(reading);
        tokio::select! {
            read = &mut reading => read,
            () = deadline.passed() => {
                // Described while the reads still hold their requests, then dropped: nothing was written yet.
                let pending = progress.describe(self.client, requests_before);
                Err(CycleError::Deadline { timeout: self.opts.timeout, pending })
            }
        }
    }

    /// The rules on `snapshot`, for `window` (pure), and what is to be said of the clocks `now` came from.
    pub(crate) fn evaluate(&self, snapshot: &Snapshot, window: Window, now: &Now) -> Report {
        let check = &self.config.check;
        let ctx = Context {
            instance: &self.config.instance.name,
            window,
            messages: check.messages,
            down_for: check.down_for,
        };
        let mut report = crate::evaluate::evaluate(snapshot, &ctx);
        report.notes.extend(now.note());
        report
    }

    /// The side effects of an observed report (write-back as `writes` allows, email, alerts), within what is
    /// left of `deadline`; they are dated as the report's window ends.
    pub(crate) async fn conclude(
        &self,
        mut report: Report,
        writes: &Writes,
        deadline: Deadline,
        meter: Meter,
    ) -> Outcome {
        let side_deadline = deadline.earlier_by(PRINT_RESERVE.min(self.opts.timeout / 10));
        let now = report.window.end;
        let done = crate::snow::deadline::within(
            side_deadline.instant(),
            self.side_effects(&mut report, writes, now, side_deadline),
        )
        .await;
        // A monitoring system shows only the status line: what did not complete is named there.
        report.unfinished = done.write_back.unfinished().into_iter().collect();
        report.unfinished.extend(done.email.as_ref().and_then(EmailOutcome::unfinished).map(str::to_string));
        report.unfinished.extend(done.alerts.as_ref().and_then(AlertsOutcome::unfinished).map(str::to_string));
        meter.outcome(self.client, report, done)
    }
}
