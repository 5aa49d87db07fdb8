//! `[state]`: where midwatch keeps the email outbox and the last-notified digest.

use std::path::PathBuf;

use serde::Deserialize;

use super::Environment;

pub(crate) const DEFAULT_STATE_DIRECTORY: &str = "/var/lib/midwatch";

#[derive(Debug, Deserialize, Default)]
pub(super) struct RawState {
    directory: Option<PathBuf>,
}

impl RawState {
    /// The configured directory, else the first of systemd's `$STATE_DIRECTORY` (`StateDirectory=` sets it,
    /// colon-separated if several, so one config works for midwatch.service and every midwatch@%i.service),
    /// else [`DEFAULT_STATE_DIRECTORY`].
    pub(super) fn directory(self, env: &dyn Environment) -> PathBuf {
        self.directory.unwrap_or_else(|| {
            env.var("STATE_DIRECTORY")
                .and_then(|dirs| dirs.split(':').next().filter(|d| !d.is_empty()).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIRECTORY))
        })
    }
}
