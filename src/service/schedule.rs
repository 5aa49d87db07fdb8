//! When cycles start: a tokio-cron-scheduler job in UTC that only *signals* a tick.
//!
//! The scheduler spawns a new run of a job on every tick without waiting for the last one, and its
//! `shutdown()` neither waits for nor cancels running jobs (tokio-cron-scheduler 0.15). So the job body
//! does no work: it records the tick and wakes the one worker, which runs cycles one after another.
//! Ticks that arrive while a cycle runs leave a single wake-up behind ([`Notify`] stores at most
//! one permit), so a long cycle delays the next and a missed tick runs once, not many times.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_cron_scheduler::job::JobId;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// What the cron job shares with the worker.
#[derive(Debug, Default)]
pub(crate) struct Ticks {
    wake: Notify,
    fired: AtomicU64,
}

impl Ticks {
    fn fire(&self) {
        self.fired.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Resolves at the next tick, or at once if a tick came since the last call. Cancel safe.
    pub(crate) async fn next(&self) {
        self.wake.notified().await;
    }

    /// How many ticks have fired since the start.
    pub(crate) fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }
}

/// The running scheduler and its one job.
pub(crate) struct Schedule {
    scheduler: JobScheduler,
    job: JobId,
    expression: String,
    ticks: Arc<Ticks>,
}

impl Schedule {
    /// Starts the scheduler with one job firing on `expression` (UTC).
    pub(crate) async fn start(expression: &str, ticks: Arc<Ticks>) -> Result<Schedule, ScheduleError> {
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
            // Two jobs would only fire more ticks, which the worker coalesces; still, undo.
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

fn tick_job(expression: &str, ticks: &Arc<Ticks>) -> Result<Job, ScheduleError> {
    crate::config::validate_schedule(expression).map_err(|e| ScheduleError::Expression(expression.to_string(), e))?;
    let ticks = Arc::clone(ticks);
    Job::new_async(expression, move |_, _| {
        ticks.fire();
        Box::pin(async {})
    })
    .map_err(|e| ScheduleError::Expression(expression.to_string(), e.to_string()))
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

    #[tokio::test]
    async fn ticks_that_arrive_while_the_worker_is_busy_wake_it_once() {
        let ticks = Ticks::default();
        ticks.fire();
        ticks.fire();
        ticks.fire();
        assert_eq!(ticks.fired(), 3);
        tokio::time::timeout(Duration::from_millis(100), ticks.next()).await.expect("one stored wake-up");
        assert!(
            tokio::time::timeout(Duration::from_millis(100), ticks.next()).await.is_err(),
            "three ticks must coalesce into one wake-up"
        );
    }

    #[tokio::test]
    async fn an_invalid_expression_keeps_the_running_job() {
        let ticks = Arc::new(Ticks::default());
        let mut schedule = Schedule::start("0 0 0 1 1 *", Arc::clone(&ticks)).await.expect("start");
        let err = schedule.replace("every day at noon").await.expect_err("not cron");
        assert!(err.to_string().contains("is not a cron expression"), "{err}");
        assert_eq!(schedule.expression(), "0 0 0 1 1 *");
        assert!(schedule.next_run().await.is_some());
        assert!(schedule.replace("0 0 12 * * *").await.expect("valid"));
        assert_eq!(schedule.expression(), "0 0 12 * * *");
        schedule.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_job_wakes_the_worker_every_second() {
        let ticks = Arc::new(Ticks::default());
        let mut schedule = Schedule::start("* * * * * *", Arc::clone(&ticks)).await.expect("start");
        tokio::time::timeout(Duration::from_secs(5), ticks.next()).await.expect("a tick within 5 s");
        schedule.shutdown().await;
    }
}
