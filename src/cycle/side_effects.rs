//! The side effects of an observed report: write-back to `ecc_agent_issue`, then email, each cut off (and
//! saying so) when the cycle's deadline passes. The findings' history comes from the records read here.

use chrono::{DateTime, Utc};

use super::{CheckOptions, Cycle, Writes};
use crate::deadline::Deadline;
use crate::domain::Report;
use crate::notify::{self, EmailOutcome};
use crate::present::email::Links;
use crate::writeback::{self, Records, RecordsUnread, WriteBack};

impl Cycle<'_> {
    /// Write-back (as `writes` allows) and email, within `deadline`, dated `now` (the report's window end).
    pub(super) async fn side_effects(
        &self,
        report: &mut Report,
        writes: &Writes,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> (WriteBack, Option<EmailOutcome>) {
        let records = self.read_records(now, deadline).await;
        if let Ok(records) = &records {
            for f in &mut report.findings {
                f.history = Some(writeback::history(f, records, now));
            }
        }
        let write_back = self.write_back(report, records, writes, deadline).await;
        let email = self.email(report, &write_back, now, deadline).await;
        (write_back, email)
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
}
