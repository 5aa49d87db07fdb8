//! Whose clock "now" is (product.md §2): the instance's, as the built-in job runs on it, read from the `Date`
//! header of its answers (`snow/client/clock.rs`); this host's only where the instance sends none. A cycle
//! takes it after its first reads, before the window is needed (`Cycle::read`), so the window, the keyset
//! upper bound of the `sysevent` reads, "down since" and `down_for` all go by the instance's time. A difference
//! above [`SAID_ABOVE`] is said once, in the report's notes and by `config check`.

use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use crate::snow::DateReading;

/// A difference between the clocks that is said; below it, the clocks agree well enough to say nothing.
pub(crate) const SAID_ABOVE: TimeDelta = TimeDelta::seconds(30);

/// This host's clock as a caller gave it: `at` when `instant` was read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostClock {
    at: DateTime<Utc>,
    instant: Instant,
}

impl HostClock {
    /// The host's clock reads `at` now.
    pub(crate) fn reads(at: DateTime<Utc>) -> HostClock {
        HostClock { at, instant: Instant::now() }
    }

    /// What the host's clock read (or will read) at `instant`.
    fn at(&self, instant: Instant) -> DateTime<Utc> {
        let later = instant.checked_duration_since(self.instant);
        let earlier = self.instant.checked_duration_since(instant);
        let shifted = match (later, earlier) {
            (Some(d), _) => TimeDelta::from_std(d).ok().and_then(|d| self.at.checked_add_signed(d)),
            (None, Some(d)) => TimeDelta::from_std(d).ok().and_then(|d| self.at.checked_sub_signed(d)),
            (None, None) => None,
        };
        shifted.unwrap_or(self.at)
    }
}

/// Whose clock a cycle's "now" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// The instance's, from the `Date` header of its answers; this host's clock is `host_ahead` ahead of it
    /// (behind when negative), in whole seconds.
    Instance { host_ahead: TimeDelta },
    /// This host's: the instance's answers carried no `Date` header.
    Host,
}

/// "Now" for one cycle, and whose clock it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    pub(crate) at: DateTime<Utc>,
    pub(crate) clock: Clock,
}

impl Now {
    /// The instance's time now, from `reading` when it was taken after `host` (this cycle's answers, not an
    /// earlier cycle's), else the host's; in whole seconds, the resolution of the `Date` header and of the
    /// instance's date-time fields.
    pub(crate) fn of(host: HostClock, reading: Option<DateReading>) -> Now {
        let now = Instant::now();
        match reading.filter(|r| r.received >= host.instant) {
            Some(r) => {
                let since = TimeDelta::from_std(now.saturating_duration_since(r.received)).unwrap_or(TimeDelta::zero());
                let at = r.date.checked_add_signed(since).unwrap_or(r.date).trunc_subsecs(0);
                // Both in whole seconds, as the Date header is: the host's clock when that answer arrived.
                let host_ahead = host.at(r.received).trunc_subsecs(0) - r.date;
                Now { at, clock: Clock::Instance { host_ahead } }
            }
            None => Now { at: host.at(now).trunc_subsecs(0), clock: Clock::Host },
        }
    }

    /// `this host's clock is 7m 2s ahead of the instance's` (or behind), when the difference is above
    /// [`SAID_ABOVE`].
    pub(crate) fn difference(&self) -> Option<String> {
        let Clock::Instance { host_ahead } = self.clock else { return None };
        if host_ahead.abs() <= SAID_ABOVE {
            return None;
        }
        let by = humantime::format_duration(Duration::from_secs(host_ahead.num_seconds().unsigned_abs()));
        let side = if host_ahead > TimeDelta::zero() { "ahead of" } else { "behind" };
        Some(format!("this host's clock is {by} {side} the instance's"))
    }

    /// What a report says of the clocks, when there is something to say: a difference above [`SAID_ABOVE`],
    /// or no `Date` header.
    pub(crate) fn note(&self) -> Option<String> {
        match self.clock {
            Clock::Host => Some(NO_DATE.to_string()),
            Clock::Instance { .. } => self.difference().map(|d| {
                format!(
                    "Clocks: {d}; \"now\" is the instance's time, from the Date header of its answers, as for \
                     the built-in job: the window, \"down since\" and [check] down_for go by it."
                )
            }),
        }
    }

    /// What `config check` says of the clocks, when there is something to say.
    pub(crate) fn config_check_note(&self) -> Option<String> {
        match self.clock {
            Clock::Host => Some(
                "the instance's answers carry no Date header: a check takes \"now\" from this host's clock, \
                 so keep it synchronised (NTP)"
                    .to_string(),
            ),
            Clock::Instance { .. } => self
                .difference()
                .map(|d| format!("{d}; a check takes \"now\" from the instance (the Date header of its answers)")),
        }
    }
}

const NO_DATE: &str = "Clocks: the instance's answers carry no Date header, so \"now\" is this host's clock: the \
                       window, \"down since\" and [check] down_for are as far off as this host's clock is from the \
                       instance's.";

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        crate::domain::sn_time::parse(s).expect("time")
    }

    fn instance_reading(date: DateTime<Utc>) -> DateReading {
        DateReading { date, received: Instant::now() }
    }

    #[test]
    fn now_is_the_instance_time_and_the_difference_is_the_host_clock_against_it() {
        for (host, said) in [
            ("2026-11-22 12:07:02", Some("this host's clock is 7m 2s ahead of the instance's")),
            ("2026-11-22 11:52:58", Some("this host's clock is 7m 2s behind the instance's")),
            ("2026-11-22 12:00:30", None),
            ("2026-11-22 11:59:30", None),
            ("2026-11-22 12:00:31", Some("this host's clock is 31s ahead of the instance's")),
            ("2026-11-25 14:00:00", Some("this host's clock is 3days 2h ahead of the instance's")),
        ] {
            let host = HostClock::reads(at(host));
            let now = Now::of(host, Some(instance_reading(at("2026-11-22 12:00:00"))));
            assert_eq!(now.at, at("2026-11-22 12:00:00"), "{host:?}");
            assert_eq!(now.difference().as_deref(), said, "{host:?}");
            assert_eq!(now.note().is_some(), said.is_some());
            if let (Some(note), Some(said)) = (now.note(), said) {
                assert!(note.starts_with(&format!("Clocks: {said}; ")), "{note}");
            }
        }
    }

    #[test]
    fn without_a_reading_of_this_cycle_now_is_the_host_clock_and_the_note_says_so() {
        let earlier = instance_reading(at("2026-11-22 12:00:00"));
        let host = HostClock::reads(at("2026-11-22 13:00:00"));
        for reading in [None, Some(earlier)] {
            let now = Now::of(host, reading);
            assert_eq!(now.clock, Clock::Host);
            assert_eq!(now.at, at("2026-11-22 13:00:00"));
            assert_eq!(now.difference(), None);
            assert!(now.note().is_some_and(|n| n.contains("no Date header")));
            assert!(now.config_check_note().is_some_and(|n| n.contains("no Date header")));
        }
    }

    #[test]
    fn an_absurd_date_changes_no_arithmetic_into_a_panic() {
        let host = HostClock::reads(at("2026-11-22 12:00:00"));
        for date in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let now = Now::of(host, Some(instance_reading(date)));
            assert!(now.difference().is_some());
        }
    }
}
