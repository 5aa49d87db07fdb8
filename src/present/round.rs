//! The one line a round of `check --until-ok` prints: for each watched user, what its latest login event in
//! the window says, when, from where, and whether it is still failing.
//!
//! `midserver2: login.failed at 12:04:51 from 10.0.0.9, still failing`, and when the user's category changed
//! since the last round: `midserver2: no login attempt since 12:00:51, still failing, authentication → network`.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{Category, Report, Snapshot, UserKey, same_name};
use crate::escape::clean;
use crate::evaluate::{event_evidence, latest_events};

/// The line of one round judged as `report` from `snapshot`; `watched` are the users the watch follows, and
/// `before` their categories in the round before (a change is said: `authentication → network`).
pub(crate) fn line(
    report: &Report,
    snapshot: &Snapshot,
    watched: &BTreeSet<String>,
    before: &BTreeMap<String, Category>,
) -> String {
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
                    let failing = match down.as_slice() {
                        [] => "still failing".to_string(),
                        down => format!("still failing ({} down)", down.join(", ")),
                    };
                    match before.iter().find(|(u, _)| same_name(u, user)).map(|(_, c)| c) {
                        Some(was) if *was != f.category => {
                            format!("{failing}, {} \u{2192} {}", was.name(), f.category.name())
                        }
                        _ => failing,
                    }
                }
                None => "clear".to_string(),
            };
            format!("{}: {what}, {verdict}", clean(user))
        })
        .collect();
    parts.join("; ")
}
