//! When cycles start: a tokio-cron-scheduler job in UTC that only *sends* a tick.
//!
//! The scheduler spawns a new run of a job on every tick without waiting for the last one, and its
//! `shutdown()` neither waits for nor cancels running jobs. So the job body does no work: it puts a
//! tick in the worker's [`Inbox`](super::event::Inbox), and the one worker runs cycles one after
//! another, counting the ticks that arrive during a cycle as a single late start.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_cron_scheduler::job::JobId;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// Ticks the worker has not read yet. It reads them during cycles too, so a backlog only builds up
/// while it is stuck; the ticks beyond this many are dropped, as they would start one cycle anyway.
pub(crate) const TICK_BACKLOG: usize = 16;

/// The running scheduler and its one job.
pub(crate) struct Schedule {
    scheduler: JobScheduler,
    job: JobId,
    expression: String,
    ticks: mpsc::Sender<()>,
}

impl Schedule {
    /// Starts the scheduler with one job that sends a tick into `ticks` on `expression` (UTC).
    pub(crate) async fn start(expression: &str, ticks: mpsc::Sender<()>) -> Result<Schedule, ScheduleError> {
        let scheduler = JobScheduler::new().await.map_err(ScheduleError::Scheduler)?;
        let job = scheduler.add(tick_job(expression, &ticks)?).await.map_err(ScheduleError::Scheduler)?;
        scheduler.start().await.map_err(ScheduleError::Scheduler)?;
        Ok(Schedule { scheduler, job, expression: expression.to_string(), ticks })
    }

    pub(crate) fn expression(&self) -> &str {
        &self.expression
    }

    /// Replaces the job when the expression changed; returns whether it did. On error the old job
    /// stays in place.
    pub(crate) async fn replace(&mut self, expression: &str) -> Result<bool, ScheduleError> {
        if expression == self.expression {
            return Ok(false);
        }
        let job = tick_job(expression, &self.ticks)?;
        let id = self.scheduler.add(job).await.map_err(ScheduleError::Scheduler)?;
        if let Err(e) = self.scheduler.remove(&self.job).await {
            // Two jobs would only send more ticks, which the worker coalesces; still, undo.
            let _ = self.scheduler.remove(&id).await;
            return Err(ScheduleError::Scheduler(e));
        }
        self.job = id;
        self.expression = expression.to_string();
        Ok(true)
    }

    /// When the job fires next, if the scheduler knows.
    pub(crate) async fn next_run(&mut self) -> Option<DateTime<Utc>> {
        self.scheduler.next_tick_for_job(self.job).await.ok().flatten()
    }

    /// Stops ticking. Runs of the job are instantaneous, so there is nothing to wait for.
    pub(crate) async fn shutdown(&mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::debug!("scheduler shutdown: {e}");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ScheduleError {
    #[error("[check] schedule = \"{0}\" {1}")]
    Expression(String, String),
    #[error("the scheduler failed: {0}")]
    Scheduler(JobSchedulerError),
}

fn tick_job(expression: &str, ticks: &mpsc::Sender<()>) -> Result<Job, ScheduleError> {
    crate::config::validate_schedule(expression).map_err(|e| ScheduleError::Expression(expression.to_string(), e))?;
    let ticks = ticks.clone();
    Job::new_async(expression, move |_, _| {
        // Never waits: a full backlog already holds a start, and a closed one means the worker is gone.
        if let Err(mpsc::error::TrySendError::Full(())) = ticks.try_send(()) {
            tracing::debug!("{TICK_BACKLOG} ticks not read yet; this one is dropped");
        }
        Box::pin(async {})
    })
    .map_err(|e| ScheduleError::Expression(expression.to_string(), e.to_string()))
}

/// How many of the schedule's next starts [`alert_lifetime`] looks at for its longest gap: a day's worth of
/// an hourly schedule, and enough to see the long gap of one like `0 0 8,12 * * *`.
const GAPS_SEEN: usize = 32;

/// How long an alert posted by a cycle lasts unless a later cycle posts it again: three of the schedule's
/// longest gaps between two starts (among its next [`GAPS_SEEN`]), plus the jitter; `None` when the
/// expression fires fewer than twice more.
pub(crate) fn alert_lifetime(expression: &str, jitter: Duration) -> Option<Duration> {
    let mut job = Job::new_async(expression, |_, _| Box::pin(async {})).ok()?;
    let cron = job.job_data().ok()?.schedule()?;
    let mut at = cron.find_next_occurrence(&Utc::now(), false).ok()?;
    let mut longest = chrono::TimeDelta::zero();
    for _ in 0..GAPS_SEEN {
        let Ok(next) = cron.find_next_occurrence(&at, false) else { break };
        longest = longest.max(next - at);
        at = next;
    }
    let gap = longest.to_std().ok().filter(|g| !g.is_zero())?;
    Some(gap * crate::cycle::ALERT_LIFETIME_CYCLES + jitter)
}

/// A random delay in `0..max` (zero for zero). `RandomState` is seeded randomly per process and
/// per call, which is plenty to spread the instances of a fleet; the clock is mixed in for good
/// measure.
pub(crate) fn jitter(max: Duration) -> Duration {
    let Ok(max_nanos) = u64::try_from(max.as_nanos()) else {
        return max;
    };
    if max_nanos == 0 {
        return Duration::ZERO;
    }
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default());
    Duration::from_nanos(hasher.finish() % max_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_below_its_bound_and_varies() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        let max = Duration::from_secs(60);
        let draws: Vec<Duration> = (0..50).map(|_| jitter(max)).collect();
        assert!(draws.iter().all(|d| *d < max));
        assert!(draws.iter().any(|d| *d != draws[0]), "50 draws were all {:?}", draws[0]);
    }

    #[test]
    fn an_alert_lasts_three_of_the_longest_gaps_of_the_schedule_and_the_jitter() {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(alert_lifetime("0 0 */4 * * *", Duration::ZERO), Some(hours(12)));
        assert_eq!(
            alert_lifetime("0 0 8,12 * * *", Duration::from_secs(300)),
            Some(hours(60) + Duration::from_secs(300))
        );
        assert_eq!(alert_lifetime("*/2 * * * * *", Duration::ZERO), Some(Duration::from_secs(6)));
        assert_eq!(alert_lifetime("not cron", Duration::ZERO), None);
    }

    #[tokio::test]
    async fn an_invalid_expression_keeps_the_running_job() {
        let (ticks, _read) = mpsc::channel(TICK_BACKLOG);
        let mut schedule = Schedule::start("0 0 0 1 1 *", ticks).await.expect("start");
        let err = schedule.replace("every day at noon").await.expect_err("not cron");
        assert!(err.to_string().contains("is not a cron expression"), "{err}");
        assert_eq!(schedule.expression(), "0 0 0 1 1 *");
        assert!(schedule.next_run().await.is_some());
        assert!(schedule.replace("0 0 12 * * *").await.expect("valid"));
        assert_eq!(schedule.expression(), "0 0 12 * * *");
        schedule.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_job_sends_a_tick_every_second() {
        let (ticks, mut read) = mpsc::channel(TICK_BACKLOG);
        let mut schedule = Schedule::start("* * * * * *", ticks).await.expect("start");
        tokio::time::timeout(Duration::from_secs(5), read.recv()).await.expect("a tick within 5 s");
        schedule.shutdown().await;
    }
}
