//! SMTP: building the MIME message, delivering the outbox over one connection, and `config check`'s probe.
//!
//! The SMTP dialogue is driven step by step on lettre's [`AsyncSmtpConnection`] (rather than its all-or-nothing
//! `send`) so that a reply can be told apart by stage and by recipient: a 5xx to one `RCPT TO` drops only that
//! recipient, and the *sending* marker is written between `RCPT` and `DATA` (see the `notify` module docs).
//! Opening the connection (TLS, `[email] ca_file`, AUTH) is `connect.rs`; a refused certificate is worded as
//! the configuration error it is in `certificate.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::Address;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Message, MultiPart, SinglePart};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use sha2::{Digest as _, Sha256};

use super::outbox::{Outbox, OutboxEntry, SendingMarker, hex};
use super::{EmailConfig, PermanentFailure};
use crate::present::email::RenderedEmail;
use crate::snow::deadline::{DeadlinePassed, bounded};

mod certificate;
mod connect;

use connect::{ConnectError, connect};

static MESSAGE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Builds the complete message; returns its `Message-ID` (with angle brackets) and its RFC 5322 text.
pub(crate) fn build_message(
    cfg: &EmailConfig,
    email: &RenderedEmail,
    digest: &str,
    now: DateTime<Utc>,
) -> Result<(String, String), String> {
    let message_id = message_id(cfg, digest, now);
    let mut builder = Message::builder()
        .from(cfg.from.clone())
        .subject(email.subject.clone())
        .date(std::time::SystemTime::from(now))
        .message_id(Some(message_id.clone()))
        .user_agent(format!("midwatch/{}", env!("CARGO_PKG_VERSION")))
        // RFC 3834: keeps vacation auto-replies away from the sender.
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()));
    for to in &cfg.to {
        builder = builder.to(to.clone());
    }
    // Quoted-printable keeps every line short and the message ASCII whatever the instance's names contain.
    let qp = |s: &str| {
        Body::new_with_encoding(s.to_string(), ContentTransferEncoding::QuotedPrintable)
            .map_err(|_| "cannot encode a body as quoted-printable".to_string())
    };
    let message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(qp(&email.text)?))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(qp(&email.html)?)),
        )
        .map_err(|e| format!("cannot build the message: {e}"))?;
    let raw = String::from_utf8(message.formatted()).map_err(|_| "the message is not valid UTF-8".to_string())?;
    Ok((message_id, raw))
}

