//! Email notifications: the detailed findings, mailed to the administrators when they change.
//!
//! One call of [`notify`] per cycle, after evaluation (and write-back):
//!
//! 1. **decide**: compare the findings (user, category, message) with those of the last email composed,
//!    kept in `<state>/email-state.json`, according to [`SendPolicy`];
//! 2. **compose**: render the text and HTML alternatives ([`render`]) and put the fully rendered message into
//!    the outbox, `<state>/outbox/`, one file per message, written atomically; then record the new
//!    last-notified state (so `on_change` does not queue the same content again next cycle);
//! 3. **deliver** every message of the outbox, oldest first, over one SMTP connection; a delivered message is
//!    removed, a message the server could not take now (server down, 4xx, timeout) stays for the next cycle.
//!
//! # Delivery guarantee: at least once, at most one duplicate per interrupted delivery
//!
//! A notification is never lost once composed: it is on disk before the first SMTP command, and it leaves the
//! outbox only when the server has accepted it (250 after the message data) or refused it permanently (5xx).
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
//! The state directory is locked (`<state>/email.lock`, holding the owner's pid) while a cycle notifies, so a
//! manual `midwatch check` and the service cannot deliver the same outbox message at the same time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Environment;
use crate::domain::{FindingKey, Report};
use crate::present::email::{self, Delta};
use crate::present::text::{DryRunEmail, EmailSection};

pub mod outbox;
mod smtp;

pub use crate::present::email::Links;
pub use smtp::probe;

/// The default SMTP timeout (connection and each command).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// `smtps://`: TLS from the first byte (usually port 465).
    Implicit,
    /// `smtp://` with `tls = "required"`: STARTTLS, and no mail if the server does not offer it.
    Required,
    /// `smtp://` with `tls = "opportunistic"`: STARTTLS when the server offers it, else plaintext.
    Opportunistic,
    /// `smtp://` with `tls = "none"`: plaintext, accepted only for loopback hosts.
    None,
}

/// When a cycle sends an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendPolicy {
    /// Only when the set of findings differs from the last email's.
    #[default]
    OnChange,
    /// Every cycle, even when nothing changed (and when everything is fine), once a first email has been sent:
    /// a cycle with no findings and no email before it sends nothing.
    Always,
    /// Never compose a message (messages already in the outbox are still delivered).
    Never,
}

impl SendPolicy {
    pub fn name(self) -> &'static str {
        match self {
            Self::OnChange => "on_change",
            Self::Always => "always",
            Self::Never => "never",
        }
    }
}

/// SMTP authentication. The password is never logged nor printed (`Debug` shows `[REDACTED]`).
#[derive(Debug, Clone)]
pub struct SmtpCredentials {
    pub user: String,
    pub password: SecretString,
}

/// A validated `[email]` section.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The SMTP server's host name or IP address (without brackets).
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<SmtpCredentials>,
    pub from: Mailbox,
    /// At least one recipient, each address once.
    pub to: Vec<Mailbox>,
    /// Connection timeout and the limit for every SMTP command.
    pub timeout: Duration,
    pub send: SendPolicy,
}

impl EmailConfig {
    /// A plaintext connection to an SMTP server on `127.0.0.1:port` (the demo's and the tests' [`sink::SmtpSink`]).
    pub fn loopback(port: u16, from: Mailbox, to: Vec<Mailbox>) -> EmailConfig {
        EmailConfig {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::None,
            credentials: None,
            from,
            to,
            timeout: Duration::from_secs(10),
            send: SendPolicy::OnChange,
        }
    }

