//! What a round of `check --until-ok` prints: for each watched user, what its latest login event in the
//! window says, when (UTC, with the date when it is not the round's day by the instance's clock), from where,
//! and whether it still has a finding, of which category.
//!
//! One watched user, one line:
//! `midserver2: login.failed at 12:04:51 UTC from 10.0.0.9, still failing: authentication (mid-london-01 down)`;
//! when the user's category changed since the last round: `…, still failing: authentication → network (…)`.
//! A configuration finding (a role holder no MID Server uses) is not a failing login: `still flagged:
//! configuration (on no MID Server)`; a user of Up MID Servers with an early warning only: `still warned:
//! failing_on_up_mid (Up: mid-paris-01)`. Several watched users: a heading line with the round's time and how many
//! still have a finding, then one line per user, the names padded so that the rest aligns.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::domain::{Category, Finding, Report, Snapshot, UserKey, Warning, same_name};
use crate::escape::clean;
use crate::evaluate::{event_evidence, latest_events};

/// A finding's down MID Servers named on a round line; beyond, how many more.
const MIDS_SHOWN: usize = 3;

/// The lines of round `round`, judged as `report` from `snapshot`; `watched` are the users the watch follows,
/// and `before` their categories in the round before (a change is said: `authentication → network`).
pub(crate) fn lines(
    round: u32,
    report: &Report,
    snapshot: &Snapshot,
    watched: &BTreeSet<String>,
    before: &BTreeMap<String, Category>,
) -> Vec<String> {
    let latest = latest_events(snapshot, &report.window);
    let today = report.window.end;
    let users: Vec<(String, String)> = watched
        .iter()
        .map(|user| {
            // The deciding event of a finding is this same latest event.
            let what = match latest.get(&UserKey::of(user)).map(|e| event_evidence(e)) {
                Some(e) => {
                    let from = e.ip.as_deref().map(|ip| format!(" from {}", clean(ip))).unwrap_or_default();
                    format!("{} at {}{from}", e.name.event_name(), time(e.at, today))
                }
                None => format!("no login attempt since {}", time(report.window.start, today)),
            };
            let finding = report.findings.iter().find(|f| same_name(&f.user, user));
            let was = before.iter().find(|(u, _)| same_name(u, user)).map(|(_, c)| *c);
            let verdict = match (finding, report.warnings.iter().find(|w| same_name(w.user(), user))) {
                (None, Some(w)) => warned(w),
                (finding, _) => verdict(finding, was),
            };
            (clean(user), format!("{what}, {verdict}"))
        })
        .collect();
    if let [(user, rest)] = users.as_slice() {
        return vec![format!("{user}: {rest}")];
    }
    let open = watched.iter().filter(|u| report.flags(u)).count();
    let warned = |u: &String| report.warnings.iter().any(|w| same_name(w.user(), u));
    let what = if watched.iter().any(warned) { "a finding or warning" } else { "a finding" };
    let width = users.iter().map(|(u, _)| u.chars().count()).max().unwrap_or(0);
    let heading = format!(
        "round {round} at {}: {open} of {} watched users {} {what}",
        time(today, today),
        users.len(),
        if open == 1 { "still has" } else { "still have" }
    );
    let rows = users.iter().map(|(user, rest)| format!("  {user:<width$}  {rest}"));
    std::iter::once(heading).chain(rows).collect()
}

/// `clear`, or the finding's category (and its change since the last round, `was`) and down MID Servers.
fn verdict(finding: Option<&Finding>, was: Option<Category>) -> String {
    let Some(f) = finding else { return "clear".to_string() };
    let category = match was {
        Some(was) if was != f.category => format!("{} \u{2192} {}", was.name(), f.category.name()),
        _ => f.category.name().to_string(),
    };
    if f.category == Category::Configuration {
        return format!("still flagged: {category} (on no MID Server)");
    }
    let mut down: Vec<String> = f.down_mid_servers.iter().take(MIDS_SHOWN).map(|m| clean(&m.name)).collect();
    if let Some(more) = f.down_mid_servers.len().checked_sub(MIDS_SHOWN).filter(|n| *n > 0) {
        down.push(format!("{more} more"));
    }
    match down.as_slice() {
        [] => format!("still failing: {category}"),
        down => format!("still failing: {category} ({} down)", down.join(", ")),
    }
}

/// An early warning without a finding: `still warned: failing_on_up_mid (Up MID Server mid-paris-01)`.
fn warned(w: &Warning) -> String {
    let mids = match w {
        Warning::FailingOnUpMid { mid_servers, .. } | Warning::LockedOutOnUpMid { mid_servers, .. } => mid_servers,
    };
    let shown: Vec<String> = mids.iter().take(MIDS_SHOWN).map(|m| clean(m)).collect();
    format!("still warned: {} (Up: {})", w.kind(), shown.join(", "))
}

/// `12:04:51 UTC`, or `2026-11-21 23:58:10 UTC` when `at` is not on the day of `today` (the instance's now).
fn time(at: DateTime<Utc>, today: DateTime<Utc>) -> String {
    if at.date_naive() == today.date_naive() {
        format!("{} UTC", at.format("%H:%M:%S"))
    } else {
        format!("{} UTC", at.format("%Y-%m-%d %H:%M:%S"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        crate::domain::sn_time::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn a_time_on_the_instance_s_day_has_no_date_and_one_on_another_day_has_it() {
        let now = at("2026-11-22 00:03:00");
        assert_eq!(time(at("2026-11-22 00:01:30"), now), "00:01:30 UTC");
        assert_eq!(time(at("2026-11-21 23:58:00"), now), "2026-11-21 23:58:00 UTC");
    }
}
