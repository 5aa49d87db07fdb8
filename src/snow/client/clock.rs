//! The instance's clock, as the `Date` header of its answers reads it (RFC 9110 §6.6.1: whole seconds;
//! docs/servicenow.md §8.3). The built-in job runs on the instance's clock, so a cycle's "now" is this reading
//! (`cycle/clock.rs`), not the host's.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use reqwest::header::{DATE, HeaderMap};

/// One reading of the instance's clock: the `Date` of an answer, and when that answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateReading {
    pub(crate) date: DateTime<Utc>,
    pub(crate) received: Instant,
}

/// The latest reading, shared by every clone of a client.
#[derive(Debug, Default)]
pub(super) struct InstanceClock {
    latest: Mutex<Option<DateReading>>,
}

impl InstanceClock {
    /// Keeps the `Date` of a successful answer (an error may come from a proxy or a load balancer, with its
    /// own clock) that arrived at `received`, unless a later answer's is kept already. A `Date` that is not an
    /// HTTP date is ignored.
    pub(super) fn record(&self, status: u16, headers: &HeaderMap, received: Instant) {
        if !(200..300).contains(&status) {
            return;
        }
        let Some(date) = headers.get(DATE).and_then(|v| v.to_str().ok()).and_then(http_date) else { return };
        if let Ok(mut latest) = self.latest.lock()
            && latest.is_none_or(|l| l.received <= received)
        {
            *latest = Some(DateReading { date, received });
        }
    }

    pub(super) fn latest(&self) -> Option<DateReading> {
        self.latest.lock().ok().and_then(|l| *l)
    }
}

/// An HTTP date: the IMF-fixdate every server sends (`Sun, 06 Nov 1994 08:49:37 GMT`), which RFC 2822
/// parsing reads; the obsolete forms are not sent by the instance and count as no date.
fn http_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value.trim()).ok().map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(date: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(DATE, HeaderValue::from_str(date).expect("header value"));
        h
    }

    #[test]
    fn the_latest_successful_answer_with_an_http_date_is_the_reading() {
        let clock = InstanceClock::default();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(5);
        clock.record(200, &headers("Sun, 22 Nov 2026 12:00:00 GMT"), t1);
        assert_eq!(clock.latest().map(|r| r.date.to_rfc3339()), Some("2026-11-22T12:00:00+00:00".into()));
        // An earlier answer that arrives late, an error's Date, and garbage change nothing.
        clock.record(200, &headers("Sun, 22 Nov 2026 11:00:00 GMT"), t0);
        clock.record(503, &headers("Sun, 22 Nov 2026 13:00:00 GMT"), t1 + std::time::Duration::from_millis(1));
        clock.record(200, &headers("yesterday, 25:99"), t1 + std::time::Duration::from_millis(2));
        let mut not_text = HeaderMap::new();
        not_text.insert(DATE, HeaderValue::from_bytes(b"Sun, 22 Nov 2026 \xff").expect("obs-text"));
        clock.record(200, &not_text, t1 + std::time::Duration::from_millis(2));
        clock.record(200, &HeaderMap::new(), t1 + std::time::Duration::from_millis(3));
        assert_eq!(
            clock.latest(),
            Some(DateReading { date: http_date("Sun, 22 Nov 2026 12:00:00 GMT").expect("date"), received: t1 })
        );
    }

    #[test]
    fn no_date_header_is_no_reading() {
        let clock = InstanceClock::default();
        clock.record(200, &HeaderMap::new(), Instant::now());
        assert_eq!(clock.latest(), None);
    }
}
