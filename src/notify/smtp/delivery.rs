//! Delivering the outbox over one connection: one SMTP transaction per message, for every recipient still
//! owed it, driven step by step (`MAIL FROM`, `RCPT TO`, the *sending* marker, `DATA`) so that a reply is
//! told apart by stage and by recipient (see the `notify` module docs). Everything stops where the cycle's
//! [`Deadline`] passes, and says so; what a transaction had written stays.
//!
//! `MAIL FROM` announces the message's size (`SIZE=`) where the server offers the SIZE extension (RFC 1870).
//! A message the server says it would refuse for its size (its SIZE limit), or refuses for its size (552 to
//! `MAIL FROM` or to the data), is replaced by its short form (`OutboxEntry::short`), which is sent at once in
//! a new transaction; only a short form refused in turn is dropped, as any message refused permanently.

use chrono::{DateTime, Utc};
use lettre::Address;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};

use super::connect::{self, ConnectError, Relay, SizeOffer, connect};
use super::{Fail, for_size, step};
use crate::config::EmailConfig;
use crate::deadline::{Deadline, DeadlinePassed};
use crate::notify::PermanentFailure;
use crate::notify::outbox::{Outbox, OutboxEntry, OutboxError, SendingMarker};

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
    pub(crate) problems: Vec<DeliveryProblem>,
}

/// Why the rest of the outbox waits for the next cycle.
#[derive(Debug, thiserror::Error)]
enum Down {
    #[error("smtp down: {0}")]
    Unavailable(connect::Unavailable),
    /// Retried each cycle like an outage, but said as what it is: the mail cannot go until it is fixed.
    #[error(transparent)]
    Misconfigured(connect::Misconfigured),
    /// The connection broke during a transaction: why.
    #[error("smtp down: {0}")]
    Lost(String),
    #[error("the check's deadline passed while delivering; the email stays in the outbox for the next cycle")]
    CutOff,
}

/// A local problem met while delivering.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliveryProblem {
    /// An entry's new state could not be recorded.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The sending marker could not be written, so the message data was not sent.
    #[error("not sent: {0}; fix the state directory (permissions, space), the email stays queued")]
    Unmarked(OutboxError),
}

/// Delivers the entries in order over one connection, until `deadline`. Stops at the first sign that the server
/// is unreachable (the remaining entries stay queued untouched).
pub(crate) async fn deliver(
    cfg: &EmailConfig,
    outbox: &Outbox,
    entries: Vec<OutboxEntry>,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> DeliveryReport {
    let mut courier = Courier { cfg, outbox, now, report: DeliveryReport::default() };
    let mut conn: Option<Relay> = None;
    let mut down: Option<Down> = None;
    for mut entry in entries {
        let before = entry.delivered_to.len();
        if down.is_none() && conn.is_none() {
            match open(cfg, deadline).await {
                Ok(c) => conn = Some(c),
                Err(why) => down = Some(why),
            }
        }
        let attempted = down.is_none() && conn.is_some();
        let broken = match conn.as_mut() {
            Some(c) if attempted => match deadline.bounded(courier.transaction(c, &mut entry)).await {
                Ok(Ok(()) | Err(Halt::Refused | Halt::TooBig(_))) => None,
                Ok(Err(Halt::Lost(reason))) => {
                    tracing::warn!(server = %cfg.server_url(), error = %reason, "SMTP connection lost; mail stays queued");
                    Some(Down::Lost(reason))
                }
                // What the transaction had written stays: a sending marker makes the next cycle send it again.
                Err(DeadlinePassed) => Some(cut_off(cfg)),
            },
            _ => None,
        };
        if let Some(why) = broken {
            conn = None;
            down = Some(why);
        }
        courier.report.record(&entry, before, attempted, down.as_ref());
    }
    if let Some(mut c) = conn {
        let _ = deadline.bounded(tokio::time::timeout(cfg.timeout, c.conn.quit())).await;
    }
    courier.report
}

/// Opens the connection before `deadline`; `Err` says (and logs) why the mail stays queued.
async fn open(cfg: &EmailConfig, deadline: Deadline) -> Result<Relay, Down> {
    match deadline.bounded(connect(cfg)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(ConnectError::Unavailable(e))) => {
            tracing::warn!(server = %cfg.server_url(), error = %e, "SMTP server unavailable; mail stays queued");
            Err(Down::Unavailable(e))
        }
        Ok(Err(ConnectError::Configuration(e))) => {
            tracing::error!(
                server = %cfg.server_url(),
                error = %e,
                "email cannot be sent until the [email] configuration is fixed; it stays in the outbox"
            );
            Err(Down::Misconfigured(e))
        }
        Err(DeadlinePassed) => Err(cut_off(cfg)),
    }
}

