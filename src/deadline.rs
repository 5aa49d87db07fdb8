//! A cycle's deadline, passed to what it bounds.
//!
//! The reads, the write-back and the email delivery of one cycle all end by the same instant. The cycle
//! hands a [`Deadline`] to each step that must stop in time (write-back, email), which cuts its future off
//! with `Deadline::bounded`. The HTTP client's retry loop also needs the instant (to refuse a `Retry-After`
//! longer than what is left): the cycle sets it for its requests with `snow::deadline::within`, inside the
//! client's own room.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The instant by which a cycle's step must be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

/// [`Deadline::bounded`]'s future was cut off by the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeadlinePassed;

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    /// The instant itself.
    pub(crate) fn instant(self) -> Instant {
        self.0
    }

    /// The same deadline, `reserve` earlier (kept for what must still happen after the bounded step).
    pub(crate) fn earlier_by(self, reserve: Duration) -> Deadline {
        Deadline(self.0.checked_sub(reserve).unwrap_or(self.0))
    }

    /// Runs `f` until the deadline: `Err(DeadlinePassed)` when the deadline passes first.
    pub(crate) async fn bounded<F: Future>(self, f: F) -> Result<F::Output, DeadlinePassed> {
        tokio::time::timeout_at(self.0, f).await.map_err(|_| DeadlinePassed)
    }

    /// Waits until the deadline.
    pub(crate) async fn passed(self) {
        tokio::time::sleep_until(self.0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bounded_cuts_a_future_off_when_the_deadline_passes_first() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let quick = deadline.bounded(tokio::time::sleep(Duration::from_secs(4))).await;
        assert_eq!(quick, Ok(()));
        let slow = deadline.bounded(tokio::time::sleep(Duration::from_secs(7))).await;
        assert_eq!(slow, Err(DeadlinePassed));
        assert_eq!(Instant::now(), deadline.instant(), "cut off at the deadline, not when the future would end");
    }

    #[tokio::test(start_paused = true)]
    async fn earlier_by_keeps_a_reserve() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let reserved = deadline.earlier_by(Duration::from_millis(500));
        assert_eq!(deadline.instant() - reserved.instant(), Duration::from_millis(500));
    }
}