/// `<midwatch.20261122T120000Z.1a2b3c4d5e6f7a8b@acme.com>`: unique (the digest, the clock and a counter are
/// hashed), and stored with the message so every retry carries the same one.
fn message_id(cfg: &EmailConfig, digest: &str, now: DateTime<Utc>) -> String {
    let mut h = Sha256::new();
    h.update(digest.as_bytes());
    h.update(now.timestamp_nanos_opt().unwrap_or_default().to_be_bytes());
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    h.update(wall.as_nanos().to_be_bytes());
    h.update(std::process::id().to_be_bytes());
    h.update(MESSAGE_COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let unique = hex(&h.finalize()[..8]);
    format!("<midwatch.{}.{unique}@{}>", now.format("%Y%m%dT%H%M%SZ"), cfg.from.email.domain())
}

/// How one SMTP step failed.
#[derive(Debug)]
enum Fail {
    /// 4xx: try again later.
    Transient(String),
    /// 5xx: do not try again.
    Permanent(String),
    /// No usable answer (network, TLS, timeout, 421): the connection is gone.
    Broken(String),
}

fn reply_of(e: &lettre::transport::smtp::Error) -> String {
    let text = std::error::Error::source(e).map(|s| s.to_string()).unwrap_or_default();
    match e.status() {
        Some(code) => format!("{code} {text}").trim_end().to_string(),
        None => e.to_string(),
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> Fail {
    let reply = reply_of(e);
    if e.is_transient() {
        if reply.starts_with("421") { Fail::Broken(reply) } else { Fail::Transient(reply) }
    } else if e.is_permanent() {
        Fail::Permanent(reply)
    } else {
        Fail::Broken(reply)
    }
}

/// Runs one SMTP step under the configured timeout.
async fn step<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, Fail> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(Fail::Broken(format!("no answer to {what} within {}", humantime::format_duration(timeout)))),
    }
}

/// The fate of one outbox message in one [`deliver`] call.
#[derive(Debug, Clone)]
pub(crate) struct MessageResult {
    pub(crate) message_id: String,
    /// Left the outbox: every recipient got it or refused it permanently.
    pub(crate) finished: bool,
    pub(crate) delivered_to: Vec<String>,
    pub(crate) rejected_any: bool,
    /// Still owed the message.
    pub(crate) pending: Vec<String>,
    /// Why `pending` is not empty.
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct DeliveryReport {
    pub(crate) results: Vec<MessageResult>,
    /// Messages left in the outbox.
    pub(crate) pending: usize,
    pub(crate) permanent_failures: Vec<PermanentFailure>,
    pub(crate) problems: Vec<String>,
}

/// Delivers the entries in order over one connection. Stops at the first sign that the server is unreachable
/// (the remaining entries stay queued untouched).
pub(crate) async fn deliver(
    cfg: &EmailConfig,
    outbox: &Outbox,
    entries: Vec<OutboxEntry>,
    now: DateTime<Utc>,
) -> DeliveryReport {
    let mut report = DeliveryReport::default();
    let mut conn: Option<AsyncSmtpConnection> = None;
    let mut down: Option<String> = None;
    for mut entry in entries {
        let before = entry.delivered_to.len();
        if down.is_none() && conn.is_none() {
            match bounded(connect(cfg)).await {
                Ok(Ok(c)) => conn = Some(c),
                Ok(Err(ConnectError::Unavailable(e))) => {
                    tracing::warn!(server = %cfg.server_url(), error = %e, "SMTP server unavailable; mail stays queued");
                    down = Some(format!("smtp down: {e}"));
                }
                // Retried each cycle like an outage, but said as what it is: the mail cannot go until it is fixed.
                Ok(Err(ConnectError::Configuration(e))) => {
                    tracing::error!(
                        server = %cfg.server_url(),
                        error = %e,
                        "email cannot be sent until the [email] configuration is fixed; it stays in the outbox"
                    );
                    down = Some(e);
                }
                Err(DeadlinePassed) => down = Some(cut_off(cfg)),
            }
        }
        let attempted = down.is_none() && conn.is_some();
        let broken = match conn.as_mut() {
            Some(c) if attempted => {
                match bounded(transaction(c, cfg, outbox, &mut entry, now, &mut report)).await {
                    Ok(done) => done.err().map(|reason| {
                        tracing::warn!(server = %cfg.server_url(), error = %reason, "SMTP connection lost; mail stays queued");
                        format!("smtp down: {reason}")
                    }),
                    // What the transaction had written stays: a sending marker makes the next cycle send it again.
                    Err(DeadlinePassed) => Some(cut_off(cfg)),
                }
            }
            _ => None,
        };
        if let Some(reason) = broken {
            conn = None;
            down = Some(reason);
        }
        let finished = entry.recipients.is_empty();
        let reason = match (finished, attempted) {
            (true, _) => None,
            (false, true) => entry.last_error.clone().or_else(|| down.clone()),
            (false, false) => down.clone().or_else(|| entry.last_error.clone()),
        };
        if !finished {
            report.pending += 1;
        }
        report.results.push(MessageResult {
            message_id: entry.message_id.clone(),
            finished,
            delivered_to: entry.delivered_to[before.min(entry.delivered_to.len())..].to_vec(),
            rejected_any: !entry.rejected.is_empty(),
            pending: entry.recipients.clone(),
            reason,
        });
    }
    if let Some(mut c) = conn {
        let _ = bounded(tokio::time::timeout(cfg.timeout, c.quit())).await;
    }
    report
}

/// Why delivery stopped when the cycle's deadline passed, logged once.
fn cut_off(cfg: &EmailConfig) -> String {
    let reason = "the check's deadline passed while delivering; the email stays in the outbox for the next cycle";
    tracing::warn!(server = %cfg.server_url(), "{reason}");
    reason.to_string()
}

/// Records the entry's new state: removed when finished, rewritten otherwise.
fn persist(outbox: &Outbox, entry: &OutboxEntry, report: &mut DeliveryReport) {
    let result = if entry.recipients.is_empty() { outbox.remove(entry) } else { outbox.update(entry) };
    if let Err(e) = result {
        tracing::error!(error = %e, message_id = %entry.message_id, "cannot update the outbox");
        report.problems.push(e);
    }
}

fn reject(entry: &mut OutboxEntry, recipient: &str, reply: &str, report: &mut DeliveryReport) {
    tracing::error!(
        recipient,
        reply,
        message_id = %entry.message_id,
        subject = %entry.subject,
        "the SMTP server refused the email for this recipient permanently; it will not be retried for them"
    );
    let failure = PermanentFailure {
        message_id: entry.message_id.clone(),
        recipient: recipient.to_string(),
        reply: reply.into(),
    };
    entry.recipients.retain(|r| r != recipient);
    entry.rejected.push(failure.clone());
    report.permanent_failures.push(failure);
}

/// One SMTP transaction for every recipient still owed the entry. `Err` when the connection is unusable.
async fn transaction(
    conn: &mut AsyncSmtpConnection,
    cfg: &EmailConfig,
    outbox: &Outbox,
    entry: &mut OutboxEntry,
    now: DateTime<Utc>,
    report: &mut DeliveryReport,
) -> Result<(), String> {
    let t = cfg.timeout;
    if entry.recipients.is_empty() {
        // Finished earlier, but the file could not be removed then.
        persist(outbox, entry, report);
        return Ok(());
    }
    if let Some(marker) = &entry.sending {
        for r in marker.recipients.iter().filter(|r| entry.recipients.contains(r)) {
            tracing::warn!(
                recipient = %r,
                message_id = %entry.message_id,
                since = %marker.since,
                "resending an email whose previous delivery was interrupted after its data was sent: the recipient \
                 may get it twice (same Message-ID)"
            );
        }
    }
    entry.attempts += 1;
    let Ok(from) = entry.from.parse::<Address>() else {
        let reply = format!("invalid sender address {:?} in the outbox file", entry.from);
        for r in entry.recipients.clone() {
            reject(entry, &r, &reply, report);
        }
        persist(outbox, entry, report);
        return Ok(());
    };
    let mut params = Vec::new();
    if !entry.message.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if (!entry.from.is_ascii() || entry.recipients.iter().any(|r| !r.is_ascii()))
        && conn.server_info().supports_feature(Extension::SmtpUtfEight)
    {
        params.push(MailParameter::SmtpUtfEight);
    }

    // MAIL FROM: a refusal concerns every recipient.
    match step(t, "MAIL FROM", conn.command(Mail::new(Some(from), params))).await {
        Ok(_) => {}
        Err(Fail::Transient(reply)) => {
            entry.last_error = Some(reply);
            let _ = step(t, "RSET", conn.command(Rset)).await;
            persist(outbox, entry, report);
            return Ok(());
        }
        Err(Fail::Permanent(reply)) => {
            for r in entry.recipients.clone() {
                reject(entry, &r, &reply, report);
            }
            let _ = step(t, "RSET", conn.command(Rset)).await;
            persist(outbox, entry, report);
            return Ok(());
        }
        Err(Fail::Broken(reason)) => {
            entry.last_error = Some(reason.clone());
            persist(outbox, entry, report);
            return Err(reason);
        }
    }

    // RCPT TO, one by one: a refusal concerns that recipient only.
    let mut accepted = Vec::new();
    let mut deferred = None;
    for r in entry.recipients.clone() {
        let Ok(address) = r.parse::<Address>() else {
            reject(entry, &r, &format!("invalid recipient address {r:?} in the outbox file"), report);
            continue;
        };
        match step(t, "RCPT TO", conn.command(Rcpt::new(address, Vec::new()))).await {
            Ok(_) => accepted.push(r),
            Err(Fail::Transient(reply)) => {
                tracing::warn!(recipient = %r, reply = %reply, message_id = %entry.message_id, "recipient deferred");
                deferred = Some(format!("{r}: {reply}"));
            }
            Err(Fail::Permanent(reply)) => reject(entry, &r, &reply, report),
            Err(Fail::Broken(reason)) => {
                entry.last_error = Some(reason.clone());
                persist(outbox, entry, report);
                return Err(reason);
            }
        }
    }
    entry.last_error = deferred;
    if accepted.is_empty() {
        let _ = step(t, "RSET", conn.command(Rset)).await;
        persist(outbox, entry, report);
        return Ok(());
    }

    // The marker: from here on a crash leaves the recipients' fate unknown. Without it on disk a later cycle
    // could not know the data went out and would send it again, so no marker, no DATA.
    entry.sending = Some(SendingMarker { recipients: accepted.clone(), since: now });
    let marked = match &entry.path {
        Some(_) => outbox.update(entry),
        None => Err("the email is not in the outbox, so its delivery could not be recorded".to_string()),
    };
    if let Err(e) = marked {
        entry.sending = None;
        let reason = format!("not sent: {e}; fix the state directory (permissions, space), the email stays queued");
        tracing::error!(message_id = %entry.message_id, error = %reason, "cannot record the sending marker");
        report.problems.push(reason.clone());
        entry.last_error = Some(reason);
        let _ = step(t, "RSET", conn.command(Rset)).await;
        return Ok(());
    }

    let refused = |entry: &mut OutboxEntry, report: &mut DeliveryReport, fail: Fail| {
        entry.sending = None;
        match fail {
            Fail::Transient(reply) => entry.last_error = Some(reply),
            Fail::Permanent(reply) => {
                for r in &accepted {
                    reject(entry, r, &reply, report);
                }
            }
            Fail::Broken(_) => {}
        }
    };
    match step(t, "DATA", conn.command(Data)).await {
        Ok(_) => {}
        Err(Fail::Broken(reason)) => {
            // The message data was not sent: nobody has it.
            entry.sending = None;
            entry.last_error = Some(reason.clone());
            persist(outbox, entry, report);
            return Err(reason);
        }
        Err(fail) => {
            refused(entry, report, fail);
            let _ = step(t, "RSET", conn.command(Rset)).await;
            persist(outbox, entry, report);
            return Ok(());
        }
    }
    match step(t, "the message data", conn.message(entry.message.as_bytes())).await {
        Ok(_) => {
            entry.sending = None;
            entry.recipients.retain(|r| !accepted.contains(r));
            entry.delivered_to.extend(accepted.iter().cloned());
            tracing::info!(
                message_id = %entry.message_id,
                recipients = %accepted.join(", "),
                subject = %entry.subject,
                "email delivered"
            );
            persist(outbox, entry, report);
            Ok(())
        }
        Err(Fail::Broken(reason)) => {
            // The server may or may not have kept it: the marker stays, the next attempt warns.
            entry.last_error = Some(format!("{reason} (after the message data: it may have been delivered)"));
            persist(outbox, entry, report);
            Err(reason)
        }
        Err(fail) => {
            refused(entry, report, fail);
            persist(outbox, entry, report);
            Ok(())
        }
    }
}

/// `midwatch config check`: connects (STARTTLS and AUTH as configured), then asks whether the server accepts the
/// sender and each recipient (`MAIL FROM`, `RCPT TO`, `RSET`); no mail is sent. Returns every problem found.
pub async fn probe(cfg: &EmailConfig) -> Vec<String> {
    let server = cfg.server_url();
    let mut conn = match connect(cfg).await {
        Ok(c) => c,
        Err(ConnectError::Unavailable(e)) => return vec![format!("[email] {server}: {e}")],
        // The words of the log and the cycle's report.
        Err(ConnectError::Configuration(e)) if e.starts_with("[email]") => return vec![e],
        Err(ConnectError::Configuration(e)) => return vec![format!("[email] {e}")],
    };
    let t = cfg.timeout;
    let mut problems = Vec::new();
    let from = cfg.from.email.clone();
    match step(t, "MAIL FROM", conn.command(Mail::new(Some(from.clone()), Vec::new()))).await {
        Ok(_) => {
            for to in &cfg.to {
                match step(t, "RCPT TO", conn.command(Rcpt::new(to.email.clone(), Vec::new()))).await {
                    Ok(_) => {}
                    Err(Fail::Transient(r)) => {
                        problems.push(format!("[email] to {}: {server} refuses this recipient for now: {r}", to.email))
                    }
                    Err(Fail::Permanent(r)) => {
                        problems.push(format!("[email] to {}: {server} refuses this recipient: {r}", to.email))
                    }
                    Err(Fail::Broken(r)) => {
                        problems.push(format!("[email] {server}: the connection failed: {r}"));
                        return problems;
                    }
                }
            }
            let _ = step(t, "RSET", conn.command(Rset)).await;
        }
        Err(Fail::Transient(r) | Fail::Permanent(r)) => {
            problems.push(format!("[email] from {from}: {server} refuses this sender: {r}"));
        }
        Err(Fail::Broken(r)) => {
            problems.push(format!("[email] {server}: the connection failed: {r}"));
            return problems;
        }
    }
    let _ = tokio::time::timeout(t, conn.quit()).await;
    problems
}
