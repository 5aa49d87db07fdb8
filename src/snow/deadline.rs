//! The cycle's deadline as the client sees it, and what the client is waiting for.
//!
//! A cycle runs its reads and writes [`within`] its deadline (a task-local inside the client's room, so every
//! request of the cycle's task sees it without being passed it; what bounds anything else is passed as a
//! `crate::deadline::Deadline`). The retry loop refuses a `Retry-After` longer than what is left —
//! failing at once, saying so — instead of sleeping past the deadline. `Pending` names the requests in
//! flight (`waiting for sysevent page 3`), so a passed deadline says what it was waiting for.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `f` with `deadline` as the deadline of every request it makes.
pub(crate) async fn within<F: Future>(deadline: Instant, f: F) -> F::Output {
    DEADLINE.scope(deadline, f).await
}

/// What is left of the current deadline, if one is set.
pub(crate) fn remaining() -> Option<Duration> {
    DEADLINE.try_with(|d| d.saturating_duration_since(Instant::now())).ok()
}

/// The requests in flight, by description.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    next: AtomicU64,
    items: Mutex<BTreeMap<u64, String>>,
}

/// Removes its entry from [`Pending`] when dropped (answered, failed or cancelled).
pub(crate) struct Waiting<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Pending {
    pub(crate) fn enter(&self, what: String) -> Waiting<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut items) = self.items.lock() {
            items.insert(id, what);
        }
        Waiting { pending: self, id }
    }

    /// `waiting for sysevent page 3; waiting for sys_user page 1`, oldest first; empty when idle.
    pub(crate) fn describe(&self) -> String {
        self.items.lock().map(|items| items.values().cloned().collect::<Vec<_>>().join("; ")).unwrap_or_default()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut items) = self.pending.items.lock() {
            items.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_names_what_is_in_flight_until_it_ends() {
        let p = Pending::default();
        let a = p.enter("waiting for sysevent page 3".into());
        {
            let _b = p.enter("waiting for sys_user page 1".into());
            assert_eq!(p.describe(), "waiting for sysevent page 3; waiting for sys_user page 1");
        }
        assert_eq!(p.describe(), "waiting for sysevent page 3");
        drop(a);
        assert_eq!(p.describe(), "");
    }

    #[tokio::test(start_paused = true)]
    async fn remaining_is_what_is_left_of_the_deadline_inside_within_only() {
        assert_eq!(remaining(), None);
        let deadline = Instant::now() + Duration::from_secs(10);
        within(deadline, async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_eq!(remaining(), Some(Duration::from_secs(6)));
        })
        .await;
    }
}
