//! How failed requests are tried again: the policy, and the server's `Retry-After` in both of its
//! forms (docs/servicenow.md §2 item 5).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, NaiveDateTime, Utc};

use super::{ApiError, ApiErrorKind};

/// How reads (and idempotent writes) are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// The first backoff delay (doubled each time, with jitter).
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a longer one fails the read at once with the time to wait.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A `Retry-After` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryAfter {
    Delay(Duration),
    At(DateTime<Utc>),
}

/// Longer delays than this are taken as this (a year): no overflow on absurd values.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

impl RetryAfter {
    /// Parses the header's value; `None` for anything that is neither form.
    pub(crate) fn parse(value: &str) -> Option<RetryAfter> {
        let v = value.trim();
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            let secs = v.parse::<u64>().unwrap_or(u64::MAX);
            return Some(RetryAfter::Delay(Duration::from_secs(secs).min(LONGEST)));
        }
        http_date(v).map(RetryAfter::At)
    }

    /// How long to wait from `now` (zero for a date already past).
    pub(crate) fn wait(&self, now: DateTime<Utc>) -> Duration {
        match self {
            RetryAfter::Delay(d) => *d,
            RetryAfter::At(at) => (*at - now).to_std().unwrap_or(Duration::ZERO).min(LONGEST),
        }
    }

    /// When the wait ends, seen from `now`.
    pub(crate) fn until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            RetryAfter::Delay(d) => {
                chrono::Duration::from_std(*d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(now)
            }
            RetryAfter::At(at) => *at,
        }
    }
}

/// The three date forms a recipient must accept: IMF-fixdate, RFC 850 and asctime (RFC 9110 §5.6.7).
fn http_date(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc2822(v) {
        return Some(d.with_timezone(&Utc));
    }
    let naive = |fmt: &str| NaiveDateTime::parse_from_str(v, fmt).ok();
    // RFC 850: two-digit year; chrono puts 00-68 in 20xx, 69-99 in 19xx.
    naive("%A, %d-%b-%y %H:%M:%S GMT").or_else(|| naive("%a %b %e %H:%M:%S %Y")).map(|n| n.and_utc())
}

/// Runs `attempt` until it succeeds, fails in a way `retryable` refuses, or the policy's budget is
/// spent. A rate limit waits for its `Retry-After` (within the budget's count); anything else
/// backs off exponentially with jitter.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    table: &str,
    retryable: fn(&ApiError, &RetryPolicy) -> bool,
    attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.base_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_retries)
        .with_jitter();
    // Set when the instance asked for a wait the cycle's deadline does not leave.
    let beyond: std::sync::Mutex<Option<(Duration, Duration)>> = std::sync::Mutex::new(None);
    let result = attempt
        .retry(backoff)
        .when(|e: &ApiError| retryable(e, policy))
        // `planned` is None once the budget is spent: a server that keeps answering 429 is not
        // retried for ever.
        .adjust(|e: &ApiError, planned| {
            let asked = e.retry_after();
            let wait = planned.map(|p| asked.unwrap_or(p))?;
            match (asked, super::deadline::remaining()) {
                (Some(asked), Some(left)) if asked > left => {
                    if let Ok(mut b) = beyond.lock() {
                        *b = Some((asked, left));
                    }
                    None
                }
                _ => Some(wait),
            }
        })
        .notify(|e: &ApiError, wait| {
            tracing::warn!(table, error = %e, retry_in = ?wait, "request failed; retrying");
        })
        .await;
    let beyond = beyond.lock().ok().and_then(|b| *b);
    match (result, beyond) {
        (Err(_), Some((wait, left))) => Err(ApiError::new(table, ApiErrorKind::WaitBeyondDeadline { wait, left })),
        (result, _) => result,
    }
}

/// Reads and PATCHes (absolute values, so repeating one changes nothing): every transient failure.
pub(super) fn transient(e: &ApiError, policy: &RetryPolicy) -> bool {
    e.is_transient(policy.max_retry_after)
}

/// Writes that must not be repeated blindly: only an answer proving nothing was done (429).
pub(super) fn rate_limited(e: &ApiError, policy: &RetryPolicy) -> bool {
    matches!(e.kind, ApiErrorKind::RateLimited { .. }) && e.is_transient(policy.max_retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        match crate::domain::sn_time::parse(s) {
            Some(t) => t,
            None => panic!("bad time {s}"),
        }
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(RetryAfter::parse("3"), Some(RetryAfter::Delay(Duration::from_secs(3))));
        assert_eq!(RetryAfter::parse(" 120 "), Some(RetryAfter::Delay(Duration::from_secs(120))));
        assert_eq!(RetryAfter::parse("99999999999999999999999"), Some(RetryAfter::Delay(LONGEST)));
        let now = at("2026-11-22 12:00:00");
        assert_eq!(RetryAfter::Delay(Duration::from_secs(90)).until(now), at("2026-11-22 12:01:30"));
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        let expected = at("1994-11-06 08:49:37");
        for v in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(RetryAfter::parse(v), Some(RetryAfter::At(expected)), "{v}");
        }
    }

    #[test]
    fn an_http_date_waits_until_then_and_a_past_one_not_at_all() {
        let now = at("2026-11-22 12:00:00");
        let Some(later) = RetryAfter::parse("Sun, 22 Nov 2026 12:00:03 GMT") else { panic!("a date") };
        assert_eq!(later.wait(now), Duration::from_secs(3));
        assert_eq!(later.until(now), at("2026-11-22 12:00:03"));
        let Some(past) = RetryAfter::parse("Sun, 22 Nov 2026 11:00:00 GMT") else { panic!("a date") };
        assert_eq!(past.wait(now), Duration::ZERO);
    }

    #[test]
    fn anything_else_is_no_retry_after() {
        for v in ["", "-1", "1.5", "soon", "Sun, 32 Nov 2026 12:00:00 GMT", "3 s", "\u{1b}[2J"] {
            assert_eq!(RetryAfter::parse(v), None, "{v:?}");
        }
    }
}
