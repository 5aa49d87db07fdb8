//! The log of one test, in process (a tracing writer) and from the binary (its stderr, line by line),
//! with the tokio time of each line.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::PATIENCE;

/// One line the service logged, and when by tokio's clock (the paused one where a test pauses it).
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) at: tokio::time::Instant,
    pub(crate) text: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<Line>>>);

impl Log {
    pub(crate) fn push(&self, text: &str) {
        let line = Line { at: tokio::time::Instant::now(), text: text.to_string() };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(line);
    }

    pub(crate) fn lines(&self) -> Vec<Line> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn texts(&self) -> Vec<String> {
        self.lines().into_iter().map(|l| l.text).collect()
    }

    pub(crate) fn dump(&self) -> String {
        self.texts().join("\n")
    }

    pub(crate) fn find(&self, pred: impl Fn(&str) -> bool) -> Option<Line> {
        self.lines().into_iter().find(|l| pred(&l.text))
    }

    pub(crate) fn has(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.find(pred).is_some()
    }

    /// The first line satisfying `pred`, which must be there.
    pub(crate) fn expect(&self, what: &str, pred: impl Fn(&str) -> bool) -> Line {
        self.find(pred).unwrap_or_else(|| panic!("no log line {what}; log:\n{}", self.dump()))
    }

    /// The first line satisfying `pred`, waiting for it in real time.
    pub(crate) async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> Line {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.find(&pred) {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line {what} within {PATIENCE:?}; log:\n{}", self.dump());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Collects what one event writes, as lines of the log.
pub(crate) struct LineWriter {
    log: Log,
    buf: Vec<u8>,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        for line in String::from_utf8_lossy(&self.buf).lines() {
            self.log.push(line);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { log: self.clone(), buf: Vec::new() }
    }
}
