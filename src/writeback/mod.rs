//! Keeping `ecc_agent_issue` exactly as the built-in job would, under midwatch's own `source`.
//!
//! `reconcile()` is pure: `(findings of this cycle, unresolved records of our source) → Plan`.
//! `apply()` carries a plan out over the Table API, logging every write, and never re-POSTs a
//! create whose outcome is unknown without looking first.

pub(crate) mod apply;
pub(crate) mod history;
pub(crate) mod reconcile;
mod records;

pub(crate) use apply::{Applied, apply};
pub(crate) use history::history;
pub(crate) use reconcile::{Plan, reconcile, records_of};
pub(crate) use records::RECORD_FIELDS;
pub(crate) use records::{Records, read_records};

/// The MID Server Issue table.
pub(crate) const ISSUE_TABLE: &str = "ecc_agent_issue";

/// A write to `ecc_agent_issue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WriteAction {
    Create,
    /// `count` + 1 and `last_detected` of a record still detected.
    Count,
    /// `state = resolved` of a record no longer detected.
    Resolve,
}

impl WriteAction {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Count => "count",
            Self::Resolve => "resolve",
        }
    }
}

impl std::fmt::Display for WriteAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the write-back step did this cycle.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WriteBack {
    /// `--no-write` or `[check] write_issues = false`.
    Disabled,
    /// `--dry-run`: what would be written.
    DryRun {
        source: String,
        plan: Plan,
    },
    Applied {
        source: String,
        plan: Plan,
        applied: Applied,
    },
    /// The cycle's deadline passed while the plan was being applied: some of it may be written; the next cycle
    /// reads the records again and converges.
    CutOff {
        source: String,
        plan: Plan,
    },
    /// The open records could not be read; nothing was written.
    Failed {
        source: String,
        #[serde(serialize_with = "as_text")]
        error: RecordsUnread,
    },
}

/// Why the records of our source could not be read (nothing is written then).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordsUnread {
    #[error(transparent)]
    Api(#[from] crate::snow::ApiError),
    #[error("the check's deadline passed while reading {ISSUE_TABLE}")]
    DeadlinePassed,
}

/// An error in the JSON report: its text.
fn as_text<S: serde::Serializer>(error: &RecordsUnread, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(error)
}

impl WriteBack {
    /// The record sys_ids by message, for links.
    pub(crate) fn issue_ids(&self) -> std::collections::BTreeMap<String, String> {
        match self {
            WriteBack::Applied { applied, .. } => {
                let mut ids = applied.issue_ids();
                for r in &applied.resolved {
                    ids.entry(r.message.clone()).or_insert_with(|| r.sys_id.clone());
                }
                ids
            }
            _ => Default::default(),
        }
    }

    /// What the status line says when the records were not all written (`None` when they were, or when
    /// nothing was to be written).
    pub(crate) fn unfinished(&self) -> Option<String> {
        match self {
            WriteBack::Failed { .. } => Some(format!("{ISSUE_TABLE} not written")),
            WriteBack::CutOff { .. } => Some(format!("{ISSUE_TABLE} not fully written")),
            WriteBack::Applied { applied, .. } if !applied.failed.is_empty() => {
                let n = applied.failed.len();
                Some(format!("{n} {ISSUE_TABLE} write{} failed", if n == 1 { "" } else { "s" }))
            }
            WriteBack::Disabled | WriteBack::DryRun { .. } | WriteBack::Applied { .. } => None,
        }
    }

    pub(crate) fn summary(&self) -> String {
        match self {
            WriteBack::Disabled => "write-back off".into(),
            WriteBack::DryRun { plan, .. } => format!("dry run: would {}", plan.tally()),
            WriteBack::Applied { applied, .. } => format!(
                "records created={} counted={} resolved={} failed={}",
                applied.created.len(),
                applied.counted.len(),
                applied.resolved.len(),
                applied.failed.len()
            ),
            WriteBack::CutOff { plan, .. } => {
                format!("write-back cut off by the deadline (planned {}; the next cycle converges)", plan.tally())
            }
            WriteBack::Failed { error, .. } => format!("write-back failed: {error}"),
        }
    }
}
