//! `[check]`: what a cycle looks at and when `midwatch run` starts one. Also the `--window` argument, which
//! follows the same rule as `[check] window`, and the cron schedule rule `midwatch run` relies on.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Deserialize;

use super::duration::{Bounded, KEY_EXAMPLES};
use crate::domain::MIN_WINDOW;
use crate::domain::MessageStyle;
use crate::snow::query::QueryValue;

pub(crate) const DEFAULT_WINDOW: Duration = Duration::from_secs(4 * 3600);
pub(crate) const DEFAULT_SCHEDULE: &str = "0 0 */4 * * *";
pub(crate) const DEFAULT_ISSUE_SOURCE: &str = "midwatch";
/// The whole cycle's deadline by default: below the 60 s a Nagios or Icinga plugin gets before its runner kills
/// it, so the plugin reports its own UNKNOWN (saying what it was waiting for) rather than the runner's timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(50);
/// The deadline's bounds: a cycle needs a few requests at least; a day is longer than any schedule.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The longest window accepted. The instance keeps `sysevent` rows for about 7 days by default (its table
/// rotation), so older login events are gone anyway; 30 days leaves room for instances that keep them longer
/// and stops absurd values (`1000000000d` would reach before year 1 in the query).
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// `[check] window` and `--window`: from the MID Server heartbeat interval ([`MIN_WINDOW`]) to [`MAX_WINDOW`].
const WINDOWS: RangeInclusive<Duration> = MIN_WINDOW..=MAX_WINDOW;
/// `[check] timeout` and `--timeout`.
const TIMEOUTS: RangeInclusive<Duration> = MIN_TIMEOUT..=MAX_TIMEOUT;
/// `[check] jitter` and `down_for`.
const UP_TO_A_DAY: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize, Default)]
pub(super) struct RawCheck {
    window: Option<String>,
    schedule: Option<String>,
    messages: Option<String>,
    write_issues: Option<bool>,
    issue_source: Option<String>,
    jitter: Option<String>,
    timeout: Option<String>,
    down_for: Option<String>,
    early_warnings: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub(crate) window: Duration,
    pub schedule: String,
    pub messages: MessageStyle,
    pub(crate) write_issues: bool,
    /// Query-safe (checked here), since it selects our records of `ecc_agent_issue`.
    pub(crate) issue_source: QueryValue,
    /// `midwatch run` waits a random delay in `0..jitter` before each scheduled cycle.
    pub jitter: Duration,
    /// The deadline of a whole cycle (`check`, and each cycle of `run`).
    pub(crate) timeout: Duration,
    /// A MID Server down for less than this is not judged yet (it may be restarting or upgrading); `0s`, the
    /// default, judges every down MID Server, exactly as the built-in job.
    pub(crate) down_for: Duration,
    /// Warnings about the users of Up MID Servers and observations beyond the built-in job (default on).
    pub early_warnings: bool,
}

