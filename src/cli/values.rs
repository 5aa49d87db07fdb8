//! The parsers of the command line's own values (`--user`, `--mid-server`, `--every`).

use std::time::Duration;

use crate::config;

/// A `--user` or `--mid-server` name: not empty, no control character (no such name can be stored).
pub(super) fn parse_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("is empty: give the exact name".into())
    } else if s.chars().any(char::is_control) {
        Err("contains a control character, which no user or MID Server name can hold".into())
    } else {
        Ok(s.to_string())
    }
}

/// `--every`: 10s to 1h.
pub(super) fn parse_every(s: &str) -> Result<Duration, String> {
    let outside = |every| format!("{} is outside 10s..=1h", humantime::format_duration(every));
    config::Bounded::new(Duration::from_secs(10)..=Duration::from_secs(3600), "30s, 2m", &outside).arg(s)
}