    /// The server as a URL, for messages: `smtp://host:port` or `smtps://host:port`.
    pub fn server_url(&self) -> String {
        let scheme = if self.tls == TlsMode::Implicit { "smtps" } else { "smtp" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// `to` accepts one address or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRecipients {
    One(String),
    Many(Vec<String>),
}

/// The `[email]` section as written in the file; [`validate_email`] turns it into an [`EmailConfig`].
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub url: Option<String>,
    pub tls: Option<String>,
    pub user: Option<String>,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub from: Option<String>,
    pub to: Option<RawRecipients>,
    pub timeout: Option<String>,
    pub send: Option<String>,
}

/// Validates `[email]`, naming every problem with its key.
pub fn validate_email(raw: RawEmail, env: &dyn Environment, problems: &mut Vec<String>) -> Option<EmailConfig> {
    let before = problems.len();
    let server = match raw.url.as_deref() {
        None => {
            problems.push(
                "[email] url is required, e.g. url = \"smtp://smtp.acme.com:587\" (STARTTLS) or \
                 \"smtps://smtp.acme.com\" (implicit TLS)"
                    .into(),
            );
            None
        }
        Some(u) => parse_smtp_url(u, raw.tls.as_deref()).map_err(|p| problems.push(p)).ok(),
    };
    let user = raw.user.filter(|u| !u.trim().is_empty());
    let credentials = match user {
        Some(user) => crate::config::resolve_secret(
            "[email] password",
            raw.password,
            raw.password_file,
            raw.password_env,
            env,
            problems,
        )
        .map(|password| SmtpCredentials { user, password }),
        None => {
            if raw.password.is_some() || raw.password_file.is_some() || raw.password_env.is_some() {
                problems.push(
                    "[email] a password is set but [email] user is not: set user too, or remove the password".into(),
                );
            }
            None
        }
    };
    let from = match raw.from.as_deref() {
        None => {
            problems.push("[email] from is required, e.g. from = \"midwatch <midwatch@acme.com>\"".into());
            None
        }
        Some(f) => f
            .trim()
            .parse::<Mailbox>()
            .map_err(|e| {
                problems.push(format!(
                    "[email] from = \"{f}\" is not a valid address ({e}): expected e.g. \"midwatch <midwatch@acme.com>\""
                ))
            })
            .ok(),
    };
    let to = validate_recipients(raw.to, problems);
    let timeout = match raw.timeout.as_deref() {
        None => Some(DEFAULT_TIMEOUT),
        Some(t) => match humantime::parse_duration(t) {
            Ok(d) if (Duration::from_secs(1)..=Duration::from_secs(600)).contains(&d) => Some(d),
            Ok(_) => {
                problems.push(format!("[email] timeout = \"{t}\" must be between 1s and 10m"));
                None
            }
            Err(e) => {
                problems.push(format!("[email] timeout = \"{t}\" is not a duration ({e}): expected e.g. \"30s\""));
                None
            }
        },
    };
    let send = match raw.send.as_deref() {
        None | Some("on_change") => Some(SendPolicy::OnChange),
        Some("always") => Some(SendPolicy::Always),
        Some("never") => Some(SendPolicy::Never),
        Some(other) => {
            problems.push(format!("[email] send = \"{other}\": expected \"on_change\", \"always\" or \"never\""));
            None
        }
    };
    let (host, port, tls) = server?;
    let config = EmailConfig { host, port, tls, credentials, from: from?, to: to?, timeout: timeout?, send: send? };
    (problems.len() == before).then_some(config)
}

fn validate_recipients(raw: Option<RawRecipients>, problems: &mut Vec<String>) -> Option<Vec<Mailbox>> {
    let list = match raw {
        None => Vec::new(),
        Some(RawRecipients::One(s)) => vec![s],
        Some(RawRecipients::Many(v)) => v,
    };
    if list.is_empty() {
        problems.push("[email] to needs at least one address, e.g. to = [\"mid-admins@acme.com\"]".into());
        return None;
    }
    let mut ok = true;
    let mut to: Vec<Mailbox> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match s.trim().parse::<Mailbox>() {
            Ok(m) => {
                let address = m.email.to_string().to_ascii_lowercase();
                if !to.iter().any(|t| t.email.to_string().to_ascii_lowercase() == address) {
                    to.push(m);
                }
            }
            Err(e) => {
                ok = false;
                problems.push(format!(
                    "[email] to[{i}] = \"{s}\" is not a valid address ({e}): expected e.g. \"mid-admins@acme.com\""
                ));
            }
        }
    }
    ok.then_some(to)
}

