//! [`Stats`]: counters of what the client sent.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the client sent, for the cycle's summary line and the closing note.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) response_bytes: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
}

impl Stats {
    pub(super) fn record(&self, status: u16, bytes: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.response_bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn response_bytes(&self) -> u64 {
        self.response_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn by_status(&self) -> BTreeMap<u16, u64> {
        self.by_status.lock().map(|m| m.clone()).unwrap_or_default()
    }
}
