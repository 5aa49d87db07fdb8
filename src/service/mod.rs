//! `midwatch run`: the service. A thin loop around the same [`Cycle::check`] that `check` runs once.
//!
//! ```text
//! cron job (UTC) ──Tick──┐
//!                        ├─▶ Inbox ─▶ worker ─ Tick ──▶ [jitter] ─▶ Cycle::check ─▶ summary line, metrics, STATUS=
//! events: Signals ───────┘                    ├ Reload ▶ re-read the config; an invalid one is logged, the old kept
//!   (or a test's channel)                     └ Stop ──▶ STOPPING=1, let a running cycle finish (≤ 30 s), return
//! ```
//!
//! [`run`] does not install signal handlers: its events come in as a stream. The CLI passes
//! `Signals`; a test passes a channel of its own and sends the ticks itself, instead of waiting
//! for a cron second, with tokio's clock paused where it measures the grace period or the jitter.
//! The schedule (`schedule.rs`) adds its ticks to the same inbox.
//!
//! One task runs cycles, one after another, and reads the inbox between and during cycles: a cycle
//! future owns its config and client, so a reload never changes a cycle half way; the ticks that
//! come during a cycle start one more cycle when it ends, not one each; a stop lets the running
//! cycle finish within [`STOP_GRACE`], and a second stop drops it at once. Dropping is safe: a
//! cycle's reads have no side effect and each write it makes is logged as it is made.

mod alerting;
mod event;
mod metrics;
mod schedule;
mod signals;
mod systemd;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{FutureExt, Stream};
use tokio::sync::mpsc;
use tracing::{Instrument, Span, debug, error, info, info_span, warn};

use crate::alerts::AlertsOutcome;
use crate::config::{Config, LogFormat};
use crate::cycle::{self, Cycle, CycleError, Outcome, Overrides};
use crate::snow::{Client, RetryPolicy};
use event::Inbox;
use metrics::Metrics;
use schedule::Schedule;

pub use event::Event;
pub(crate) use signals::Signals;

/// How long a stop waits for a running cycle before dropping it. The units'
/// `TimeoutStopSec=` leaves room for it.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// The service could not start (bad config, state directory, scheduler, signal handlers). The
/// reason has already been logged, or printed on stderr when logging was not set up yet; the CLI
/// maps this to exit status 3 (UNKNOWN, as for `check`).
#[derive(Debug, thiserror::Error)]
#[error("cannot start: {0}")]
pub struct CannotStart(pub String);

/// Runs the service on the config file at `config_path`, `overrides` applied to every cycle, until `events`
/// brings an [`Event::Stop`]; `Ok` after a clean stop. The ticks of the configured schedule are merged with
/// `events`; if `events` ends, the service goes on with its schedule.
pub async fn run(
    config_path: &Path,
    overrides: Overrides,
    events: impl Stream<Item = Event> + Unpin,
) -> Result<(), CannotStart> {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            crate::logging::init("info", LogFormat::Text, "info", crate::logging::Sink::Stderr);
            return Err(cannot_start(one_line(&e)));
        }
    };
    crate::logging::init(&config.log.level, config.log.format, "info", crate::logging::Sink::Stderr);
    let (ticks, tick_inbox) = mpsc::channel(schedule::TICK_BACKLOG);
    match Service::start(config_path, overrides, config, ticks).await {
        Ok(service) => {
            service.serve(Inbox::new(events, tick_inbox)).await;
            Ok(())
        }
        Err(e) => Err(cannot_start(one_line(&format!("{e:#}")))),
    }
}

/// Why a cycle of the service did not complete; the service goes on with the next.
#[derive(Debug, thiserror::Error)]
enum CycleFailed {
    #[error("{}", one_line(.0))]
    Error(CycleError),
    #[error("the cycle panicked: {0}")]
    Panicked(String),
}

fn cannot_start(reason: String) -> CannotStart {
    error!("cannot start: {reason}");
    CannotStart(reason)
}

struct Service {
    path: PathBuf,
    overrides: Overrides,
    config: Arc<Config>,
    client: Client,
    schedule: Schedule,
    metrics: Metrics,
    /// Cycles started since the service started.
    cycles: u64,
    /// The last cycle's result, for STATUS.
    last_result: Option<String>,
    /// The cycle in flight and when it started, for STATUS.
    running: Option<(u64, DateTime<Utc>)>,
}

/// How a cycle left the service.
enum Next {
    /// Wait for the next event.
    Idle,
    /// Ticks came during the cycle: start one more cycle now.
    Due,
    Stop,
}

