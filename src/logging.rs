//! Logging: one line per event on stderr (stdout carries only the report), whatever the event holds.
//!
//! When stderr is the journal's stream (systemd sets `$JOURNAL_STREAM` to its `device:inode`: `midwatch run`
//! under its unit, or `check` from a timer), a line carries no timestamp (the journal records the time
//! itself) and starts with the syslog priority `<N>`, so that `journalctl -p warning` works. `RUST_LOG`
//! overrides the configured level.
//!
//! Log fields and messages often carry instance data (a user name in a message, an error quoting the
//! instance's answer). [`Escaped`] formats each event, then shows every control character in it escaped
//! ([`crate::escape::clean`]), so no value can start a second log line or move a terminal's cursor. Colour
//! is therefore off: the formatter writes into a plain buffer.
//!
//! `check` is a monitoring plugin: whoever runs it (Icinga 2 reads stdout and stderr together) shows the first
//! line as the check's output. So its log goes to stderr at warn unless asked for more (`-v`, `-vv`,
//! `RUST_LOG`), and, when stdout is not a terminal, it is held ([`Sink::Held`]) and written after the report
//! ([`release_held`]): the status line stays the first line, the log lines follow the report's long output.

use std::fmt;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;
use crate::escape::clean;

/// Wraps an event format: the formatted event, control characters escaped (by [`Escaped::text`] or, for JSON
/// lines, [`Escaped::json`]), then one newline.
pub(crate) struct Escaped<F> {
    inner: F,
    escape: fn(&str) -> String,
}

impl<F> Escaped<F> {
    /// Text lines: every control character shown escaped ([`clean`]).
    pub(crate) fn text(inner: F) -> Escaped<F> {
        Escaped { inner, escape: clean }
    }

    /// JSON lines: what the JSON encoder leaves raw (U+007F–U+009F, U+2028, U+2029) becomes a JSON `\uXXXX`
    /// escape, so every line stays one valid JSON object whatever a value holds.
    pub(crate) fn json(inner: F) -> Escaped<F> {
        Escaped { inner, escape: json_clean }
    }
}

/// A formatted JSON line's remaining control characters as JSON escapes (the encoder has escaped those below
/// U+0020 inside strings already; outside strings a JSON line has none).
fn json_clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

impl<S, N, F> FormatEvent<S, N> for Escaped<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, true),
            None => (line.as_str(), false),
        };
        writer.write_str(&(self.escape)(body))?;
        if newline {
            writer.write_char('\n')?;
        }
        Ok(())
    }
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    /// Straight to stderr (the service, the demo, `check` on a terminal).
    Stderr,
    /// Held in memory until [`release_held`] writes them to stderr, after the report.
    Held,
}

/// At most this much of the log is held for after the report; what does not fit is counted and said.
const HELD_MAX: usize = 256 * 1024;

/// The held log: its bytes, and how many lines did not fit.
static HELD: std::sync::Mutex<(Vec<u8>, usize)> = std::sync::Mutex::new((Vec::new(), 0));

/// Writes the held log lines to stderr (once; later calls write what was logged since).
pub(crate) fn release_held() {
    let (bytes, dropped) = match HELD.lock() {
        Ok(mut held) => (std::mem::take(&mut held.0), std::mem::take(&mut held.1)),
        Err(_) => return,
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&bytes);
    if dropped > 0 {
        let _ = writeln!(err, "midwatch: {dropped} more log line(s) not shown (more than {HELD_MAX} bytes)");
    }
    let _ = err.flush();
}

/// One log line's writer: stderr, or the held log.
pub(crate) enum SinkWriter {
    Stderr(std::io::Stderr),
    Held,
}

impl std::io::Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SinkWriter::Stderr(e) => e.write(buf),
            SinkWriter::Held => {
                if let Ok(mut held) = HELD.lock() {
                    if held.0.len() + buf.len() <= HELD_MAX {
                        held.0.extend_from_slice(buf);
                    } else {
                        held.1 += 1;
                    }
                }
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SinkWriter::Stderr(e) => e.flush(),
            SinkWriter::Held => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        match self {
            Sink::Stderr => SinkWriter::Stderr(std::io::stderr()),
            Sink::Held => SinkWriter::Held,
        }
    }
}

