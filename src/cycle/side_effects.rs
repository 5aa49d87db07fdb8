//! The side effects of an observed report: write-back to `ecc_agent_issue`, then email, and, beside them, the
//! alerts to `[alertmanager]`; each cut off (and saying so) when the cycle's deadline passes. The findings'
//! history comes from the records read here.

use chrono::{DateTime, Utc};

use super::{CheckOptions, Cycle, Writes};
use crate::alerts::{self, AlertsOutcome};
use crate::deadline::Deadline;
use crate::domain::{Report, Scope};
use crate::notify::{self, EmailOutcome};
use crate::present::email::Links;
use crate::writeback::{self, Records, RecordsUnread, WriteBack};

/// How long `MidwatchCheckFailed` may take to post when the cycle's deadline has passed (or nearly): within
/// the 10 s between the default deadline (50 s) and a monitoring plugin's limit (60 s).
const FAILURE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// What a cycle's side effects did.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) write_back: WriteBack,
    /// `None` when no `[email]` is configured, `--no-email` was given or the check is selected.
    pub(super) email: Option<EmailOutcome>,
    /// `None` when no `[alertmanager]` is configured, `--no-alerts` was given or the check is selected.
    pub(super) alerts: Option<AlertsOutcome>,
}

impl Cycle<'_> {
    /// Write-back (as `writes` allows) then email, and the alerts meanwhile (they need the findings' history, not
    /// the records written), within `deadline`, dated `now` (the report's window end).
    pub(super) async fn side_effects(
        &self,
        report: &mut Report,
        writes: &Writes,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> Done {
        let records = self.read_records(now, deadline).await;
        if let Ok(records) = &records {
            for f in &mut report.findings {
                f.history = Some(writeback::history(f, records, now));
            }
        }
        let report = &*report;
        let written_and_emailed = async {
            let write_back = self.write_back(report, records, writes, deadline).await;
            let email = self.email(report, &write_back, now, deadline).await;
            (write_back, email)
        };
        let ((write_back, email), alerts) = tokio::join!(written_and_emailed, self.alerts(report, now, deadline));
        Done { write_back, email, alerts }
    }

    /// The records of our source: the open ones the plan needs and the recently resolved ones the history
    /// needs, in one read. Read with `--no-write` too (the findings' history comes from them); a failure is
    /// logged and leaves the findings without history.
    async fn read_records(&self, now: DateTime<Utc>, deadline: Deadline) -> Result<Records, RecordsUnread> {
        let reading = writeback::read_records(self.client, &self.config.check.issue_source, now);
        match deadline.bounded(reading).await {
            Ok(Ok(records)) => Ok(records),
            Ok(Err(e)) => {
                tracing::warn!(
                    error = %e,
                    "cannot read ecc_agent_issue: nothing written this cycle, no finding's history"
                );
                Err(RecordsUnread::Api(e))
            }
            Err(_) => {
                let error = RecordsUnread::DeadlinePassed;
                tracing::warn!("{error}: nothing written this cycle, no finding's history; the next cycle converges");
                Err(error)
            }
        }
    }

    /// Reconciles the findings with the open records of our source and, unless told not to, applies
    /// the plan, dated as the report's window ends. A failure here, or the deadline cutting it off, never changes
    /// the report or the exit status.
    async fn write_back(
        &self,
        report: &Report,
        records: Result<Records, RecordsUnread>,
        writes: &Writes,
        deadline: Deadline,
    ) -> WriteBack {
        let now = report.window.end;
        let CheckOptions { no_write, dry_run, .. } = *self.opts;
        if no_write {
            return WriteBack::Disabled;
        }
        let source = self.config.check.issue_source.to_string();
        let open = match records {
            Ok(records) => records.open,
            Err(error) => return WriteBack::Failed { source, error },
        };
        // A selected check counts and resolves only its users' records; another user's record is left as it is.
        let open = match &report.selected_users {
            Some(users) => writeback::records_of(open, users),
            None => open,
        };
        let plan = match writes {
            Writes::Plan => writeback::reconcile(&report.findings, &open, &source, now),
            // Clear users have no finding: reconciled with none, each of their open records is resolved.
            Writes::ResolveClear(clear) => writeback::reconcile(&[], &writeback::records_of(open, clear), &source, now),
        };
        if dry_run {
            return WriteBack::DryRun { source, plan };
        }
        let config = self.config;
        let applying = writeback::apply(self.client, &plan, &config.check.issue_source, config.instance.batch);
        match deadline.bounded(applying).await {
            Ok(applied) => WriteBack::Applied { source, plan, applied },
            Err(_) => {
                tracing::warn!("the check's deadline passed while writing ecc_agent_issue; the next cycle converges");
                WriteBack::CutOff { source, plan }
            }
        }
    }

    /// The email of this cycle, unless none is configured, `--no-email` was given or the check is selected.
    async fn email(
        &self,
        report: &Report,
        write_back: &WriteBack,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> Option<EmailOutcome> {
        let (Some(email), false) = (&self.config.email, self.opts.no_email) else { return None };
        // The email state is of everyone's findings: a check of a few users would read as the others resolved.
        if report.selected_users.is_some() {
            tracing::info!("a selected check (--user, --mid-server) sends no email; the service's cycles do");
            return None;
        }
        let links = Links { instance_url: self.config.instance.url.clone(), issue_ids: write_back.issue_ids() };
        let mode = if self.opts.dry_run { notify::Mode::DryRun } else { notify::Mode::Send };
        // Composing and queueing are local; delivery is bounded by the deadline.
        let notice = notify::Notice { report, links: &links, now };
        Some(notify::notify(email, &self.config.state_directory, &notice, mode, deadline).await)
    }

    /// `MidwatchCheckFailed` for this cycle, which could not complete (`status_line`: its UNKNOWN line, `now`:
    /// this host's clock), unless no `[alertmanager]` is configured, `--no-alerts` or `--dry-run` was given, or
    /// the check is selected. Within what is left of `deadline`, and [`FAILURE_GRACE`] at least: the failure may
    /// be the deadline itself. Called where the failure is seen (`check`, each cycle of `run`).
    pub(crate) async fn failed(
        &self,
        status_line: &str,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> Option<AlertsOutcome> {
        let target = self.alert_target().filter(|t| !t.dry_run)?;
        let deadline = deadline.max(Deadline::after(FAILURE_GRACE));
        Some(alerts::post_failure(&target, status_line, now, deadline).await)
    }

    /// This cycle's alerts, unless no `[alertmanager]` is configured, `--no-alerts` was given or the check is
    /// selected (see [`Cycle::alert_target`]).
    async fn alerts(&self, report: &Report, now: DateTime<Utc>, deadline: Deadline) -> Option<AlertsOutcome> {
        let target = self.alert_target()?;
        Some(alerts::post_report(&target, report, now, deadline).await)
    }

    /// Where this cycle's alerts go (a dry run's only decided), unless no `[alertmanager]` is configured,
    /// `--no-alerts` was given or the check is selected: a selected check's findings would read as everyone
    /// else's resolved.
    fn alert_target(&self) -> Option<alerts::Target<'_>> {
        let config = self.config.alertmanager.as_ref().filter(|_| !self.opts.no_alerts)?;
        if self.opts.scope != Scope::All {
            tracing::info!("a selected check (--user, --mid-server) posts no alerts; the service's cycles do");
            return None;
        }
        Some(alerts::Target {
            config,
            state_dir: &self.config.state_directory,
            instance_url: &self.config.instance.url,
            lifetime: self.opts.alert_lifetime,
            dry_run: self.opts.dry_run,
        })
    }
}
