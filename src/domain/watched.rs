//! What a watch (`check --until-ok`) did beside its last round's report: plain data for the renderings and
//! the JSON report.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchEnd {
    /// Every watched user is clear.
    Clear,
    TimedOut,
    Interrupted,
}

/// What a watch did, beside the last round's report.
#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    pub ended: WatchEnd,
    pub rounds: u32,
    /// The rounds' lines, as printed.
    pub(crate) lines: Vec<String>,
    /// When the first round's window ended.
    #[serde(with = "super::sn_time")]
    pub(crate) started: DateTime<Utc>,
    /// `--every`, as humantime writes it (`1m`).
    pub(crate) every: String,
}
