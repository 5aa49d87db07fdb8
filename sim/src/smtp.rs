//! A small real SMTP server on loopback, for `midwatch demo` and the tests.
//!
//! It speaks enough SMTP for a real client: a 220 greeting, EHLO/HELO (advertising 8BITMIME, SMTPUTF8,
//! AUTH PLAIN LOGIN, which it accepts with any credentials, and SIZE), MAIL, RCPT, DATA with dot-unstuffing,
//! RSET, NOOP and QUIT. It never relays anything: each accepted message is kept in memory and, when a directory
//! is given, saved as an `.eml` file a person can open in a mail client. Replies can be overridden per stage
//! (and per recipient) to simulate outages and refusals ([`SmtpSink::set_reply`]). Its size limit is enforced
//! as Postfix enforces `message_size_limit` (552 5.3.4 to a `MAIL FROM` whose `SIZE=` exceeds it, and after a
//! bigger message data), and what EHLO offers as SIZE can differ from it ([`SmtpSink::set_size_limit`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Messages larger than this are refused with 552, unless [`SmtpSink::set_size_limit`] says otherwise.
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// Postfix's reply to a message over its `message_size_limit`.
const TOO_BIG: &str = "552 5.3.4 Message size exceeds fixed limit";

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

#[derive(Debug)]
struct State {
    messages: Vec<ReceivedMessage>,
    saved: Vec<PathBuf>,
    rules: Vec<ReplyRule>,
    /// Message data larger than this is refused (552).
    size_limit: usize,
    /// What EHLO offers as `SIZE` (`None`: no SIZE keyword).
    offered_size: Option<usize>,
    /// The argument of every `MAIL` command, in order.
    mail_commands: Vec<String>,
}

impl Default for State {
    fn default() -> State {
        State {
            messages: Vec::new(),
            saved: Vec::new(),
            rules: Vec::new(),
            size_limit: MAX_MESSAGE_BYTES,
            offered_size: Some(MAX_MESSAGE_BYTES),
            mail_commands: Vec::new(),
        }
    }
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

    fn size_limit(&self) -> usize {
        self.lock().size_limit
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

    /// From now on, refuse message data larger than `limit` bytes (and a `MAIL FROM` announcing more with
    /// `SIZE=`) with `552 5.3.4`, as Postfix does with `message_size_limit`, and offer `SIZE <offered>` in EHLO
    /// (`None`: no SIZE extension). An offer other than the limit makes a relay that refuses what it announced
    /// it would take. The default is [`MAX_MESSAGE_BYTES`], offered.
    pub fn set_size_limit(&self, limit: usize, offered: Option<usize>) {
        let mut state = self.inner.lock();
        state.size_limit = limit;
        state.offered_size = offered;
    }

    /// The argument of every `MAIL` command received so far (`FROM:<a> SIZE=123 BODY=8BITMIME`), in order.
    pub fn mail_commands(&self) -> Vec<String> {
        self.inner.lock().mail_commands.clone()
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
        if verb == "MAIL" {
            inner.lock().mail_commands.push(arg.to_string());
        }
        let reply: String = match verb.as_str() {
            "EHLO" => match inner.lock().offered_size {
                Some(size) => {
                    format!("250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE {size}")
                }
                None => "250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN".into(),
            },
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
                (Some(_), None) if announced_size(arg).is_some_and(|n| n > inner.size_limit()) => TOO_BIG.into(),
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
                    let limit = inner.size_limit();
                    let Some(data) = read_data(&mut read, limit).await? else { return Ok(()) };
                    let sender = from.take().unwrap_or_default();
                    let recipients = std::mem::take(&mut to);
                    if data.len() > limit {
                        TOO_BIG.into()
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

/// The `SIZE=` parameter of a `MAIL FROM` argument, when it has one.
fn announced_size(arg: &str) -> Option<usize> {
    arg.split_whitespace().find_map(|p| p.get(..5).filter(|k| k.eq_ignore_ascii_case("SIZE=")).and(p[5..].parse().ok()))
}

/// Reads the message data up to the lone dot, dot-unstuffed; `None` when the client went away. Past `limit`
/// bytes it reads on to the dot without storing.
async fn read_data(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    limit: usize,
) -> std::io::Result<Option<Vec<u8>>> {
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
        if data.len() <= limit {
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