impl Service {
    async fn start(
        path: &Path,
        overrides: Overrides,
        config: Config,
        ticks: mpsc::Sender<()>,
    ) -> anyhow::Result<Service> {
        prepare_state_directory(&config.state_directory)?;
        let client = cycle::client(&config, RetryPolicy::default())?;
        let schedule = Schedule::start(&config.check.schedule, ticks).await?;
        let metrics = Metrics::new(&config.instance.name, config.metrics.textfile.as_deref());
        warn_if_textfile_directory_missing(&config);
        config.log_warnings();
        Ok(Service {
            path: path.to_path_buf(),
            overrides,
            config: Arc::new(config),
            client,
            schedule,
            metrics,
            cycles: 0,
            last_result: None,
            running: None,
        })
    }

    async fn serve<S: Stream<Item = Event> + Unpin>(mut self, mut inbox: Inbox<S>) {
        let status = self.status_text().await;
        info!(
            "midwatch {} started for {} as {}: schedule \"{}\" (UTC), window {}, jitter {}; {status}",
            env!("CARGO_PKG_VERSION"),
            self.config.instance.url,
            self.config.instance.auth.account(),
            self.schedule.expression(),
            humantime::format_duration(self.check_options().window),
            humantime::format_duration(self.config.check.jitter),
        );
        systemd::ready(&status);
        let watchdog = systemd::spawn_watchdog();
        let mut next = Next::Idle;
        loop {
            if let Next::Idle = next {
                match inbox.next().await {
                    Event::Tick => {}
                    Event::Reload => {
                        self.reload().await;
                        continue;
                    }
                    Event::Stop(signal) => {
                        self.stopping(signal, None);
                        break;
                    }
                }
            }
            next = self.cycle(&mut inbox).await;
            if let Next::Stop = next {
                break;
            }
        }
        self.schedule.shutdown().await;
        if let Some(w) = watchdog {
            w.abort();
        }
        info!("midwatch stopped");
    }

    /// Runs one cycle, reading the inbox meanwhile: the jitter, the cycle itself (let finish within the grace
    /// period when a stop comes), then what it did.
    async fn cycle<S: Stream<Item = Event> + Unpin>(&mut self, inbox: &mut Inbox<S>) -> Next {
        self.cycles += 1;
        let n = self.cycles;
        let span = info_span!("cycle", n);
        // Ticks during the jitter and the cycle: each would have started this very cycle.
        let mut missed = match self.jitter(inbox, &span).await {
            Some(missed) => missed,
            None => return Next::Stop,
        };
        let started = Instant::now();
        let (stop, ticks) = self.run_cycle(inbox, n, &span).await;
        missed += ticks;
        if stop {
            return Next::Stop;
        }
        if missed > 0 {
            span.in_scope(|| {
                warn!(
                    "{missed} scheduled start(s) passed while cycle {n} ran ({} s): starting one cycle now, \
                     the schedule may be too tight for the instance",
                    started.elapsed().as_secs()
                )
            });
        }
        let status = self.status_text().await;
        systemd::status(&status);
        if missed > 0 { Next::Due } else { Next::Idle }
    }

    /// Waits the jitter before a cycle, reading the inbox: the ticks that came meanwhile, or `None` when a
    /// stop came.
    async fn jitter<S: Stream<Item = Event> + Unpin>(&mut self, inbox: &mut Inbox<S>, span: &Span) -> Option<u64> {
        let mut missed = 0u64;
        let delay = schedule::jitter(self.config.check.jitter);
        if delay.is_zero() {
            return Some(missed);
        }
        span.in_scope(|| debug!("waiting {} (jitter) before starting", humantime::format_duration(delay)));
        let mut sleep = pin!(tokio::time::sleep(delay));
        loop {
            tokio::select! {
                biased;
                event = inbox.next() => match event {
                    Event::Tick => missed += 1,
                    Event::Reload => self.reload().await,
                    Event::Stop(signal) => {
                        self.stopping(signal, None);
                        return None;
                    }
                },
                () = &mut sleep => return Some(missed),
            }
        }
    }

