//! What changed since the last email: new, still open and resolved findings, new and gone early warnings.

use chrono::{DateTime, Utc};

use crate::domain::{Finding, FindingKey, Report, Warning};

/// How the findings compare with the last email's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta<'a> {
    pub new: Vec<&'a Finding>,
    pub(crate) still_open: Vec<&'a Finding>,
    /// In the last email, gone now.
    pub resolved: Vec<FindingKey>,
    /// When the last email was composed; `None` for the first one.
    pub(crate) previous_at: Option<DateTime<Utc>>,
    /// Nothing changed since the last email: this one reminds of what is still open (`[email] remind_every`).
    pub(crate) reminder: bool,
    /// The keys of the early warnings the last email did not have (every one, for the first email).
    pub(crate) new_warnings: Vec<String>,
    /// The keys of the early warnings of the last email that are gone now.
    pub(crate) gone_warnings: Vec<String>,
}

impl<'a> Delta<'a> {
    /// Compares with the findings of the last email (`previous_at` `None`: nothing was ever sent).
    pub fn against(report: &'a Report, previous: &[FindingKey], previous_at: Option<DateTime<Utc>>) -> Delta<'a> {
        let was = |f: &Finding| {
            previous.iter().any(|p| p.user == f.user && p.category == f.category && p.message == f.message)
        };
        let (still_open, new): (Vec<&Finding>, Vec<&Finding>) = report.findings.iter().partition(|f| was(f));
        let current = FindingKey::of_report(report);
        let mut resolved: Vec<FindingKey> = previous.iter().filter(|p| !current.contains(p)).cloned().collect();
        resolved.sort();
        resolved.dedup();
        let new_warnings = Warning::keys_of(&report.warnings);
        Delta { new, still_open, resolved, previous_at, reminder: false, new_warnings, gone_warnings: Vec::new() }
    }

    /// Compares the early warnings with the last email's (their keys).
    pub(crate) fn with_warnings_before(mut self, before: &[String]) -> Delta<'a> {
        // `new_warnings` holds every current key until now.
        self.gone_warnings = before.iter().filter(|k| !self.new_warnings.contains(k)).cloned().collect();
        self.new_warnings.retain(|k| !before.contains(k));
        self
    }
}
