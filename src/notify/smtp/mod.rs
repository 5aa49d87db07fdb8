//! SMTP: building the MIME message, delivering the outbox over one connection, and `config check`'s probe.
//!
//! The SMTP dialogue is driven step by step on lettre's [`AsyncSmtpConnection`] (rather than its all-or-nothing
//! `send`) so that a reply can be told apart by stage and by recipient: a 5xx to one `RCPT TO` drops only that
//! recipient, and the *sending* marker is written between `RCPT` and `DATA` (see the `notify` module docs).
//! Delivering the outbox, one transaction per message until the cycle's deadline, is `delivery.rs`. Opening the
//! connection (TLS, `[email] ca_file`, AUTH) is `connect.rs`; a refused certificate is worded as the
//! configuration error it is in `certificate.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Message, MultiPart, SinglePart};
use lettre::transport::smtp::commands::{Mail, Rcpt, Rset};
use sha2::{Digest as _, Sha256};

use super::outbox::hex;
use crate::config::EmailConfig;
use crate::present::email::RenderedEmail;

mod certificate;
mod connect;
mod delivery;
mod greeting;

use connect::{ConnectError, connect};
pub(crate) use delivery::{DeliveryReport, deliver};

static MESSAGE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Why the message could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error("cannot encode a body as quoted-printable")]
    QuotedPrintable,
    #[error("cannot build the message: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("the message is not valid UTF-8")]
    NotUtf8,
}

/// Builds the complete RFC 5322 text of `email`, with its `Message-ID` (with angle brackets, from
/// [`message_id`]).
pub(crate) fn build_message(
    cfg: &EmailConfig,
    email: &RenderedEmail,
    message_id: &str,
    now: DateTime<Utc>,
) -> Result<String, BuildError> {
    let mut builder = Message::builder()
        .from(cfg.from.clone())
        .subject(email.subject.clone())
        .date(std::time::SystemTime::from(now))
        .message_id(Some(message_id.to_string()))
        .user_agent(format!("midwatch/{}", env!("CARGO_PKG_VERSION")))
        // RFC 3834: keeps vacation auto-replies away from the sender.
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()));
    for to in &cfg.to {
        builder = builder.to(to.clone());
    }
    // Quoted-printable keeps every line short and the message ASCII whatever the instance's names contain.
    let qp = |s: &str| {
        Body::new_with_encoding(s.to_string(), ContentTransferEncoding::QuotedPrintable)
            .map_err(|_| BuildError::QuotedPrintable)
    };
    let message = builder.multipart(
        MultiPart::alternative()
            .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(qp(&email.text)?))
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(qp(&email.html)?)),
    )?;
    String::from_utf8(message.formatted()).map_err(|_| BuildError::NotUtf8)
}

/// The size of `message` as the server receives it: lettre ends the data with CRLF before the final dot
/// (RFC 5321 §4.1.1.4 counts that CRLF as the message's). What `SIZE=` announces and `[email] max_size` bounds.
pub(crate) fn wire_size(message: &str) -> usize {
    message.len() + 2
}

/// `<midwatch.20261122T120000Z.1a2b3c4d5e6f7a8b@acme.com>`: unique (the digest, the clock and a counter are
/// hashed), and stored with the message so every retry carries the same one.
pub(crate) fn message_id(cfg: &EmailConfig, digest: &str, now: DateTime<Utc>) -> String {
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

/// The reply code of a server that is closing the connection: no later command gets an answer.
const CLOSING: u16 = 421;

/// Whether a refusal of `MAIL FROM` or of the message data is for the message's size: 552 (RFC 1870), or the
/// enhanced codes 5.3.4 "message too big for system" and 5.2.3 "message length exceeds administrative limit"
/// (RFC 3463). `reply` as `reply_of` words it: the code first.
fn for_size(reply: &str) -> bool {
    let mut words = reply.split_whitespace();
    words.next() == Some("552") || words.next().is_some_and(|enhanced| ["5.3.4", "5.2.3"].contains(&enhanced))
}

fn classify(e: &lettre::transport::smtp::Error) -> Fail {
    let reply = reply_of(e);
    if e.is_transient() {
        if e.status().map(u16::from) == Some(CLOSING) { Fail::Broken(reply) } else { Fail::Transient(reply) }
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

/// `midwatch config check`: connects (STARTTLS and AUTH as configured), then asks whether the server accepts the
/// sender and each recipient (`MAIL FROM`, `RCPT TO`, `RSET`); no mail is sent. Returns every problem found.
pub async fn probe(cfg: &EmailConfig) -> Vec<String> {
    let server = cfg.server_url();
    let mut conn = match connect(cfg).await {
        Ok(relay) => relay.conn,
        Err(ConnectError::Unavailable(e)) => return vec![format!("[email] {server}: {e}")],
        // The words of the log and the cycle's report.
        Err(ConnectError::Configuration(e)) if e.names_its_setting() => return vec![e.to_string()],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_for_size_is_told_by_its_code() {
        assert!(for_size("552 5.3.4 Message size exceeds fixed limit"));
        assert!(for_size("552 Requested mail action aborted: exceeded storage allocation"));
        assert!(for_size("554 5.3.4 Message too big for system"));
        assert!(for_size("550 5.2.3 Message length exceeds administrative limit"));
        assert!(!for_size("550 5.1.1 no such user"));
        assert!(!for_size("554 5.7.1 rejected as spam"));
        assert!(!for_size("452 4.3.4 message too big for now"));
        assert!(!for_size(""));
    }
}
