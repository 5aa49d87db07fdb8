//! `check --until-ok`: the remediation loop. The selected check runs again every `--every` until every
//! user it covers is clear, or until `--timeout` passes, or until Ctrl-C.
//!
//! Each round is a cycle's reads and rules (`Cycle::read`, `Cycle::evaluate`) with no side effect; a later
//! round reads the events after what the previous round read and keeps the previous round's events still in
//! the window (the carry-over is the watch's), so a watch of one user stays cheap on a busy instance. When
//! the loop ends, the last round's report gets a write-back that only resolves the open records of the users it
//! found clear (`Writes::ResolveClear`): a short window must not create, count or resolve what the configured
//! window judged; the next full check does. A watch sends no email. What the watch did is a [`Watched`], beside
//! the outcome. A round says each watched user's category, and when it changed since the last round: one line
//! for one watched user, a heading and one line per user for several (`present/round.rs`).
//! Interrupted, nothing is written. When the rounds start is a [`Ticks`]: the clock and the signals in
//! production, injected ticks in the tests.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cycle::clock::HostClock;
use crate::cycle::{Cycle, CycleError, Meter, Observed, Outcome, Read, Writes};
use crate::domain::{Category, Report, Snapshot, WatchEnd, Watched, sn_time};

/// `--every`'s default: a MID Server's heartbeat is every 5 minutes, but a fix shows in its next login.
pub(crate) const DEFAULT_EVERY: Duration = Duration::from_secs(60);
/// `--timeout`'s default with `--until-ok`: the whole watch.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// `--window`'s default with `--until-ok`: the MID Server heartbeat.
pub(crate) const DEFAULT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// What ends the wait for the next round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Run a round now; this host's clock reads this instant (the window ends at the instance's time).
    Round(DateTime<Utc>),
    /// `--timeout` passed.
    TimedOut,
    /// Ctrl-C (SIGINT) or SIGTERM.
    Interrupted,
}

/// When the rounds of a watch start.
pub trait Ticks: Send {
    /// Waits for the next round (or the end of the watch).
    fn next(&mut self) -> impl Future<Output = Wake> + Send;
}

/// Where the rounds' lines go: stdout before the report, or stderr with `--format json` (stdout then holds
/// only the report). A closed stream is ignored: the report says what happened.
pub(crate) fn say(format: crate::present::Format) -> impl FnMut(&str) + Send {
    use std::io::Write as _;
    move |line: &str| {
        let _ = match format {
            crate::present::Format::Text => writeln!(std::io::stdout(), "{line}"),
            crate::present::Format::Json => writeln!(std::io::stderr(), "{line}"),
        };
    }
}

/// The production clock: a round every `every` until `timeout` from now, ended early by SIGINT or SIGTERM.
pub(crate) struct Clock {
    every: Duration,
    deadline: tokio::time::Instant,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Clock {
    /// Installs the signal handlers now, so that a Ctrl-C during a round ends the watch after it.
    pub(crate) fn start(every: Duration, timeout: Duration) -> std::io::Result<Clock> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Clock {
            every,
            deadline: tokio::time::Instant::now() + timeout,
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }
}

impl Ticks for Clock {
    async fn next(&mut self) -> Wake {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return Wake::TimedOut;
        }
        // The last round runs at the deadline, not after it.
        let at = (now + self.every).min(self.deadline);
        tokio::select! {
            () = tokio::time::sleep_until(at) => Wake::Round(Utc::now()),
            _ = self.interrupt.recv() => Wake::Interrupted,
            _ = self.terminate.recv() => Wake::Interrupted,
        }
    }
}

