//! Email notifications: the detailed findings, mailed to the administrators when they change.
//!
//! One call of [`notify`] per cycle, after evaluation (and write-back), each step a function of its own:
//!
//! 1. **decide**: compare the findings (user, category, message) with those of the last email composed,
//!    kept in `<state>/email-state.json`, according to [`SendPolicy`];
//! 2. **compose**: render the text and HTML alternatives (`crate::present::email`) within `[email] max_size`,
//!    with a short form for a relay that refuses the message for its size (`size.rs`), and put the fully
//!    rendered message into the outbox, `<state>/outbox/`, one file per message, written atomically; then
//!    record the new last-notified state (so `on_change` does not queue the same content again next cycle);
//! 3. **deliver** every message of the outbox, oldest first, over one SMTP connection, until the cycle's
//!    [`Deadline`]; a delivered message is removed, a message the server could not take now (server down, 4xx,
//!    timeout, the deadline) stays for the next cycle;
//! 4. the **outcome**: what became of this cycle's message and of the earlier ones.
//!
//! # Delivery guarantee: at least once, at most one duplicate per interrupted delivery
//!
//! A notification is never lost once composed: it is on disk before the first SMTP command, and it leaves the
//! outbox only when the server has accepted it (250 after the message data) or refused it permanently (5xx);
//! a refusal for its size (552) is not a refusal of the notification: its short form is sent at once instead.
//! The outbox file keeps the recipients still owed the message; each delivery is one SMTP transaction for all of
//! them, so a 4xx or 5xx for one recipient affects only that recipient:
//!
//! - 4xx (or no answer) for a recipient: the message stays in the outbox for that recipient only;
//! - 5xx for a recipient: logged as an error with the recipient and the server's reply, and that recipient is
//!   dropped; when every recipient is refused permanently the message is dropped. A 5xx never blocks later mail.
//!
//! Just before the message data is sent (the SMTP `DATA` command), a *sending* marker naming the recipients is
//! written into the outbox file; it is cleared when the server answers. If midwatch crashes (or the connection
//! breaks, or the server does not answer in time) after the data was sent but before the outbox file was
//! updated, the next cycle finds the marker, cannot know whether the server kept the message, and sends it
//! **once more**, logging a warning that it may be a duplicate. The message is byte for byte the same, with the
//! same `Message-ID`, so a duplicate is recognisable (and many mail systems drop it). Without such an interruption
//! a message is sent exactly once. A crash between writing the outbox file and recording the last-notified state
//! can, at worst, compose one more message with the same content on the next cycle.
//!
//! Nothing is sent that the state directory cannot account for: a message that cannot be written to the outbox,
//! or whose content cannot be recorded as notified, is not sent (each cycle says so, as an error naming the file
//! and the OS error), and a message whose *sending* marker cannot be written gets `RSET` instead of `DATA` and
//! stays queued. An unwritable state directory therefore stops email until it is fixed; it never repeats mail.
//!
//! The state directory is locked (an OS `flock` on `<state>/email.lock`, released by the kernel however the
//! holder ends) while a cycle notifies, so a manual `midwatch check` and the service cannot deliver the same
//! outbox message at the same time. A state directory owned by another user is not used at all: files this
//! process wrote there could be unreadable to the owner's service (`sudo midwatch check` next to the service is
//! told to run as the directory's owner instead). Nor is one that is not a directory, not writable or cannot be
//! created: the cycle skips email and says why once (`outbox::check_state_directory`, which `config check` runs).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{EmailConfig, SendPolicy};
use crate::deadline::Deadline;
use crate::domain::{FindingKey, Report, Warning};
use crate::present::email::{Delta, Links};
use outbox::{NotifiedState, Outbox, OutboxEntry, OutboxError, StateLock};
use smtp::{BuildError, DeliveryReport};

pub mod outbox;
mod size;
mod smtp;

pub use smtp::probe;

/// Whether [`notify`] may touch the network and the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Send,
    /// Decide and render only: nothing is sent, queued or recorded.
    DryRun,
}

