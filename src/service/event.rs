//! What drives the service: [`Event`]s from outside (signals in production, the test in tests)
//! merged with the ticks of its own schedule into one [`Inbox`].

use futures::stream::{Fuse, Stream, StreamExt};
use tokio::sync::mpsc;
use tracing::info;

/// One thing that happens to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A cycle is due. The schedule sends these; a test may send them instead of waiting for it.
    Tick,
    /// Re-read the configuration file (SIGHUP).
    Reload,
    /// Stop, naming the signal that asked for it (`"SIGTERM"`, `"SIGINT"`): the first lets a running
    /// cycle finish within [`super::STOP_GRACE`], a second drops it.
    Stop(&'static str),
}

/// The one queue the worker reads: the outside events first, then the schedule's ticks.
pub(crate) struct Inbox<S> {
    events: Fuse<S>,
    ticks: mpsc::Receiver<()>,
}

impl<S: Stream<Item = Event> + Unpin> Inbox<S> {
    pub(crate) fn new(events: S, ticks: mpsc::Receiver<()>) -> Inbox<S> {
        Inbox { events: events.fuse(), ticks }
    }

    /// The next event. Cancel safe. When the outside stream ends, the service goes on serving its
    /// schedule: nothing outside can stop it any more, which a closed signal stream must not do either.
    pub(super) async fn next(&mut self) -> Event {
        tokio::select! {
            // A stop or a reload goes before a tick that came at the same time.
            biased;
            Some(event) = self.events.next() => event,
            Some(()) = self.ticks.recv() => Event::Tick,
            else => std::future::pending().await,
        }
    }

    /// The next stop, while stopping; the signal's name. Reloads and ticks are ignored.
    pub(crate) async fn next_stop(&mut self) -> &'static str {
        loop {
            match self.next().await {
                Event::Stop(signal) => return signal,
                Event::Reload => info!("SIGHUP ignored: stopping"),
                Event::Tick => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outside_events_come_before_ticks_and_the_schedule_goes_on_after_they_end() {
        let (tick, ticks) = mpsc::channel(4);
        tick.try_send(()).expect("room");
        let mut inbox = Inbox::new(futures::stream::iter([Event::Reload]), ticks);
        assert_eq!(inbox.next().await, Event::Reload);
        assert_eq!(inbox.next().await, Event::Tick);
        tick.try_send(()).expect("room");
        assert_eq!(inbox.next().await, Event::Tick, "the end of the outside events stops nothing");
    }

    #[tokio::test]
    async fn while_stopping_only_a_stop_counts() {
        let (tick, ticks) = mpsc::channel(4);
        tick.try_send(()).expect("room");
        let events = futures::stream::iter([Event::Reload, Event::Tick, Event::Stop("SIGINT")]);
        let mut inbox = Inbox::new(events, ticks);
        assert_eq!(inbox.next_stop().await, "SIGINT");
    }
}