/// `smtp://host[:port]` (default port 25) with `tls` required (default) / opportunistic / none (loopback only),
/// or `smtps://host[:port]` (default port 465, implicit TLS).
fn parse_smtp_url(u: &str, tls: Option<&str>) -> Result<(String, u16, TlsMode), String> {
    let example = "expected e.g. \"smtp://smtp.acme.com:587\" or \"smtps://smtp.acme.com\"";
    let url = Url::parse(u).map_err(|e| format!("[email] url = \"{u}\" is not a URL ({e}): {example}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("[email] url must not contain credentials: set [email] user and password_file instead".to_string());
    }
    if (!url.path().is_empty() && url.path() != "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("[email] url = \"{u}\" must not have a path or query: {example}"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(format!("[email] url = \"{u}\" has no host: {example}")),
    };
    let (default_port, mode) = match url.scheme() {
        "smtps" => {
            return match tls {
                None | Some("required") => Ok((host, url.port().unwrap_or(465), TlsMode::Implicit)),
                Some(other) => Err(format!(
                    "[email] tls = \"{other}\" does not apply to smtps:// (implicit TLS, always encrypted): remove \
                     tls, or use an smtp:// url"
                )),
            };
        }
        "smtp" => (
            25,
            match tls {
                None | Some("required") => TlsMode::Required,
                Some("opportunistic") => TlsMode::Opportunistic,
                Some("none") => TlsMode::None,
                Some(other) => {
                    return Err(format!(
                        "[email] tls = \"{other}\": expected \"required\" (STARTTLS), \"opportunistic\" or \"none\""
                    ));
                }
            },
        ),
        other => return Err(format!("[email] url = \"{u}\" has scheme {other}: {example}")),
    };
    if mode == TlsMode::None && !crate::config::is_loopback(&url) {
        return Err(format!(
            "[email] tls = \"none\" sends mail (and any password) in clear, so it is accepted only for loopback \
             hosts (127.0.0.1, ::1, localhost), not {host}: use tls = \"required\" or \"opportunistic\""
        ));
    }
    Ok((host, url.port().unwrap_or(default_port), mode))
}

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
    /// `--dry-run`: what would be sent.
    DryRun { subject: String, recipients: Vec<String>, text: String, outbox_pending: usize },
    /// Notification was skipped: another process holds the state directory, or the message could not be built.
    Skipped { reason: String },
}

/// A recipient the server refused with a 5xx reply: logged, never retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermanentFailure {
    pub message_id: String,
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
    /// Every recipient refused permanently during this call, all messages together.
    pub permanent_failures: Vec<PermanentFailure>,
    /// Local problems (state directory not writable, unreadable outbox files, …).
    pub problems: Vec<String>,
}

impl EmailOutcome {
    fn new(status: EmailStatus) -> EmailOutcome {
        EmailOutcome {
            status,
            outbox_delivered: 0,
            outbox_pending: 0,
            permanent_failures: Vec::new(),
            problems: Vec::new(),
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
        }
        if !self.permanent_failures.is_empty() {
            s.push_str(&format!("; {} refused permanently", plural(self.permanent_failures.len(), "recipient")));
        }
        if !self.problems.is_empty() {
            s.push_str(&format!("; {}", plural(self.problems.len(), "problem")));
        }
        s
    }

    /// What the text report's email section shows.
    pub fn section(&self) -> EmailSection {
        let dry_run = match &self.status {
            EmailStatus::DryRun { subject, recipients, text, .. } => {
                Some(DryRunEmail { subject: subject.clone(), recipients: recipients.clone(), text: text.clone() })
            }
            _ => None,
        };
        EmailSection { summary: self.summary(), dry_run, problems: self.problems.clone() }
    }
}