/// What happened to this cycle's email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum EmailStatus {
    /// No message was composed this cycle.
    NotNeeded { reason: String },
    /// Accepted by the server for every recipient.
    Sent { message_id: String, subject: String, recipients: Vec<String> },
    /// Kept in the outbox for (some of) its recipients, to be retried next cycle.
    Queued { message_id: String, subject: String, reason: String, delivered_to: Vec<String>, queued_for: Vec<String> },
    /// Refused permanently (5xx) for every recipient not already served; dropped.
    Rejected { message_id: String, subject: String, delivered_to: Vec<String> },
    /// `--dry-run`: what would be sent; `size` is the message's as it would go to the relay, in bytes.
    DryRun { subject: String, recipients: Vec<String>, text: String, size: usize, outbox_pending: usize },
    /// Notification was skipped: another process holds the state directory, or the message could not be built.
    Skipped { reason: String },
}

/// A recipient the server refused with a 5xx reply: logged, never retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermanentFailure {
    pub(crate) message_id: String,
    pub recipient: String,
    /// The server's reply, e.g. `550 5.1.1 no such user`.
    pub reply: String,
}

/// The result of one [`notify`] call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailOutcome {
    #[serde(flatten)]
    pub status: EmailStatus,
    /// Messages queued by earlier cycles that were delivered (or finished) during this call.
    pub outbox_delivered: usize,
    /// Messages left in the outbox after this call (including this cycle's, when queued).
    pub outbox_pending: usize,
    /// Why earlier messages are still in the outbox (the first one's reason), when some are: a refused
    /// certificate is said every cycle, not only in the cycle that queued the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox_reason: Option<String>,
    /// Every recipient refused permanently during this call, all messages together.
    pub permanent_failures: Vec<PermanentFailure>,
    /// Messages dropped from the outbox undelivered during this call (too old, or too many).
    pub dropped: Vec<outbox::DroppedMessage>,
    /// Local problems (state directory not writable, unreadable outbox files, …).
    pub problems: Vec<String>,
    /// The text body of this cycle's message, when one was sent or queued (a dry run's is in its status): what
    /// `check --show-email` prints.
    #[serde(skip)]
    pub text: Option<String>,
}

impl EmailOutcome {
    fn new(status: EmailStatus) -> EmailOutcome {
        EmailOutcome {
            status,
            outbox_delivered: 0,
            outbox_pending: 0,
            outbox_reason: None,
            permanent_failures: Vec::new(),
            dropped: Vec::new(),
            problems: Vec::new(),
            text: None,
        }
    }

    /// A short phrase for the cycle's log line: `email sent to 2 recipients`, `email queued (smtp down: …)`.
    pub fn summary(&self) -> String {
        let mut s = match &self.status {
            EmailStatus::NotNeeded { reason } => format!("email not needed ({reason})"),
            EmailStatus::Sent { recipients, .. } => format!("email sent to {}", plural(recipients.len(), "recipient")),
            EmailStatus::Queued { reason, delivered_to, .. } if delivered_to.is_empty() => {
                format!("email queued ({reason})")
            }
            EmailStatus::Queued { reason, delivered_to, queued_for, .. } => format!(
                "email sent to {}, queued for {} ({reason})",
                plural(delivered_to.len(), "recipient"),
                queued_for.len()
            ),
            EmailStatus::Rejected { delivered_to, .. } if delivered_to.is_empty() => {
                "email refused permanently for every recipient".to_string()
            }
            EmailStatus::Rejected { delivered_to, .. } => {
                format!("email sent to {}, refused permanently for the others", plural(delivered_to.len(), "recipient"))
            }
            EmailStatus::DryRun { recipients, subject, .. } => {
                format!("email dry run: would send \"{subject}\" to {}", plural(recipients.len(), "recipient"))
            }
            EmailStatus::Skipped { reason } => format!("email skipped ({reason})"),
        };
        if self.outbox_delivered > 0 {
            s.push_str(&format!("; {} from the outbox delivered", plural(self.outbox_delivered, "earlier email")));
        }
        let new_queued = usize::from(matches!(self.status, EmailStatus::Queued { .. }));
        if self.outbox_pending > new_queued {
            s.push_str(&format!("; {} still in the outbox", plural(self.outbox_pending - new_queued, "earlier email")));
            let said = match &self.status {
                EmailStatus::Queued { reason, .. } => Some(reason),
                _ => None,
            };
            if let Some(reason) = self.outbox_reason.as_ref().filter(|r| Some(*r) != said) {
                s.push_str(&format!(" ({reason})"));
            }
        }
        if !self.dropped.is_empty() {
            s.push_str(&format!(
                "; {} dropped from the outbox undelivered ({})",
                plural(self.dropped.len(), "earlier email"),
                self.dropped[0].reason
            ));
        }
        if !self.permanent_failures.is_empty() {
            s.push_str(&format!("; {} refused permanently", plural(self.permanent_failures.len(), "recipient")));
        }
        if !self.problems.is_empty() {
            s.push_str(&format!("; {}", plural(self.problems.len(), "problem")));
        }
        s
    }

