//! What a cycle produced, with what it cost; its one log line. The renderings of an outcome (text, JSON)
//! are `present::outcome`'s: [`Outcome::view`] hands them the parts in their own terms.

use std::time::{Duration, Instant};

use super::side_effects::Done;
use crate::alerts::AlertsOutcome;
use crate::domain::{Report, Watched};
use crate::notify::{EmailOutcome, EmailStatus};
use crate::present::outcome::OutcomeView;
use crate::present::text::{DryRunEmail, EmailSection};
use crate::snow::Client;
use crate::writeback::WriteBack;

/// What a cycle produced, with what it cost.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub write_back: WriteBack,
    /// `None` when no `[email]` is configured or `--no-email` was given.
    pub(crate) email: Option<EmailOutcome>,
    /// `None` when no `[alertmanager]` is configured, `--no-alerts` was given or the check is selected.
    pub(crate) alerts: Option<AlertsOutcome>,
    pub requests: u64,
    pub(crate) response_bytes: u64,
    pub(crate) duration: Duration,
}

impl Outcome {
    /// What this cycle's email did; `None` when no `[email]` is configured or `--no-email` was given.
    pub fn email(&self) -> Option<&EmailOutcome> {
        self.email.as_ref()
    }

    /// What this cycle's alerts did; `None` when none were posted (no `[alertmanager]`, `--no-alerts`, a
    /// selected check).
    pub(crate) fn alerts(&self) -> Option<&AlertsOutcome> {
        self.alerts.as_ref()
    }

    /// The one line a cycle logs: duration, requests, findings by category (and, as they land,
    /// records created/counted/resolved, the email sent or queued and the alerts posted).
    pub(crate) fn summary_line(&self) -> String {
        let by: Vec<String> =
            self.report.summary.findings_by_category.iter().map(|(c, n)| format!("{}={n}", c.name())).collect();
        let alerts = self.alerts.as_ref().map(|a| format!("; alerts: {}", a.summary())).unwrap_or_default();
        format!(
            "cycle {} in {} ms: {} requests, {} bytes; findings={} [{}] warnings={}; {}; {}{alerts}",
            self.report.status.label(),
            self.duration.as_millis(),
            self.requests,
            self.response_bytes,
            self.report.findings.len(),
            by.join(" "),
            self.report.warnings.len(),
            self.write_back.summary(),
            self.email.as_ref().map_or_else(|| "email off".to_string(), EmailOutcome::summary)
        )
    }

    /// What the text report's email section shows; `None` without email.
    pub(crate) fn email_section(&self) -> Option<EmailSection> {
        let email = self.email.as_ref()?;
        let (dry_run, text) = match &email.status {
            EmailStatus::DryRun { subject, recipients, text, size, .. } => {
                let (subject, recipients, size) = (subject.clone(), recipients.clone(), *size);
                (Some(DryRunEmail { subject, recipients, size }), Some(text.clone()))
            }
            _ => (None, email.text.clone()),
        };
        Some(EmailSection { summary: email.summary(), dry_run, text, problems: email.problems.clone() })
    }

    /// The parts the renderings show; `watch` is what a watch (`check --until-ok`) did before this report.
    pub fn view<'a>(&'a self, watch: Option<&'a Watched>) -> OutcomeView<'a> {
        OutcomeView {
            report: &self.report,
            write_back: &self.write_back,
            email: self.email_section(),
            email_json: serde_json::json!(self.email),
            alerts: self.alerts.as_ref().map(alerts_lines),
            alerts_json: self.alerts.as_ref().map(|a| serde_json::json!(a)),
            duration: self.duration,
            watch,
            show_email: false,
        }
    }
}

/// Where a cycle's cost is measured from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter {
    started: Instant,
    requests: u64,
    bytes: u64,
}

impl Meter {
    pub(crate) fn start(client: &Client) -> Meter {
        Meter { started: Instant::now(), requests: client.stats().requests(), bytes: client.stats().response_bytes() }
    }

    /// The outcome of a cycle whose side effects are done, with what it cost since the start.
    pub(super) fn outcome(self, client: &Client, report: Report, done: Done) -> Outcome {
        let Done { write_back, email, alerts } = done;
        Outcome {
            report,
            write_back,
            email,
            alerts,
            requests: client.stats().requests() - self.requests,
            response_bytes: client.stats().response_bytes() - self.bytes,
            duration: self.started.elapsed(),
        }
    }
}

/// The text report's lines of the alerts: what was posted, then each problem of the state directory.
fn alerts_lines(alerts: &AlertsOutcome) -> Vec<String> {
    std::iter::once(alerts.summary()).chain(alerts.problems.iter().map(|p| format!("problem: {p}"))).collect()
}
