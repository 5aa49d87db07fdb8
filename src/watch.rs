//! `check --until-ok`: the remediation loop. The selected check runs again every `--every` until every
//! user it covers is clear, or until `--timeout` passes, or until Ctrl-C.
//!
//! Each round is a cycle's reads and rules (`cycle::observe`) with no side effect; a later round reads the
//! events after what the previous round read and keeps the previous round's events still in the window, so
//! a watch of one user stays cheap on a busy instance. When the loop ends, the last round's report gets the
//! side effects of a normal check (`cycle::conclude`): its records are counted, or resolved when clear.
//! Interrupted, nothing is written. When the rounds start is a [`Ticks`]: the clock and the signals in
//! production, injected ticks in the tests.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::cycle::{self, CheckOptions, CycleError, Meter, Observed, Outcome};
use crate::snow::Client;

/// `--every`'s default: a MID Server's heartbeat is every 5 minutes, but a fix shows in its next login.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);
/// `--timeout`'s default with `--until-ok`: the whole watch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// `--window`'s default with `--until-ok`: the MID Server heartbeat.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// What ends the wait for the next round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Run a round whose window ends at this instant.
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

/// How a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Every watched user is clear.
    Clear,
    TimedOut,
    Interrupted,
}

/// What a watch did, beside the last round's report.
#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    pub ended: Ended,
    pub rounds: u32,
    /// The rounds' lines, as printed.
    pub lines: Vec<String>,
    /// When the first round's window ended.
    #[serde(with = "crate::domain::sn_time")]
    pub started: DateTime<Utc>,
    /// `--every`, as humantime writes it (`1m`).
    pub every: String,
}

impl Watched {
    /// The text report's section.
    pub(crate) fn section(&self) -> String {
        let how = match self.ended {
            Ended::Clear => "every watched user is clear".to_string(),
            Ended::TimedOut => "the --timeout passed with findings still open".to_string(),
            Ended::Interrupted => "interrupted: nothing was written to ecc_agent_issue".to_string(),
        };
        format!(
            "\nWatch: {} round{} since {} UTC, every {}; {how}\n",
            self.rounds,
            if self.rounds == 1 { "" } else { "s" },
            self.started.format("%H:%M:%S"),
            self.every
        )
    }
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
pub struct Clock {
    every: Duration,
    deadline: tokio::time::Instant,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Clock {
    /// Installs the signal handlers now, so that a Ctrl-C during a round ends the watch after it.
    pub fn start(every: Duration, timeout: Duration) -> std::io::Result<Clock> {
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

/// Runs the watch: the first round at `first`, the others when `ticks` says. `say` gets each round's line.
/// `opts.timeout` bounds each round (and the final side effects), not the watch. The outcome is the last
/// round's, with its side effects; `Err` when no round could read the instance (or a name is unknown).
pub async fn watch(
    config: &Config,
    client: &Client,
    opts: &CheckOptions,
    every: Duration,
    first: DateTime<Utc>,
    ticks: &mut impl Ticks,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Outcome, CycleError> {
    let mut log = Rounds { watched: BTreeSet::new(), lines: Vec::new(), say };
    let meter = Meter::start(client);
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut last = Last { observed: cycle::observe(config, client, opts, first, None, deadline).await?, meter };
    log.tell(&last.observed);
    let mut rounds = 1;
    let ended = loop {
        if last.observed.report.findings.is_empty() {
            break Ended::Clear;
        }
        let now = match ticks.next().await {
            Wake::Round(at) => at,
            Wake::TimedOut => break Ended::TimedOut,
            Wake::Interrupted => break Ended::Interrupted,
        };
        rounds += 1;
        let meter = Meter::start(client);
        let deadline = tokio::time::Instant::now() + opts.timeout;
        match cycle::observe(config, client, opts, now, Some(&last.observed.snapshot), deadline).await {
            Ok(observed) => {
                log.tell(&observed);
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
    let mut opts = opts.clone();
    if ended == Ended::Interrupted {
        opts.no_write = true;
        opts.no_email = true;
    }
    let deadline = tokio::time::Instant::now() + opts.timeout;
    // The side effects are dated as the last round's window ends.
    let at = last.observed.report.window.end;
    let mut outcome = cycle::conclude(config, client, &opts, last.observed.report, at, deadline, last.meter).await;
    outcome.watch = Some(Watched {
        ended,
        rounds,
        lines: log.lines,
        started: first,
        every: humantime::format_duration(every).to_string(),
    });
    Ok(outcome)
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
    lines: Vec<String>,
    say: &'s mut (dyn FnMut(&str) + Send),
}

impl Rounds<'_> {
    fn tell(&mut self, observed: &Observed) {
        let report = &observed.report;
        match &report.selected_users {
            Some(users) => self.watched.extend(users.iter().cloned()),
            None => self.watched.extend(report.findings.iter().map(|f| f.user.clone())),
        }
        let line = if self.watched.is_empty() {
            "no findings".to_string()
        } else {
            crate::present::round::line(report, &observed.snapshot, &self.watched)
        };
        self.say(line);
    }

    fn say(&mut self, line: String) {
        (self.say)(&line);
        self.lines.push(line);
    }
}