    /// What the status line says when this cycle's email did not reach every recipient (`None` when it did, or
    /// when none was due).
    pub(crate) fn unfinished(&self) -> Option<&'static str> {
        match &self.status {
            EmailStatus::Queued { delivered_to, .. } if delivered_to.is_empty() => Some("email not sent"),
            EmailStatus::Queued { .. } => Some("email not sent to every recipient"),
            EmailStatus::Rejected { .. } => Some("email refused"),
            EmailStatus::Skipped { .. } => Some("email not sent"),
            EmailStatus::NotNeeded { .. } | EmailStatus::Sent { .. } | EmailStatus::DryRun { .. } => None,
        }
    }
}

/// How the findings compare with the last email composed (`None`: nothing was ever sent, every finding is new).
pub fn changes<'a>(report: &'a Report, last: Option<&NotifiedState>) -> Delta<'a> {
    match last {
        Some(l) => Delta::against(report, &l.findings, Some(l.notified_at)).with_warnings_before(&l.warnings),
        None => Delta::against(report, &[], None),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// What one cycle has to tell: its report, the links into the instance the email shows, and the cycle's time.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub report: &'a Report,
    pub links: &'a Links,
    pub now: DateTime<Utc>,
}

/// Called once per cycle after evaluation (and write-back). Queues this cycle's message when the policy says so,
/// then delivers the outbox (earlier messages first, oldest first) until `deadline`. See the module documentation
/// for the guarantee. Never panics on network or file-system errors: they end up in the outcome and the log.
pub async fn notify(
    cfg: &EmailConfig,
    state_dir: &Path,
    notice: &Notice<'_>,
    mode: Mode,
    deadline: Deadline,
) -> EmailOutcome {
    match mode {
        Mode::DryRun => dry_run(cfg, state_dir, notice),
        Mode::Send => send(cfg, state_dir, notice, deadline).await,
    }
}

/// Why no message is needed this cycle, if none is. With `send = "on_change"`, unchanged findings still open
/// get a reminder once `[email] remind_every` has passed since the last email.
fn decide(
    cfg: &EmailConfig,
    last: Option<&NotifiedState>,
    digest: &str,
    report: &Report,
    now: DateTime<Utc>,
) -> Option<String> {
    match cfg.send {
        SendPolicy::Never => Some("send = \"never\"".into()),
        // Nothing to report and nothing ever reported: not even `always` starts with an empty email.
        _ if last.is_none() && report.findings.is_empty() && report.warnings.is_empty() => Some("no findings".into()),
        SendPolicy::OnChange if last.is_some_and(|l| l.digest == digest) => {
            let due = cfg.remind_every.zip(last).is_some_and(|(every, l)| {
                chrono::TimeDelta::from_std(every).is_ok_and(|every| now - l.notified_at >= every)
            });
            if due && !(report.findings.is_empty() && report.warnings.is_empty()) {
                return None;
            }
            Some("findings unchanged since the last email".into())
        }
        _ => None,
    }
}

/// The message `decide` asked for repeats the last one's findings: a reminder (`[email] remind_every`).
fn is_reminder(cfg: &EmailConfig, last: Option<&NotifiedState>, digest: &str) -> bool {
    cfg.send == SendPolicy::OnChange && last.is_some_and(|l| l.digest == digest)
}

fn recipients(cfg: &EmailConfig) -> Vec<String> {
    cfg.to.iter().map(|m| m.email.to_string()).collect()
}

fn dry_run(cfg: &EmailConfig, state_dir: &Path, notice: &Notice<'_>) -> EmailOutcome {
    let mut problems = Vec::new();
    let last = NotifiedState::load(state_dir).unwrap_or_else(|e| {
        problems.push(e.to_string());
        None
    });
    let outbox_pending = Outbox::new(state_dir).count();
    let current = FindingKey::of_report(notice.report);
    let digest = outbox::digest_with_warnings(&current, &Warning::keys_of(&notice.report.warnings));
    let status = match decide(cfg, last.as_ref(), &digest, notice.report, notice.now) {
        Some(reason) => EmailStatus::NotNeeded { reason },
        None => match size::compose(cfg, notice, &delta(cfg, notice.report, last.as_ref(), &digest), &digest) {
            Ok(composed) => EmailStatus::DryRun {
                subject: composed.built.subject,
                recipients: recipients(cfg),
                text: composed.text,
                size: smtp::wire_size(&composed.built.message),
                outbox_pending,
            },
            Err(e) => EmailStatus::Skipped { reason: format!("cannot build the email: {e}") },
        },
    };
    EmailOutcome { outbox_pending, problems, ..EmailOutcome::new(status) }
}

