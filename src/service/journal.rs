//! Logging for `midwatch run`: stderr, in a form the journal takes as it is.
//!
//! When stderr is the journal's stream (systemd sets `$JOURNAL_STREAM` to its `device:inode`), a
//! line carries no timestamp and no colour (the journal records the time itself) and starts with
//! the syslog priority `<N>`, so that `journalctl -p warning` works. Elsewhere it is the usual
//! tracing format. Every line has its control characters escaped (`crate::logging`). `RUST_LOG` overrides `[log] level`.

use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogConfig, LogFormat};
use crate::logging::Escaped;

/// Installs the global subscriber (once; later calls do nothing).
pub(crate) fn init(log: &LogConfig) {
    // The scheduler logs its own start-up at info; keep that out unless asked for by name.
    let level = if log.level.contains("tokio_cron_scheduler") {
        log.level.clone()
    } else {
        format!("{},tokio_cron_scheduler=warn", log.level)
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = stderr_is_journal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match (log.format, journal) {
        (LogFormat::Json, _) => {
            builder.json().with_ansi(false).map_event_format(|f| Escaped(Priority { inner: f, journal })).try_init()
        }
        (LogFormat::Text, true) => builder
            .with_ansi(false)
            .without_time()
            .map_event_format(|f| Escaped(Priority { inner: f, journal }))
            .try_init(),
        (LogFormat::Text, false) => builder.with_ansi(false).map_event_format(Escaped).try_init(),
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
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
        assert_eq!(syslog_priority(&Level::TRACE), 7);
    }
}