/// Why delivery stopped when the cycle's deadline passed, logged once.
fn cut_off(cfg: &EmailConfig) -> Down {
    let reason = Down::CutOff;
    tracing::warn!(server = %cfg.server_url(), "{reason}");
    reason
}

impl DeliveryReport {
    /// What became of `entry` in this call: `before` is how many recipients had it before, `down` why the
    /// remaining ones wait, if the connection is gone.
    fn record(&mut self, entry: &OutboxEntry, before: usize, attempted: bool, down: Option<&Down>) {
        let finished = entry.recipients.is_empty();
        let down = || down.map(ToString::to_string);
        let reason = match (finished, attempted) {
            (true, _) => None,
            (false, true) => entry.last_error.clone().or_else(down),
            (false, false) => down().or_else(|| entry.last_error.clone()),
        };
        if !finished {
            self.pending += 1;
        }
        self.results.push(MessageResult {
            message_id: entry.message_id.clone(),
            finished,
            delivered_to: entry.delivered_to[before.min(entry.delivered_to.len())..].to_vec(),
            rejected_any: !entry.rejected.is_empty(),
            pending: entry.recipients.clone(),
            reason,
        });
    }
}

/// One [`deliver`] call: what each of its transactions needs, and what they found.
struct Courier<'a> {
    cfg: &'a EmailConfig,
    outbox: &'a Outbox,
    now: DateTime<Utc>,
    report: DeliveryReport,
}

/// Why a transaction ended before the server took the message data.
enum Halt {
    /// The server refused or deferred the message (or the sending marker could not be written): the entry
    /// says what happened, and the connection serves the next message.
    Refused,
    /// The connection is unusable (no answer, broken, 421), for this reason: the remaining messages wait.
    Lost(String),
    /// The server refused the message for its size with this reply, and the entry has a short form to send
    /// instead; the connection serves it.
    TooBig(String),
}