/// What the message `decide` asked for tells: the change since the last email, or a reminder.
fn delta<'a>(cfg: &EmailConfig, report: &'a Report, last: Option<&NotifiedState>, digest: &str) -> Delta<'a> {
    let mut delta = changes(report, last);
    delta.reminder = is_reminder(cfg, last, digest);
    delta
}

async fn send(cfg: &EmailConfig, state_dir: &Path, notice: &Notice<'_>, deadline: Deadline) -> EmailOutcome {
    let mut problems = Vec::new();
    let _lock = match lock(state_dir, &mut problems) {
        Ok(lock) => lock,
        Err(skipped) => return *skipped,
    };
    let outbox = Outbox::new(state_dir);
    let last = NotifiedState::load(state_dir).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the last-notified state is unreadable; every finding counts as new");
        problems.push(e.to_string());
        None
    });
    let current = FindingKey::of_report(notice.report);
    let warnings = Warning::keys_of(&notice.report.warnings);
    let digest = outbox::digest_with_warnings(&current, &warnings);
    let (entries, load_problems) = outbox.load();
    problems.extend(load_problems.iter().map(ToString::to_string));
    let not_needed = decide(cfg, last.as_ref(), &digest, notice.report, notice.now);
    let room = usize::from(not_needed.is_none());
    let (mut entries, dropped, expire_problems) = outbox.expire(entries, cfg, room, notice.now);
    problems.extend(expire_problems.iter().map(ToString::to_string));
    let composed = match not_needed {
        Some(reason) => Err(EmailStatus::NotNeeded { reason }),
        None => compose(cfg, state_dir, notice, Findings { last, current, warnings, digest }, &mut entries)
            .map_err(|e| not_queued(e, state_dir, &mut problems)),
    };
    let delivery = smtp::deliver(cfg, &outbox, entries, notice.now, deadline).await;
    outcome(cfg, composed, delivery, dropped, problems)
}

/// The state directory's lock, when it can be had. `Err` is this cycle's outcome without it (another midwatch
/// holds it, or the directory is another user's or cannot be used: one problem); a lock the file system
/// refuses is only noted in `problems`.
fn lock(state_dir: &Path, problems: &mut Vec<String>) -> Result<Option<StateLock>, Box<EmailOutcome>> {
    match StateLock::acquire(state_dir) {
        Ok(lock) => Ok(Some(lock)),
        Err(e @ outbox::LockError::Busy { .. }) => {
            let reason = e.to_string();
            tracing::warn!(%reason, "email skipped this cycle");
            Err(Box::new(EmailOutcome::new(EmailStatus::Skipped { reason })))
        }
        Err(e @ (outbox::LockError::Foreign { .. } | outbox::LockError::Unusable { .. })) => {
            let reason = e.to_string();
            tracing::error!(%reason, "email skipped this cycle");
            Err(Box::new(EmailOutcome {
                problems: vec![reason.clone()],
                ..EmailOutcome::new(EmailStatus::Skipped { reason })
            }))
        }
        Err(outbox::LockError::Io(e)) => {
            // Better a notification without the lock than none: note it and go on.
            tracing::error!(error = %e, "cannot lock the state directory; notifying without the lock");
            problems.push(e.to_string());
            Ok(None)
        }
    }
}

/// The findings `decide` compared: the last email's, and this cycle's with their digest.
struct Findings {
    last: Option<NotifiedState>,
    current: Vec<FindingKey>,
    /// This cycle's early warnings' keys.
    warnings: Vec<String>,
    digest: String,
}

/// This cycle's message, in the outbox.
struct Queued {
    message_id: String,
    subject: String,
    text: String,
}