/// The level `check -v…` asks for: warn by default, info with `-v`, debug with `-vv`, trace beyond.
pub(crate) fn verbosity(count: u8) -> &'static str {
    match count {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// The TLS libraries' targets: none of their lines reaches the output unless a filter names them. A refused
/// certificate is said once, in midwatch's words, by whoever made the connection; rustls-platform-verifier
/// logs at error even a refusal that `tls.rs` then overrides, and rustls warns of every alert it sends. A
/// target covers those it is a prefix of (`rustls` covers `rustls_platform_verifier`, named all the same).
const TLS_LIBRARIES: &[&str] = &["rustls", "rustls_platform_verifier", "tokio_rustls", "hyper_rustls", "webpki"];

/// `filter` with `target=level` added for each of `targets` it does not name.
fn quieted(filter: &str, targets: &[&str], level: &str) -> String {
    let mut out = filter.to_string();
    for target in targets.iter().filter(|t| !filter.contains(**t)) {
        out.push_str(&format!(",{target}={level}"));
    }
    out
}

/// Installs the global subscriber (once; later calls do nothing): `level` from the config, `default` when it
/// is empty, `RUST_LOG` over both, written to `sink`. The TLS libraries stay silent, and the scheduler's own
/// start-up lines (info) out of the configured level, unless asked for by name.
pub(crate) fn init(level: &str, format: LogFormat, default: &str, sink: Sink) {
    let level = if level.is_empty() { default } else { level };
    let level = quieted(level, &["tokio_cron_scheduler"], "warn");
    let filter = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .and_then(|from_env| EnvFilter::try_new(quieted(&from_env, TLS_LIBRARIES, "off")).ok())
        .or_else(|| EnvFilter::try_new(quieted(&level, TLS_LIBRARIES, "off")).ok())
        .unwrap_or_else(|| EnvFilter::new(quieted(default, TLS_LIBRARIES, "off")));
    let journal = stderr_is_journal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(sink).with_ansi(false);
    let _ = match (format, journal) {
        (LogFormat::Json, _) => {
            builder.json().map_event_format(|f| Escaped::json(Priority { inner: f, journal })).try_init()
        }
        (LogFormat::Text, true) => {
            builder.without_time().map_event_format(|f| Escaped::text(Priority { inner: f, journal })).try_init()
        }
        (LogFormat::Text, false) => builder.map_event_format(Escaped::text).try_init(),
    };
}

/// Whether fd 2 is the stream `$JOURNAL_STREAM` names (not merely inherited from a parent).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var("JOURNAL_STREAM").ok() else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd).metadata().is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Prefixes each event with its syslog priority when writing to the journal.
struct Priority<F> {
    inner: F,
    journal: bool,
}

fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        if self.journal {
            write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(json: bool, log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let builder = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).without_time();
        if json {
            tracing::subscriber::with_default(builder.json().map_event_format(Escaped::json).finish(), log);
        } else {
            tracing::subscriber::with_default(builder.map_event_format(Escaped::text).finish(), log);
        }
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn tls_libraries_stay_silent_unless_named() {
        let filter = quieted("debug", TLS_LIBRARIES, "off");
        assert!(filter.starts_with("debug,rustls=off,"), "{filter}");
        assert!(filter.contains(",rustls_platform_verifier=off"), "{filter}");
        assert_eq!(quieted("warn,rustls=debug", &["rustls"], "off"), "warn,rustls=debug");
        assert_eq!(quieted("info", &["tokio_cron_scheduler"], "warn"), "info,tokio_cron_scheduler=warn");
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(quieted("trace", TLS_LIBRARIES, "off")))
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::enabled!(target: "rustls_platform_verifier::verification::others", Level::ERROR));
            assert!(!tracing::enabled!(target: "rustls::common_state", Level::WARN));
            assert!(tracing::enabled!(target: "midwatch::notify", Level::TRACE));
        });
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
        assert_eq!(syslog_priority(&Level::TRACE), 7);
    }

    #[test]
    fn an_instance_value_cannot_forge_a_log_line() {
        let user = "mid\r\nERROR forged line \u{1b}[2J";
        for json in [false, true] {
            let out = logged(json, || {
                tracing::warn!(user, "login of {user} failed");
                tracing::info!("second");
            });
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 2, "one line per event:\n{out}");
            assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out:?}");
            assert!(lines[0].contains("mid\\r\\nERROR forged line"), "{out}");
        }
    }

    #[test]
    fn every_json_line_is_valid_json_whatever_a_value_holds() {
        let user = "mid\u{7f}\u{85}\u{9b}[2J\u{2028}\u{2029}\r\n\u{1b}x";
        let out = logged(true, || tracing::warn!(user, "login of {user} failed"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out:?}");
        let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0]));
        assert_eq!(value["fields"]["user"], user, "the value survives, escaped only as JSON escapes it");
        assert!(!lines[0].chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'), "{out:?}");
    }
}