/// Runs the watch: the first round now (this host's clock reading `first`), the others when `ticks` says.
/// `say` gets each round's line. The cycle's `timeout` bounds each round (and the final side effects), not the watch. The outcome is the
/// last round's, with its side effects, and what the watch did; `Err` when no round could read the instance
/// (or a name is unknown).
pub async fn watch(
    cycle: Cycle<'_>,
    every: Duration,
    first: DateTime<Utc>,
    ticks: &mut impl Ticks,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<(Outcome, Watched), CycleError> {
    let mut log = Rounds { watched: BTreeSet::new(), categories: BTreeMap::new(), lines: Vec::new(), say };
    let mut last = Last { meter: Meter::start(cycle.client()), observed: round(cycle, first, None).await? };
    // Said by the instance's clock, as every time of the report.
    let started = last.observed.report.window.end;
    let mut rounds = 1;
    log.tell(rounds, &last.observed);
    let ended = loop {
        // Clear: no finding, and no early warning either (a fix of a stale password is watched until it holds).
        let report = &last.observed.report;
        if report.findings.is_empty() && report.warnings.is_empty() {
            break WatchEnd::Clear;
        }
        let now = match ticks.next().await {
            Wake::Round(at) => at,
            Wake::TimedOut => break WatchEnd::TimedOut,
            Wake::Interrupted => break WatchEnd::Interrupted,
        };
        rounds += 1;
        let meter = Meter::start(cycle.client());
        match round(cycle, now, Some(&last.observed.snapshot)).await {
            Ok(observed) => {
                log.tell(rounds, &observed);
                last = Last { observed, meter };
            }
            Err(e @ CycleError::UnknownName(_)) => return Err(e),
            Err(e) => {
                // A round that could not read the instance changes nothing; the next one tries again.
                let error = e.to_string();
                let error = crate::escape::clean(crate::present::json::first_line(&error));
                log.say(format!("round {rounds}: {error}; trying again at the next round"));
            }
        }
    };
    // The watch's short window judges only whether the watched users are clear: its write-back resolves their
    // records and nothing else, and it sends no email and posts no alert (their state is of the configured
    // window's findings).
    let mut opts = cycle.options().clone();
    opts.no_email = true;
    opts.no_alerts = true;
    if ended == WatchEnd::Interrupted {
        opts.no_write = true;
    }
    let writes = Writes::ResolveClear(log.clear(&last.observed.report));
    let last_cycle = cycle.with_options(&opts);
    let outcome = last_cycle.conclude(last.observed.report, &writes, last_cycle.deadline(), last.meter).await;
    let every = humantime::format_duration(every).to_string();
    Ok((outcome, Watched { ended, rounds, lines: log.lines, started, every }))
}

/// One round: the cycle's reads and rules for the window ending at the instance's time (`now` is this host's
/// clock), within the cycle's timeout. After `previous` (the last round that could read), the events are read
/// only after what it read, and its events still in the window are kept.
async fn round(cycle: Cycle<'_>, now: DateTime<Utc>, previous: Option<&Snapshot>) -> Result<Observed, CycleError> {
    let deadline = cycle.deadline();
    let resume = previous.and_then(|p| p.read_until);
    let Read { mut snapshot, window, now, resumed } = cycle.read(HostClock::reads(now), resume, deadline).await?;
    if let (Some(previous), Some(_)) = (previous, resumed) {
        snapshot.carry_from(previous, &window);
    }
    let mut report = cycle.evaluate(&snapshot, window, &now);
    if let (Some(start), Some(from)) = (resumed, snapshot.read_from) {
        report.notes.push(format!(
            "A later round of a watch: the events after {} UTC were read, the earlier ones kept; the event counts \
             cover everything read since {} UTC.",
            sn_time::format(start),
            sn_time::format(from)
        ));
    }
    Ok(Observed { report, snapshot })
}

/// The last round that could read the instance.
struct Last {
    observed: Observed,
    meter: Meter,
}

/// The rounds' lines: said as they come, kept for the report.
struct Rounds<'s> {
    /// The selected users, or (watching everyone) every user found so far.
    watched: BTreeSet<String>,
    /// Each watched user's category in the last round that could read, when it had a finding.
    categories: BTreeMap<String, Category>,
    lines: Vec<String>,
    say: &'s mut (dyn FnMut(&str) + Send),
}

impl Rounds<'_> {
    /// Says round `round`: one line for one watched user, a heading and a line per user for several.
    fn tell(&mut self, round: u32, observed: &Observed) {
        let report = &observed.report;
        match &report.selected_users {
            Some(users) => self.watched.extend(users.iter().cloned()),
            None => self.watched.extend(report.findings.iter().map(|f| f.user.clone())),
        }
        let lines = if self.watched.is_empty() {
            vec!["no findings".to_string()]
        } else {
            crate::present::round::lines(round, report, &observed.snapshot, &self.watched, &self.categories)
        };
        self.categories = report.findings.iter().map(|f| (f.user.clone(), f.category)).collect();
        for line in lines {
            self.say(line);
        }
    }

    /// The watched users `report` finds clear.
    fn clear(&self, report: &Report) -> Vec<String> {
        self.watched.iter().filter(|u| !report.flags(u)).cloned().collect()
    }

    fn say(&mut self, line: String) {
        (self.say)(&line);
        self.lines.push(line);
    }
}