impl RawCheck {
    pub(super) fn validate(self, problems: &mut Vec<String>) -> Option<CheckConfig> {
        let window = Bounded::new(WINDOWS, KEY_EXAMPLES, &|w| format!("[check] window: {}", window_refused(w))).key_or(
            "[check] window",
            self.window.as_deref(),
            DEFAULT_WINDOW,
            problems,
        );
        let messages = match self.messages.as_deref() {
            None | Some("documented") => Some(MessageStyle::Documented),
            Some("instance") => Some(MessageStyle::Instance),
            Some(other) => {
                problems.push(format!("[check] messages = \"{other}\": expected \"documented\" or \"instance\""));
                None
            }
        };
        let raw_source = self.issue_source.unwrap_or_else(|| DEFAULT_ISSUE_SOURCE.to_string());
        let issue_source = QueryValue::new(&raw_source).filter(|_| raw_source.len() <= 40);
        if issue_source.is_none() {
            problems.push(format!(
                "[check] issue_source = \"{raw_source}\": expected 1 to 40 letters, digits, '.', '_' or '-' (it is used in queries)"
            ));
        }
        let schedule = self.schedule.unwrap_or_else(|| DEFAULT_SCHEDULE.to_string());
        if schedule.split_whitespace().count() < 6 && !schedule.starts_with('@') {
            problems.push(format!(
                "[check] schedule = \"{schedule}\" needs 6 fields, seconds first (e.g. \"0 0 */4 * * *\" for every 4 hours)"
            ));
        } else if let Err(e) = validate_schedule(&schedule) {
            problems.push(format!("[check] schedule = \"{schedule}\" {e}"));
        }
        let jitter = Bounded::new(UP_TO_A_DAY, KEY_EXAMPLES, &|_| "[check] jitter must be at most 1d".into()).key_or(
            "[check] jitter",
            self.jitter.as_deref(),
            Duration::ZERO,
            problems,
        );
        let timeout = Bounded::new(TIMEOUTS, KEY_EXAMPLES, &|t| format!("[check] timeout: {}", timeout_refused(t)))
            .key_or("[check] timeout", self.timeout.as_deref(), DEFAULT_TIMEOUT, problems);
        let down_for = Bounded::new(UP_TO_A_DAY, KEY_EXAMPLES, &|_| {
            "[check] down_for must be at most 1d: a MID Server silent that long is down".into()
        })
        .key_or("[check] down_for", self.down_for.as_deref(), Duration::ZERO, problems);
        Some(CheckConfig {
            window: window?,
            schedule,
            messages: messages?,
            write_issues: self.write_issues.unwrap_or(true),
            issue_source: issue_source?,
            jitter: jitter?,
            timeout: timeout?,
            down_for: down_for?,
            early_warnings: self.early_warnings.unwrap_or(true),
        })
    }
}

/// Refuses a window below the MID Server heartbeat interval or above [`MAX_WINDOW`]: the bounds and wording
/// `[check] window` and `--window` share, on a duration already parsed (the unit tests' way in).
#[cfg(test)]
pub(crate) fn validate_window(window: Duration) -> Result<Duration, String> {
    if WINDOWS.contains(&window) { Ok(window) } else { Err(window_refused(window)) }
}

/// What `[check] window` and `--window` say of a window outside [`WINDOWS`].
fn window_refused(window: Duration) -> String {
    if window < MIN_WINDOW {
        format!(
            "a window of {} is below the 5-minute minimum: the MID Server heartbeat runs every 5 minutes, so a \
             shorter window reports healthy MID Servers as silent",
            humantime::format_duration(window)
        )
    } else {
        // In days: humantime would say "1month 13h 26m 24s" for 31d.
        let days = window.as_secs_f64() / 86_400.0;
        let days = if window.as_secs().is_multiple_of(86_400) { format!("{days:.0}") } else { format!("{days:.1}") };
        format!(
            "a window of {days} days is above the 30-day maximum: the instance keeps sysevent rows about 7 days \
             by default, so older login events are gone anyway; use at most 30d"
        )
    }
}

/// What `[check] timeout` and `--timeout` say of a deadline outside [`TIMEOUTS`].
fn timeout_refused(timeout: Duration) -> String {
    format!(
        "a deadline of {} is outside 5s..=1d: give the whole cycle at least a few requests' time",
        humantime::format_duration(timeout)
    )
}

/// The `--timeout` argument of `check` and `run` (a clap value parser): a humantime duration within
/// [`TIMEOUTS`].
pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    Bounded::new(TIMEOUTS, "50s, 2m", &timeout_refused).arg(s)
}

/// The `--window` argument of `check` and `run` (a clap value parser): a humantime duration within
/// [`WINDOWS`].
pub(crate) fn parse_window(s: &str) -> Result<Duration, String> {
    Bounded::new(WINDOWS, "5m, 4h, 1d", &window_refused).arg(s)
}

/// A cron expression as `midwatch run` schedules it (tokio-cron-scheduler: 6 or 7 fields, seconds
/// first, UTC), that fires at least once more.
pub(crate) fn validate_schedule(expression: &str) -> Result<(), String> {
    let mut job = tokio_cron_scheduler::Job::new_async(expression, |_, _| Box::pin(async {})).map_err(|_| {
        "is not a cron expression: expected 6 fields, seconds first, in UTC \
         (sec min hour day-of-month month day-of-week, e.g. \"0 0 */4 * * *\" for every 4 hours)"
            .to_string()
    })?;
    match job.job_data() {
        Ok(data) if data.next_tick == 0 => Err("never fires again".into()),
        _ => Ok(()),
    }
}
