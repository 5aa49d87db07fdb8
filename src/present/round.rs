//! The one line a round of `check --until-ok` prints: for each watched user, what its latest login event in
//! the window says, when, from where, and whether it is still failing.
//!
//! `midserver2: login.failed at 12:04:51 from 10.0.0.9, still failing`

use std::collections::BTreeSet;

use crate::domain::{Report, Snapshot, UserKey, same_name};
use crate::escape::clean;
use crate::evaluate::{event_evidence, latest_events};

/// The line of one round judged as `report` from `snapshot`; `watched` are the users the watch follows.
pub(crate) fn line(report: &Report, snapshot: &Snapshot, watched: &BTreeSet<String>) -> String {
    let latest = latest_events(snapshot, &report.window);
    let parts: Vec<String> = watched
        .iter()
        .map(|user| {
            let finding = report.findings.iter().find(|f| same_name(&f.user, user));
            // The deciding event of a finding is this same latest event.
            let event = latest.get(&UserKey::of(user)).map(|e| event_evidence(e));
            let what = match &event {
                Some(e) => {
                    let from = e.ip.as_deref().map(|ip| format!(" from {}", clean(ip))).unwrap_or_default();
                    format!("{} at {}{from}", e.name.event_name(), e.at.format("%H:%M:%S"))
                }
                None => format!("no login attempt since {}", report.window.start.format("%H:%M:%S")),
            };
            let verdict = match finding {
                Some(f) => {
                    let down: Vec<String> = f.down_mid_servers.iter().map(|m| clean(&m.name)).collect();
                    match down.as_slice() {
                        [] => "still failing".to_string(),
                        down => format!("still failing ({} down)", down.join(", ")),
                    }
                }
                None => "clear".to_string(),
            };
            format!("{}: {what}, {verdict}", clean(user))
        })
        .collect();
    parts.join("; ")
}
