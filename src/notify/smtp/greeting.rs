//! The server's first line, read before lettre reads it: a server that is not an SMTP server is said to be so
//! at once, instead of after `[email] timeout` with "no greeting".
//!
//! An SMTP server speaks first, `220 …`. Another service on the port answers otherwise (`HTTP/1.1 400 Bad
//! Request`, `SSH-2.0-…`), or, like an HTTP server, waits in silence for the client to speak. So the connection
//! is opened here, its first line read within [`GREETING_WAIT`], and the connection handed to lettre with that
//! line given back ([`Greeted`]), which lettre then reads as the greeting. Only for `smtp://` (plain, then
//! STARTTLS): with `smtps://` the client speaks first, the TLS handshake.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::connect::{ConnectError, Misconfigured, Unavailable};
use crate::config::EmailConfig;

/// How long a server may stay silent before its greeting (or `[email] timeout`, when shorter). An SMTP server
/// greets at once; a few delay it by a second or five against spam (Sendmail's `greet_pause`), never this long.
pub(super) const GREETING_WAIT: Duration = Duration::from_secs(10);

/// A greeting line is read up to its end or this many bytes (RFC 5321 §4.5.3.1.5: a reply line is at most 512).
const LINE: usize = 512;

/// A connection whose first bytes were read here, and are read first again.
#[derive(Debug)]
pub(super) struct Greeted {
    head: Vec<u8>,
    at: usize,
    tcp: TcpStream,
}

/// Connects to the configured server and reads its first line: an error when it is not an SMTP greeting, or
/// when none comes within [`GREETING_WAIT`].
pub(super) async fn open(cfg: &EmailConfig) -> Result<Greeted, ConnectError> {
    let server = format!("{}:{}", cfg.host, cfg.port);
    let unreachable = |e: std::io::Error| Unavailable::Handshake { step: "", reply: format!("Connection error: {e}") };
    let mut tcp = TcpStream::connect((cfg.host.as_str(), cfg.port)).await.map_err(unreachable)?;
    let wait = GREETING_WAIT.min(cfg.timeout);
    let mut head = Vec::new();
    let mut buf = [0u8; LINE];
    while !head.contains(&b'\n') && head.len() < LINE {
        let read = tcp.read(&mut buf[..LINE - head.len()]);
        let n = match tokio::time::timeout(wait, read).await {
            Ok(read) => read.map_err(unreachable)?,
            Err(_) if head.is_empty() => return Err(Unavailable::NoGreeting { server, within: wait }.into()),
            // The line began: the rest is lettre's to wait for, within [email] timeout.
            Err(_) => break,
        };
        if n == 0 {
            // Closed: lettre says so as it always has.
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    if !head.is_empty() && !is_reply(&head) {
        return Err(Misconfigured::NotSmtp { server, answered: first_line(&head) }.into());
    }
    Ok(Greeted { head, at: 0, tcp })
}

/// Whether `line` begins as an SMTP reply does: three digits, then a space, a hyphen or the line's end.
fn is_reply(line: &[u8]) -> bool {
    let digits = line.iter().take(3).filter(|b| b.is_ascii_digit()).count();
    digits == line.len().min(3) && matches!(line.get(3), None | Some(b' ' | b'-' | b'\r' | b'\n'))
}

/// The first line of what the server said, shown as text: at most 80 characters, control characters escaped.
fn first_line(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or_default();
    let short: String = line.chars().take(80).collect();
    crate::escape::clean(if short.len() < line.len() { &short } else { line })
}

impl AsyncRead for Greeted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this.head.get(this.at..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Greeted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

impl lettre::transport::smtp::client::AsyncTokioStream for Greeted {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_smtp_reply_is_three_digits_then_a_space_a_hyphen_or_the_end() {
        for smtp in [&b"220 mx.acme.com ESMTP\r\n"[..], b"220-mx.acme.com\r\n", b"554\r\n", b"22"] {
            assert!(is_reply(smtp), "{}", String::from_utf8_lossy(smtp));
        }
        for other in [&b"HTTP/1.1 400 Bad Request\r\n"[..], b"SSH-2.0-OpenSSH_9.6\r\n", b"2200 x", b"\x16\x03\x01"] {
            assert!(!is_reply(other), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn the_answer_is_shown_as_one_short_line_its_control_characters_escaped() {
        assert_eq!(first_line(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"), "HTTP/1.1 400 Bad Request");
        assert_eq!(first_line(b"\x1b[31mred"), "\\u{1b}[31mred");
        assert_eq!(first_line(&[b'x'; 300]).chars().count(), 80);
    }
}