    /// Runs cycle `n` and records it, reading the inbox meanwhile: whether a stop came, and the ticks that
    /// came.
    async fn run_cycle<S: Stream<Item = Event> + Unpin>(
        &mut self,
        inbox: &mut Inbox<S>,
        n: u64,
        span: &Span,
    ) -> (bool, u64) {
        let (config, client, opts) = (Arc::clone(&self.config), self.client.clone(), self.check_options());
        // One refused login per cycle at most: the credentials are proven again before the cycle's reads fan out.
        client.auth().reprove();
        let started_at = Utc::now();
        let started = Instant::now();
        let requests_before = client.stats().by_status();
        span.in_scope(|| {
            debug!(
                "cycle {n} starting: window {} ending at the instance's time (this host's clock reads {})",
                humantime::format_duration(opts.window),
                started_at.format("%Y-%m-%dT%H:%M:%SZ")
            )
        });
        self.running = Some((n, started_at));
        systemd::status(&self.status_text().await);
        let run = {
            let client = client.clone();
            // A panic (a bug, or data nobody foresaw) fails this cycle, not the service.
            AssertUnwindSafe(async move { Cycle::new(&config, &client, &opts).check(started_at).await })
                .catch_unwind()
                .map(|caught| match caught {
                    Ok(result) => result.map_err(CycleFailed::Error),
                    Err(panic) => Err(CycleFailed::Panicked(panic_message(panic.as_ref()))),
                })
                .instrument(span.clone())
        };
        let mut run = pin!(run);
        let (mut stop, mut missed, mut result) = (false, 0u64, None);
        while result.is_none() && !stop {
            tokio::select! {
                // A cycle that is done is recorded, even when an event came at the same time.
                biased;
                r = &mut run => result = Some(r),
                event = inbox.next() => match event {
                    Event::Tick => missed += 1,
                    Event::Reload => self.reload().await,
                    Event::Stop(signal) => {
                        self.stopping(signal, Some(n));
                        stop = true;
                    }
                },
            }
        }
        if stop {
            let abandoned = "each write it made is logged above, and the next cycle reconciles ecc_agent_issue again";
            match finish_within(run, STOP_GRACE, inbox.next_stop()).await {
                Finish::Finished(r) => result = Some(r),
                Finish::GraceExpired => span.in_scope(|| {
                    warn!("cycle {n} did not finish within {} s and was abandoned; {abandoned}", STOP_GRACE.as_secs())
                }),
                Finish::Interrupted(signal) => span.in_scope(|| {
                    warn!("{signal} received again: cycle {n} dropped unfinished, stopping at once; {abandoned}")
                }),
            }
        }
        self.running = None;
        self.metrics.add_requests(&requests_before, &client.stats().by_status());
        if let Some(result) = result {
            let alerted = self.alert_failure(&result).instrument(span.clone()).await;
            span.in_scope(|| self.record(started_at, started.elapsed(), result, alerted));
        }
        (stop, missed)
    }

    /// Logs the cycle's one line, updates the metrics (with what the alerts of a failed cycle did) and what
    /// STATUS will say.
    fn record(
        &mut self,
        started_at: DateTime<Utc>,
        elapsed: Duration,
        result: Result<Outcome, CycleFailed>,
        failure_alerted: Option<AlertsOutcome>,
    ) {
        self.metrics.add_alerts(failure_alerted.as_ref());
        match result {
            Ok(outcome) => {
                info!("{}", outcome.summary_line());
                self.metrics.add_alerts(outcome.alerts());
                let report = &outcome.report;
                self.metrics.cycle_succeeded(started_at, outcome.duration, report.status, &report.summary);
                self.metrics.add_dropped_emails(outcome.email().map_or(0, |e| e.dropped.len()));
                let line = report.status_line();
                let line = line.split_once(" | ").map_or(line.as_str(), |(status, _perfdata)| status);
                self.last_result = Some(format!("last cycle {}: {line}", format_time(started_at)));
            }
            Err(e) => {
                error!("cycle failed after {} ms: {e}", elapsed.as_millis());
                self.metrics.cycle_failed(started_at, elapsed);
                self.last_result = Some(format!("last cycle {} FAILED: {e}", format_time(started_at)));
            }
        }
        if let Some(path) = &self.config.metrics.textfile
            && let Err(e) = self.metrics.write(path)
        {
            warn!("cannot write the metrics textfile {}: {e}", path.display());
        }
    }

    fn stopping(&self, signal: &str, running: Option<u64>) {
        match running {
            None => {
                info!("{signal} received: stopping");
                systemd::stopping("stopping");
            }
            Some(n) => {
                info!(
                    "{signal} received: stopping once cycle {n} finishes (at most {} s; a second signal stops at once)",
                    STOP_GRACE.as_secs()
                );
                systemd::stopping(&format!("stopping: waiting for cycle {n} to finish"));
            }
        }
    }

    /// SIGHUP: re-reads the config file; an invalid one is logged and the running one kept.
    async fn reload(&mut self) {
        systemd::reloading();
        info!("SIGHUP received: reloading {}", self.path.display());
        match self.apply(Config::load(&self.path)).await {
            Ok(()) => info!(
                "configuration reloaded: schedule \"{}\" (UTC), window {}, jitter {}",
                self.schedule.expression(),
                humantime::format_duration(self.check_options().window),
                humantime::format_duration(self.config.check.jitter),
            ),
            Err(e) => error!("configuration not reloaded, keeping the running one: {}", one_line(&format!("{e:#}"))),
        }
        let status = self.status_text().await;
        systemd::ready(&status);
    }