/// How the findings compare with the last email composed (`None`: nothing was ever sent, every finding is new).
pub fn changes<'a>(report: &'a Report, last: Option<&outbox::NotifiedState>) -> Delta<'a> {
    match last {
        Some(l) => Delta::against(report, &l.findings, Some(l.notified_at)),
        None => Delta::against(report, &[], None),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// Called once per cycle after evaluation (and write-back). Queues this cycle's message when the policy says so,
/// then delivers the outbox (earlier messages first, oldest first). See the module documentation for the
/// guarantee. Never panics on network or file-system errors: they end up in the outcome and the log.
pub async fn notify(
    cfg: &EmailConfig,
    state_dir: &Path,
    report: &Report,
    links: &Links,
    mode: Mode,
    now: DateTime<Utc>,
) -> EmailOutcome {
    match mode {
        Mode::DryRun => dry_run(cfg, state_dir, report, links, now),
        Mode::Send => send(cfg, state_dir, report, links, now).await,
    }
}

/// Why no message is needed this cycle, if none is.
fn decide(cfg: &EmailConfig, last: Option<&outbox::NotifiedState>, digest: &str, report: &Report) -> Option<String> {
    match cfg.send {
        SendPolicy::Never => Some("send = \"never\"".into()),
        // Nothing to report and nothing ever reported: not even `always` starts with an empty email.
        _ if last.is_none() && report.findings.is_empty() => Some("no findings".into()),
        SendPolicy::OnChange if last.is_some_and(|l| l.digest == digest) => {
            Some("findings unchanged since the last email".into())
        }
        _ => None,
    }
}

fn recipients(cfg: &EmailConfig) -> Vec<String> {
    cfg.to.iter().map(|m| m.email.to_string()).collect()
}

fn dry_run(cfg: &EmailConfig, state_dir: &Path, report: &Report, links: &Links, now: DateTime<Utc>) -> EmailOutcome {
    let mut problems = Vec::new();
    let last = outbox::NotifiedState::load(state_dir).unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let outbox_pending = outbox::Outbox::new(state_dir).count();
    let current = FindingKey::of_report(report);
    let digest = outbox::digest(&current);
    let status = match decide(cfg, last.as_ref(), &digest, report) {
        Some(reason) => EmailStatus::NotNeeded { reason },
        None => {
            let delta = changes(report, last.as_ref());
            let email = email::render(report, &delta, links, now);
            EmailStatus::DryRun {
                subject: email.subject,
                recipients: recipients(cfg),
                text: email.text,
                outbox_pending,
            }
        }
    };
    EmailOutcome { outbox_pending, problems, ..EmailOutcome::new(status) }
}

async fn send(cfg: &EmailConfig, state_dir: &Path, report: &Report, links: &Links, now: DateTime<Utc>) -> EmailOutcome {
    let mut problems = Vec::new();
    let _lock = match outbox::StateLock::acquire(state_dir) {
        Ok(lock) => Some(lock),
        Err(outbox::LockError::Busy(reason)) => {
            tracing::warn!(%reason, "email skipped this cycle");
            return EmailOutcome::new(EmailStatus::Skipped { reason });
        }
        Err(outbox::LockError::Io(e)) => {
            // Better a notification without the lock than none: note it and go on.
            tracing::error!(error = %e, "cannot lock the state directory; notifying without the lock");
            problems.push(e);
            None
        }
    };
    let outbox = outbox::Outbox::new(state_dir);
    let last = outbox::NotifiedState::load(state_dir).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the last-notified state is unreadable; every finding counts as new");
        problems.push(e);
        None
    });
    let current = FindingKey::of_report(report);
    let digest = outbox::digest(&current);
    let (mut entries, load_problems) = outbox.load();
    problems.extend(load_problems);

    let mut composed: Option<(String, String)> = None; // (message id, subject)
    let mut unqueued_state = None;
    let mut status = None;
    match decide(cfg, last.as_ref(), &digest, report) {
        Some(reason) => status = Some(EmailStatus::NotNeeded { reason }),
        None => {
            let delta = changes(report, last.as_ref());
            let email = email::render(report, &delta, links, now);
            match smtp::build_message(cfg, &email, &digest, now) {
                Ok((message_id, raw)) => {
                    let mut entry =
                        outbox::OutboxEntry::new(&outbox, cfg, &entries, &message_id, &email.subject, raw, now);
                    let state = outbox::NotifiedState {
                        format: outbox::STATE_FORMAT,
                        digest: digest.clone(),
                        notified_at: now,
                        message_id: message_id.clone(),
                        findings: current,
                    };
                    match outbox.store(&mut entry) {
                        // Queued: from now on the message is owed, so this content counts as notified.
                        Ok(()) => record_state(&state, state_dir, &mut problems),
                        Err(e) => {
                            // Not on disk: still try to send it now, so the cycle's news is not lost; the state
                            // is recorded only if that works, so that a later cycle composes it again otherwise.
                            tracing::error!(error = %e, "cannot write the outbox; sending without a copy on disk");
                            problems.push(e);
                            unqueued_state = Some(state);
                        }
                    }
                    composed = Some((message_id, email.subject));
                    entries.push(entry);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the email");
                    status = Some(EmailStatus::Skipped { reason: format!("cannot build the email: {e}") });
                }
            }
        }
    }

    let delivery = smtp::deliver(cfg, &outbox, entries, now).await;
    problems.extend(delivery.problems);
    let new_id = composed.as_ref().map(|(id, _)| id.as_str());
    if let Some(state) = unqueued_state
        && delivery.results.iter().any(|r| r.finished && Some(r.message_id.as_str()) == new_id)
    {
        record_state(&state, state_dir, &mut problems);
    }
    let outbox_delivered =
        delivery.results.iter().filter(|r| r.finished && Some(r.message_id.as_str()) != new_id).count();
    let status = match (status, composed) {
        (Some(status), _) => status,
        (None, None) => EmailStatus::Skipped { reason: "nothing composed".into() },
        (None, Some((message_id, subject))) => match delivery.results.iter().find(|r| r.message_id == message_id) {
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
        permanent_failures: delivery.permanent_failures,
        problems,
    }
}

fn record_state(state: &outbox::NotifiedState, state_dir: &Path, problems: &mut Vec<String>) {
    if let Err(e) = state.store(state_dir) {
        tracing::error!(error = %e, "cannot record the last-notified state");
        problems.push(e);
    }
}