/// Why this cycle's message is not in the outbox.
#[derive(Debug, thiserror::Error)]
enum NotQueued {
    /// It could not be built: nothing was written.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// It could not be written, or its content could not be recorded as notified (and it was removed again).
    #[error(transparent)]
    Store(#[from] OutboxError),
    /// It was written, its content could not be recorded, and it could not be removed again.
    #[error("{record}; {removing}")]
    Stranded { record: Box<OutboxError>, removing: Box<OutboxError> },
}

/// Renders this cycle's message, puts it into the outbox (and `entries`) and records its content as notified.
/// Queued and recorded, or not sent at all: a message that is not in the outbox, or whose content is not
/// recorded as notified, would be composed and sent again every cycle.
fn compose(
    cfg: &EmailConfig,
    state_dir: &Path,
    notice: &Notice<'_>,
    findings: Findings,
    entries: &mut Vec<OutboxEntry>,
) -> Result<Queued, NotQueued> {
    let Findings { last, current, warnings, digest } = findings;
    let size::Composed { text, built } =
        size::compose(cfg, notice, &delta(cfg, notice.report, last.as_ref(), &digest), &digest)?;
    let queued = Queued { message_id: built.message_id.clone(), subject: built.subject.clone(), text };
    let outbox = Outbox::new(state_dir);
    let mut entry = OutboxEntry::new(outbox.next_seq(entries), cfg, built, notice.now);
    let state = NotifiedState {
        format: outbox::STATE_FORMAT,
        digest,
        notified_at: notice.now,
        message_id: queued.message_id.clone(),
        findings: current,
        warnings,
    };
    outbox.store(&mut entry)?;
    if let Err(record) = state.store(state_dir) {
        return Err(match outbox.remove(&entry) {
            Ok(()) => NotQueued::Store(record),
            Err(removing) => NotQueued::Stranded { record: Box::new(record), removing: Box::new(removing) },
        });
    }
    entries.push(entry);
    Ok(queued)
}

/// This cycle's status when its message could not be queued: logged, and a problem when the state directory
/// is at fault.
fn not_queued(e: NotQueued, state_dir: &Path, problems: &mut Vec<String>) -> EmailStatus {
    if let NotQueued::Build(e) = &e {
        tracing::error!(error = %e, "cannot build the email");
        return EmailStatus::Skipped { reason: format!("cannot build the email: {e}") };
    }
    tracing::error!(error = %e, "cannot queue the email; nothing is sent until the state directory is writable");
    problems.push(e.to_string());
    EmailStatus::Skipped {
        reason: format!("cannot queue the email ({e}); fix the state directory {}", state_dir.display()),
    }
}

/// What became of this cycle's message (`composed`: queued, or the status saying why not) and of the earlier ones.
fn outcome(
    cfg: &EmailConfig,
    composed: Result<Queued, EmailStatus>,
    delivery: DeliveryReport,
    dropped: Vec<outbox::DroppedMessage>,
    mut problems: Vec<String>,
) -> EmailOutcome {
    problems.extend(delivery.problems.iter().map(ToString::to_string));
    let new_id = composed.as_ref().ok().map(|q| q.message_id.as_str());
    let earlier = || delivery.results.iter().filter(|r| Some(r.message_id.as_str()) != new_id);
    let outbox_delivered = earlier().filter(|r| r.finished).count();
    let outbox_reason = earlier().filter(|r| !r.finished).find_map(|r| r.reason.clone());
    let text = composed.as_ref().ok().map(|q| q.text.clone());
    let status = match composed {
        Err(status) => status,
        Ok(Queued { message_id, subject, .. }) => match delivery.results.iter().find(|r| r.message_id == message_id) {
            Some(r) if r.finished && !r.rejected_any => {
                EmailStatus::Sent { message_id, subject, recipients: r.delivered_to.clone() }
            }
            Some(r) if r.finished => {
                EmailStatus::Rejected { message_id, subject, delivered_to: r.delivered_to.clone() }
            }
            Some(r) => EmailStatus::Queued {
                message_id,
                subject,
                reason: r.reason.clone().unwrap_or_else(|| "not delivered yet".into()),
                delivered_to: r.delivered_to.clone(),
                queued_for: r.pending.clone(),
            },
            None => EmailStatus::Queued {
                message_id,
                subject,
                reason: "not attempted".into(),
                delivered_to: Vec::new(),
                queued_for: recipients(cfg),
            },
        },
    };
    EmailOutcome {
        status,
        outbox_delivered,
        outbox_pending: delivery.pending,
        outbox_reason,
        permanent_failures: delivery.permanent_failures,
        dropped,
        problems,
        text,
    }
}
