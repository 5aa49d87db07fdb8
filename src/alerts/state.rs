//! What this host alerted, kept in `<state directory>/alerts-state.json` between cycles (and across restarts),
//! so that a finding that is gone is resolved once by the host that alerted it. Written atomically
//! (`crate::atomic_file`), like the email state: a crash leaves the old list or the new one.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::alert::Alert;

pub(crate) const STATE_FILE: &str = "alerts-state.json";
const FORMAT: u32 = 1;

/// The file's content: every alert this host posted as firing and has not resolved yet (or whose resolution no
/// peer took), as it was last posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AlertedState {
    format: u32,
    pub(crate) alerted: Vec<Alert>,
}

/// `alerts-state.json` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not a valid midwatch alerts state ({source}); it is replaced at the next cycle", path.display())]
    Invalid { path: PathBuf, source: serde_json::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot serialize the alerts state: {0}")]
    Serialize(serde_json::Error),
}

impl AlertedState {
    /// What is remembered; empty when nothing was ever alerted.
    pub(crate) fn load(state_dir: &Path) -> Result<Vec<Alert>, StateError> {
        let path = state_dir.join(STATE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<AlertedState>(&text)
                .map(|s| s.alerted)
                .map_err(|source| StateError::Invalid { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    /// Replaces the file with `alerted` (the state directory is created, owner only, when missing).
    pub(crate) fn store(state_dir: &Path, alerted: Vec<Alert>) -> Result<(), StateError> {
        let path = state_dir.join(STATE_FILE);
        let json =
            serde_json::to_vec_pretty(&AlertedState { format: FORMAT, alerted }).map_err(StateError::Serialize)?;
        crate::atomic_file::create_private_dir(state_dir)
            .and_then(|()| crate::atomic_file::write(&path, &json, None))
            .map_err(|source| StateError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn what_was_alerted_survives_a_round_trip_and_nothing_is_an_empty_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        assert_eq!(AlertedState::load(&state).expect("missing is empty"), Vec::new());
        let alert = Alert {
            labels: BTreeMap::from([("alertname".into(), "MidServerUserNetwork".into())]),
            annotations: BTreeMap::from([("summary".into(), "s".into())]),
            starts_at: None,
            ends_at: "2026-11-22T12:00:00Z".parse().expect("time"),
            generator_url: Some("https://acme.service-now.com/sys_user.do?sys_id=x".into()),
        };
        AlertedState::store(&state, vec![alert.clone()]).expect("store");
        assert_eq!(AlertedState::load(&state).expect("load"), vec![alert]);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).expect("dir").permissions());
        assert_eq!(mode & 0o077, 0, "the state directory is created owner only");
    }

    #[test]
    fn a_damaged_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(STATE_FILE), "{").expect("write");
        let e = AlertedState::load(dir.path()).expect_err("invalid");
        assert!(e.to_string().contains("alerts-state.json is not a valid midwatch alerts state"), "{e}");
    }
}