    /// Everything that can fail comes before anything is replaced.
    async fn apply(&mut self, loaded: Result<Config, crate::config::ConfigError>) -> anyhow::Result<()> {
        let config = loaded?;
        config.log_warnings();
        prepare_state_directory(&config.state_directory)?;
        let client = cycle::client(&config, RetryPolicy::default())?;
        self.schedule.replace(&config.check.schedule).await?;
        let old = &self.config;
        if config.log.level != old.log.level || config.log.format != old.log.format {
            warn!("[log] changes take effect when midwatch restarts");
        }
        if config.instance.name != old.instance.name || config.metrics.textfile != old.metrics.textfile {
            self.metrics = Metrics::new(&config.instance.name, config.metrics.textfile.as_deref());
        }
        self.config = Arc::new(config);
        self.client = client;
        warn_if_textfile_directory_missing(&self.config);
        Ok(())
    }

    async fn status_text(&mut self) -> String {
        if let Some((n, since)) = self.running {
            return format!("cycle {n} running since {}", format_time(since));
        }
        let next = match self.schedule.next_run().await {
            Some(at) if at > Utc::now() => format!("next cycle {}", format_time(at)),
            _ => "next cycle due".to_string(),
        };
        match &self.last_result {
            Some(last) => format!("{last}; {next}"),
            None => format!("no cycle yet; {next}"),
        }
    }
}

/// How a running cycle ended after a stop.
#[derive(Debug, PartialEq)]
enum Finish<T> {
    Finished(T),
    /// [`STOP_GRACE`] passed first; the cycle was dropped.
    GraceExpired,
    /// A second stop (this signal) came first; the cycle was dropped.
    Interrupted(&'static str),
}

/// Waits for `work` at most `grace`, or until `interrupt` names a second signal.
async fn finish_within<F: Future>(
    work: Pin<&mut F>,
    grace: Duration,
    interrupt: impl Future<Output = &'static str>,
) -> Finish<F::Output> {
    tokio::select! {
        biased;
        r = work => Finish::Finished(r),
        signal = interrupt => Finish::Interrupted(signal),
        () = tokio::time::sleep(grace) => Finish::GraceExpired,
    }
}

/// Creates the state directory (0700) when missing, and proves it writable now rather than at the
/// first write of the email outbox.
fn prepare_state_directory(dir: &Path) -> anyhow::Result<()> {
    let hint = "set [state] directory, or run under the unit, whose StateDirectory= provides it";
    if !dir.is_dir() {
        crate::atomic_file::create_private_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot create the state directory {}: {e} ({hint})", dir.display()))?;
        info!("created the state directory {}", dir.display());
    }
    crate::atomic_file::can_create_in(dir)
        .map_err(|e| anyhow::anyhow!("the state directory {} is not writable: {e} ({hint})", dir.display()))
}

fn warn_if_textfile_directory_missing(config: &Config) {
    let Some(path) = &config.metrics.textfile else { return };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        warn!(
            "[metrics] textfile {}: the directory {} does not exist; no metrics are written until it does",
            path.display(),
            dir.display()
        );
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn format_time(at: DateTime<Utc>) -> String {
    format!("{} UTC", crate::domain::sn_time::format(at))
}

/// A multi-line message as one journal entry.
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stop_lets_the_cycle_finish_within_the_grace_period() {
        let work = pin!(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "done"
        });
        assert_eq!(finish_within(work, STOP_GRACE, std::future::pending()).await, Finish::Finished("done"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cycle_longer_than_the_grace_period_is_dropped() {
        let started = tokio::time::Instant::now();
        let work = pin!(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "done"
        });
        assert_eq!(finish_within(work, STOP_GRACE, std::future::pending()).await, Finish::GraceExpired);
        assert_eq!(started.elapsed(), STOP_GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_drops_the_cycle_at_once() {
        let work = pin!(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "done"
        });
        let second_signal = tokio::time::sleep(Duration::from_secs(1)).map(|()| "SIGINT");
        assert_eq!(finish_within(work, STOP_GRACE, second_signal).await, Finish::Interrupted("SIGINT"));
    }

    #[test]
    fn the_state_directory_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("a/midwatch");
        prepare_state_directory(&state).expect("created");
        let mode = std::fs::metadata(&state).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        assert_eq!(std::fs::read_dir(&state).expect("read_dir").count(), 0, "the probe file is removed");
    }

    #[test]
    fn a_multi_line_error_becomes_one_line() {
        assert_eq!(one_line(&"a.toml: first\n  a.toml: second\n"), "a.toml: first; a.toml: second");
    }
}
