//! The systemd notification protocol (`Type=notify`): READY, STATUS, RELOADING, STOPPING and the
//! watchdog. Without `$NOTIFY_SOCKET` (not started by systemd) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager ($NOTIFY_SOCKET): {e}");
    }
}

/// Start-up or a reload is complete.
pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub(crate) fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A reload begins. systemd ≥ 253 wants MONOTONIC_USEC with it; older ones ignore it.
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status("reloading the configuration")]),
        Err(_) => send(&[NotifyState::Reloading, NotifyState::Status("reloading the configuration")]),
    }
}

pub(crate) fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// When the unit sets `WatchdogSec=`, pings at half the interval from a task of its own, so that
/// a wedged runtime (not a long cycle, which awaits) gets the service restarted.
pub(crate) fn spawn_watchdog() -> Option<JoinHandle<()>> {
    let timeout = sd_notify::watchdog_enabled()?;
    let every = (timeout / 2).max(Duration::from_millis(100));
    tracing::debug!("systemd watchdog enabled: {} ms, pinging every {} ms", timeout.as_millis(), every.as_millis());
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}