impl Courier<'_> {
    /// One SMTP transaction for every recipient still owed the entry: `MAIL FROM`, `RCPT TO`, the sending
    /// marker, `DATA`; with the entry's short form in its place when the server refuses the message for its
    /// size (then a second transaction). `Err(Halt::Lost)` when the connection is unusable.
    async fn transaction(&mut self, relay: &mut Relay, entry: &mut OutboxEntry) -> Result<(), Halt> {
        if entry.recipients.is_empty() {
            // Finished earlier, but the file could not be removed then.
            self.persist(entry);
            return Ok(());
        }
        warn_if_resent(entry);
        if let SizeOffer::Limit(limit) = relay.size
            && relay.size.refuses(super::wire_size(&entry.message))
        {
            self.shorten(entry, &format!("the server takes at most {limit} bytes (SIZE)"));
        }
        match self.attempt(relay, entry).await {
            Err(Halt::TooBig(reply)) => {
                self.shorten(entry, &format!("the server refused it for its size: {reply}"));
                self.attempt(relay, entry).await
            }
            done => done,
        }
    }

    /// One transaction of [`transaction`](Self::transaction).
    async fn attempt(&mut self, relay: &mut Relay, entry: &mut OutboxEntry) -> Result<(), Halt> {
        entry.attempts += 1;
        self.mail_from(relay, entry).await?;
        let conn = &mut relay.conn;
        let accepted = self.rcpt_to(conn, entry).await?;
        self.mark(conn, entry, &accepted).await?;
        self.data(conn, entry, &accepted).await
    }

    /// The entry's short form in place of its message, when it has one (`why` the message will not do).
    fn shorten(&mut self, entry: &mut OutboxEntry, why: &str) {
        let Some(short) = entry.short.take() else { return };
        tracing::warn!(
            message_id = %entry.message_id,
            bytes = entry.message.len(),
            short = short.len(),
            reason = why,
            "sending the email in its short form"
        );
        entry.message = short;
        self.persist(entry);
    }

    /// `MAIL FROM`, with `SIZE=` where the server offers it: a refusal concerns every recipient.
    async fn mail_from(&mut self, relay: &mut Relay, entry: &mut OutboxEntry) -> Result<(), Halt> {
        let conn = &mut relay.conn;
        let Ok(from) = entry.from.parse::<Address>() else {
            let reply = format!("invalid sender address {:?} in the outbox file", entry.from);
            self.reject_all(entry, &reply);
            self.persist(entry);
            return Err(Halt::Refused);
        };
        let params = mail_parameters(conn, relay.size, entry);
        match step(self.cfg.timeout, "MAIL FROM", conn.command(Mail::new(Some(from), params))).await {
            Ok(_) => Ok(()),
            Err(Fail::Transient(reply)) => {
                entry.last_error = Some(reply);
                Err(self.reset(conn, entry).await)
            }
            Err(Fail::Permanent(reply)) if entry.short.is_some() && for_size(&reply) => {
                let _ = step(self.cfg.timeout, "RSET", conn.command(Rset)).await;
                Err(Halt::TooBig(reply))
            }
            Err(Fail::Permanent(reply)) => {
                self.reject_all(entry, &reply);
                Err(self.reset(conn, entry).await)
            }
            Err(Fail::Broken(reason)) => Err(self.lost(entry, reason)),
        }
    }

    /// `RCPT TO`, one by one: a refusal concerns that recipient only. Returns the recipients accepted.
    async fn rcpt_to(&mut self, conn: &mut AsyncSmtpConnection, entry: &mut OutboxEntry) -> Result<Vec<String>, Halt> {
        let mut accepted = Vec::new();
        let mut deferred = None;
        for r in entry.recipients.clone() {
            let Ok(address) = r.parse::<Address>() else {
                self.reject(entry, &r, &format!("invalid recipient address {r:?} in the outbox file"));
                continue;
            };
            match step(self.cfg.timeout, "RCPT TO", conn.command(Rcpt::new(address, Vec::new()))).await {
                Ok(_) => accepted.push(r),
                Err(Fail::Transient(reply)) => {
                    tracing::warn!(recipient = %r, reply = %reply, message_id = %entry.message_id, "recipient deferred");
                    deferred = Some(format!("{r}: {reply}"));
                }
                Err(Fail::Permanent(reply)) => self.reject(entry, &r, &reply),
                Err(Fail::Broken(reason)) => return Err(self.lost(entry, reason)),
            }
        }
        entry.last_error = deferred;
        if accepted.is_empty() {
            return Err(self.reset(conn, entry).await);
        }
        Ok(accepted)
    }

    /// The sending marker: from here on a crash leaves the recipients' fate unknown. Without it on disk a later
    /// cycle could not know the data went out and would send it again, so no marker, no `DATA`.
    async fn mark(
        &mut self,
        conn: &mut AsyncSmtpConnection,
        entry: &mut OutboxEntry,
        accepted: &[String],
    ) -> Result<(), Halt> {
        entry.sending = Some(SendingMarker { recipients: accepted.to_vec(), since: self.now });
        let marked = match &entry.path {
            Some(_) => self.outbox.update(entry),
            None => Err(OutboxError::NotStored),
        };
        let Err(e) = marked else { return Ok(()) };
        entry.sending = None;
        let problem = DeliveryProblem::Unmarked(e);
        let reason = problem.to_string();
        tracing::error!(message_id = %entry.message_id, error = %reason, "cannot record the sending marker");
        self.report.problems.push(problem);
        entry.last_error = Some(reason);
        let _ = step(self.cfg.timeout, "RSET", conn.command(Rset)).await;
        Err(Halt::Refused)
    }

    /// `DATA`, then the message data: delivered to the accepted recipients once the server takes it.
    async fn data(
        &mut self,
        conn: &mut AsyncSmtpConnection,
        entry: &mut OutboxEntry,
        accepted: &[String],
    ) -> Result<(), Halt> {
        let t = self.cfg.timeout;
        match step(t, "DATA", conn.command(Data)).await {
            Ok(_) => {}
            Err(Fail::Broken(reason)) => {
                // The message data was not sent: nobody has it.
                entry.sending = None;
                return Err(self.lost(entry, reason));
            }
            Err(Fail::Permanent(reply)) if entry.short.is_some() && for_size(&reply) => {
                entry.sending = None;
                let _ = step(t, "RSET", conn.command(Rset)).await;
                return Err(Halt::TooBig(reply));
            }
            Err(fail) => {
                self.refused_data(entry, accepted, fail);
                return Err(self.reset(conn, entry).await);
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
                self.persist(entry);
                Ok(())
            }
            Err(Fail::Broken(reason)) => {
                // The server may or may not have kept it: the marker stays, the next attempt warns.
                entry.last_error = Some(format!("{reason} (after the message data: it may have been delivered)"));
                self.persist(entry);
                Err(Halt::Lost(reason))
            }
            Err(Fail::Permanent(reply)) if entry.short.is_some() && for_size(&reply) => {
                // Nobody has it; the transaction is over.
                entry.sending = None;
                Err(Halt::TooBig(reply))
            }
            Err(fail) => {
                self.refused_data(entry, accepted, fail);
                self.persist(entry);
                Err(Halt::Refused)
            }
        }
    }

    /// The server refused `DATA` or the message data: nobody got it.
    fn refused_data(&mut self, entry: &mut OutboxEntry, accepted: &[String], fail: Fail) {
        entry.sending = None;
        match fail {
            Fail::Transient(reply) => entry.last_error = Some(reply),
            Fail::Permanent(reply) => {
                for r in accepted {
                    self.reject(entry, r, &reply);
                }
            }
            Fail::Broken(_) => {}
        }
    }

    /// Ends a transaction the server answered: `RSET` (the connection serves the next message), the entry recorded.
    async fn reset(&mut self, conn: &mut AsyncSmtpConnection, entry: &OutboxEntry) -> Halt {
        let _ = step(self.cfg.timeout, "RSET", conn.command(Rset)).await;
        self.persist(entry);
        Halt::Refused
    }

    /// Ends a transaction on an unusable connection: the entry recorded with the reason.
    fn lost(&mut self, entry: &mut OutboxEntry, reason: String) -> Halt {
        entry.last_error = Some(reason.clone());
        self.persist(entry);
        Halt::Lost(reason)
    }

    /// Records the entry's new state: removed when finished, rewritten otherwise.
    fn persist(&mut self, entry: &OutboxEntry) {
        let result = if entry.recipients.is_empty() { self.outbox.remove(entry) } else { self.outbox.update(entry) };
        if let Err(e) = result {
            tracing::error!(error = %e, message_id = %entry.message_id, "cannot update the outbox");
            self.report.problems.push(e.into());
        }
    }

    fn reject_all(&mut self, entry: &mut OutboxEntry, reply: &str) {
        for r in entry.recipients.clone() {
            self.reject(entry, &r, reply);
        }
    }

    fn reject(&mut self, entry: &mut OutboxEntry, recipient: &str, reply: &str) {
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
        self.report.permanent_failures.push(failure);
    }
}

/// A resent message whose previous delivery was interrupted after its data: logged, per recipient.
fn warn_if_resent(entry: &OutboxEntry) {
    let Some(marker) = &entry.sending else { return };
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

/// `MAIL FROM` parameters the message needs and the server offers (SIZE, 8BITMIME, SMTPUTF8).
fn mail_parameters(conn: &AsyncSmtpConnection, size: SizeOffer, entry: &OutboxEntry) -> Vec<MailParameter> {
    let mut params = Vec::new();
    if size != SizeOffer::NotOffered {
        // RFC 1870: the message's size in bytes as sent, CRLF line ends counted.
        params.push(MailParameter::Size(super::wire_size(&entry.message)));
    }
    if !entry.message.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if (!entry.from.is_ascii() || entry.recipients.iter().any(|r| !r.is_ascii()))
        && conn.server_info().supports_feature(Extension::SmtpUtfEight)
    {
        params.push(MailParameter::SmtpUtfEight);
    }
    params
}
