//! The events of `midwatch run` in production: SIGTERM and SIGINT stop it, SIGHUP reloads it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{CannotStart, Event};

/// SIGTERM and SIGINT as [`Event::Stop`], SIGHUP as [`Event::Reload`]; a stream that never ends.
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers. Call it first, so that a SIGHUP or SIGTERM arriving during start-up
    /// is not fatal by default. On error the reason is on stderr (logging is not set up yet).
    pub(crate) fn install() -> Result<Signals, CannotStart> {
        let install = || -> std::io::Result<Signals> {
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                hup: signal(SignalKind::hangup())?,
            })
        };
        install().map_err(|e| {
            let reason = format!("cannot install signal handlers: {e}");
            eprintln!("midwatch: {reason}");
            CannotStart(reason)
        })
    }
}

impl Stream for Signals {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        // Each poll_recv registers the waker, so all three are watched. `Ready(None)` only comes
        // when the runtime shuts down; the stream then simply stays pending.
        if let Poll::Ready(Some(())) = this.term.poll_recv(cx) {
            return Poll::Ready(Some(Event::Stop("SIGTERM")));
        }
        if let Poll::Ready(Some(())) = this.int.poll_recv(cx) {
            return Poll::Ready(Some(Event::Stop("SIGINT")));
        }
        if let Poll::Ready(Some(())) = this.hup.poll_recv(cx) {
            return Poll::Ready(Some(Event::Reload));
        }
        Poll::Pending
    }
}
