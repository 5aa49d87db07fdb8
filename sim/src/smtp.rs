//! A small real SMTP server on loopback, for `midwatch demo` and the tests.
//!
//! It speaks enough SMTP for a real client: a 220 greeting, EHLO/HELO (advertising 8BITMIME, SMTPUTF8 and
//! AUTH PLAIN LOGIN, which it accepts with any credentials), MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP
//! and QUIT. It never relays anything: each accepted message is kept in memory and, when a directory is given,
//! saved as an `.eml` file a person can open in a mail client. Replies can be overridden per stage (and per
//! recipient) to simulate outages and refusals ([`SmtpSink::set_reply`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Messages larger than this are refused with 552.
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`) accepted for this message.
    pub to: Vec<String>,
    /// The message as received (CRLF line ends, dot-unstuffed), lossy UTF-8.
    pub data: String,
    /// When the connection that carried it was accepted.
    pub connected: std::time::Instant,
    /// When its DATA ended.
    pub received: std::time::Instant,
}

/// Where in the dialogue an injected reply applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpStage {
    /// Instead of the 220 greeting; the connection is then closed.
    Greeting,
    /// The reply to `MAIL FROM`.
    Mail,
    /// The reply to `RCPT TO` (for one recipient, or all).
    Rcpt,
    /// The reply to the `DATA` command.
    Data,
    /// The reply after the message data (the final dot); the message is then not kept, except with code 0.
    EndOfData,
}

#[derive(Debug, Clone)]
struct ReplyRule {
    stage: SmtpStage,
    recipient: Option<String>,
    code: u16,
    text: String,
}

#[derive(Debug, Default)]
struct State {
    messages: Vec<ReceivedMessage>,
    saved: Vec<PathBuf>,
    rules: Vec<ReplyRule>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    save_dir: Option<PathBuf>,
    connections: AtomicUsize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The injected reply for this stage, if any: a rule naming a recipient applies when `recipients` holds it.
    fn injected(&self, stage: SmtpStage, recipients: &[String]) -> Option<String> {
        self.lock()
            .rules
            .iter()
            .find(|r| {
                r.stage == stage
                    && r.recipient.as_ref().is_none_or(|want| recipients.iter().any(|x| x.eq_ignore_ascii_case(want)))
            })
            .map(|r| if r.code == 0 { String::new() } else { format!("{} {}", r.code, r.text) })
    }
}

/// A running sink. Dropping it stops the server.
#[derive(Debug)]
pub struct SmtpSink {
    inner: Arc<Inner>,
    port: u16,
    task: JoinHandle<()>,
}

impl SmtpSink {
    /// Binds `127.0.0.1:0` and serves in a tokio task. With `save_dir`, each accepted message is also written
    /// there as `midwatch-<time>-<n>.eml` (the directory is created if needed).
    pub async fn start(save_dir: Option<PathBuf>) -> std::io::Result<SmtpSink> {
        if let Some(dir) = &save_dir {
            std::fs::create_dir_all(dir)?;
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner { state: Mutex::new(State::default()), save_dir, connections: AtomicUsize::new(0) });
        let shared = Arc::clone(&inner);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let conn = Arc::clone(&shared);
                tokio::spawn(async move {
                    if let Err(e) = session(stream, &conn).await {
                        tracing::debug!(error = %e, "SMTP sink session ended");
                    }
                });
            }
        });
        Ok(SmtpSink { inner, port, task })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.inner.lock().messages.clone()
    }

    /// The `.eml` files written so far (empty without a save directory).
    pub fn saved_files(&self) -> Vec<PathBuf> {
        self.inner.lock().saved.clone()
    }

    /// How many connections the sink accepted.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// From now on, answer `code text` at `stage` (for `recipient` only, when given) instead of accepting,
    /// until [`clear_replies`](Self::clear_replies). E.g. `(SmtpStage::Rcpt, None, 451, "4.3.0 try later")`
    /// or `(SmtpStage::Rcpt, Some("bob@x"), 550, "5.1.1 no such user")`.
    ///
    /// Code 0 hangs up instead of answering. At [`SmtpStage::EndOfData`] the message is kept first: the client
    /// cannot know it was delivered, as after a crash or a lost connection at the worst moment.
    pub fn set_reply(&self, stage: SmtpStage, recipient: Option<&str>, code: u16, text: &str) {
        self.inner.lock().rules.push(ReplyRule {
            stage,
            recipient: recipient.map(str::to_string),
            code,
            text: text.to_string(),
        });
    }

    /// Back to accepting everything.
    pub fn clear_replies(&self) {
        self.inner.lock().rules.clear();
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The address inside `<…>` of `MAIL FROM:<a>` / `RCPT TO:<a>` (parameters after it ignored).
fn path_of(arg: &str) -> Option<String> {
    let start = arg.find('<')?;
    let end = arg[start..].find('>')? + start;
    Some(arg[start + 1..end].to_string())
}

async fn session(stream: TcpStream, inner: &Inner) -> std::io::Result<()> {
    let connected = std::time::Instant::now();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    if let Some(reply) = inner.injected(SmtpStage::Greeting, &[]) {
        if !reply.is_empty() {
            write.write_all(format!("{reply}\r\n").as_bytes()).await?;
        }
        return Ok(());
    }
    write.write_all(b"220 localhost midwatch SMTP sink ready\r\n").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 || line.len() > 4096 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
            None => (text.to_ascii_uppercase(), ""),
        };
        let reply: String = match verb.as_str() {
            "EHLO" => {
                "250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10485760".into()
            }
            "HELO" => "250 localhost".into(),
            "AUTH" => {
                let mechanism = arg.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                let steps = match mechanism.as_str() {
                    "PLAIN" if arg.split_whitespace().nth(1).is_some() => 0,
                    "PLAIN" => 1,
                    "LOGIN" => 2,
                    _ => usize::MAX,
                };
                if steps == usize::MAX {
                    "504 5.5.4 unrecognized authentication mechanism".into()
                } else {
                    // PLAIN without initial response: one empty challenge; LOGIN: user name, then password.
                    let prompts: &[&str] =
                        if steps == 1 { &["334 "] } else { &["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"] };
                    for prompt in prompts.iter().take(steps) {
                        write.write_all(format!("{prompt}\r\n").as_bytes()).await?;
                        line.clear();
                        if read.read_until(b'\n', &mut line).await? == 0 {
                            return Ok(());
                        }
                    }
                    "235 2.7.0 authentication successful".into()
                }
            }
            "MAIL" => match (path_of(arg), inner.injected(SmtpStage::Mail, &[])) {
                (None, _) => "501 5.5.4 syntax: MAIL FROM:<address>".into(),
                (Some(_), Some(r)) => r,
                (Some(a), None) => {
                    from = Some(a);
                    to.clear();
                    "250 2.1.0 ok".into()
                }
            },
            "RCPT" => match path_of(arg) {
                _ if from.is_none() => "503 5.5.1 need MAIL first".into(),
                None => "501 5.5.4 syntax: RCPT TO:<address>".into(),
                Some(a) => match inner.injected(SmtpStage::Rcpt, std::slice::from_ref(&a)) {
                    Some(r) => r,
                    None => {
                        to.push(a);
                        "250 2.1.5 ok".into()
                    }
                },
            },
            "DATA" => {
                if from.is_none() || to.is_empty() {
                    "503 5.5.1 need MAIL and RCPT first".into()
                } else if let Some(r) = inner.injected(SmtpStage::Data, &to) {
                    r
                } else {
                    write.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                    let Some(data) = read_data(&mut read).await? else { return Ok(()) };
                    let sender = from.take().unwrap_or_default();
                    let recipients = std::mem::take(&mut to);
                    if data.len() > MAX_MESSAGE_BYTES {
                        "552 5.3.4 message too big".into()
                    } else if let Some(r) = inner.injected(SmtpStage::EndOfData, &recipients) {
                        if r.is_empty() {
                            keep(inner, connected, sender, recipients, data);
                        }
                        r
                    } else {
                        keep(inner, connected, sender, recipients, data);
                        "250 2.0.0 ok: queued".into()
                    }
                }
            }
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 ok".into()
            }
            "NOOP" => "250 2.0.0 ok".into(),
            "VRFY" => "252 2.1.5 cannot verify".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "500 5.5.2 command not recognized".into(),
        };
        if reply.is_empty() {
            // An injected hang-up.
            return Ok(());
        }
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// Reads the message data up to the lone dot, dot-unstuffed; `None` when the client went away.
async fn read_data(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(data));
        }
        // Past the limit: keep reading to the dot, but stop storing.
        if data.len() <= MAX_MESSAGE_BYTES {
            let content = if line.starts_with(b".") { &line[1..] } else { &line[..] };
            data.extend_from_slice(content);
        }
    }
}

fn keep(inner: &Inner, connected: std::time::Instant, from: String, to: Vec<String>, data: Vec<u8>) {
    let received = std::time::Instant::now();
    let message = ReceivedMessage { from, to, data: String::from_utf8_lossy(&data).into_owned(), connected, received };
    let mut saved = None;
    if let Some(dir) = &inner.save_dir {
        let n = inner.lock().messages.len() + 1;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let path = dir.join(format!("midwatch-{stamp}-{n}.eml"));
        match std::fs::write(&path, &data) {
            Ok(()) => saved = Some(path),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "SMTP sink cannot save a message"),
        }
    }
    let mut state = inner.lock();
    state.messages.push(message);
    state.saved.extend(saved);
}
