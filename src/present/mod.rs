//! Presenting a cycle: ONE view of the report and of each finding, and its renderings.
//!
//! ```text
//! Report ──▶ ReportView / FindingView (wording, values cleaned of control characters, once)
//!               ├──▶ text.rs   the terminal report (and the write-back and email sections of a cycle)
//!               ├──▶ email/    the email: subject, plain text, HTML
//!               └──  json.rs   the JSON document (serde does the escaping there)
//! ```
//!
//! Everything that comes from the instance (user names, MID Server names, sys_ids, event fields, messages)
//! is untrusted. The view holds it `clean`ed — control characters shown as escapes — so no value can
//! forge a status line, a log line or a mail header line, whichever rendering prints it; the HTML
//! rendering escapes on top of that. The raw value is kept beside the shown one only where a link is built
//! from it (URL-encoded there).

pub mod email;
pub mod json;
pub(crate) mod outcome;
pub(crate) mod round;
pub mod text;

use crate::domain::{AccountState, Finding, IdMap, Report, sn_time};
use crate::escape::clean;

/// Output format of `check` and `demo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// How much the text report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Detail {
    /// Counts by condition, no names.
    Summary,
    /// Named findings by category, with remediation and the MID Server ID map.
    #[default]
    Detailed,
}

/// A value from the instance: `raw` for building links, `text` (cleaned) for showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Untrusted<'a> {
    pub(crate) raw: &'a str,
    pub(crate) text: String,
}

impl<'a> Untrusted<'a> {
    pub(crate) fn of(raw: &'a str) -> Untrusted<'a> {
        Untrusted { raw, text: clean(raw) }
    }
}

/// The account wording every rendering uses.
pub(crate) fn account_label(a: AccountState) -> &'static str {
    match a {
        AccountState::Active => "active",
        AccountState::Inactive => "INACTIVE",
        AccountState::LockedOut => "LOCKED OUT",
        AccountState::InactiveAndLockedOut => "INACTIVE and LOCKED OUT",
        AccountState::NotFound => "NO SUCH USER in sys_user",
    }
}

/// `LOCKED OUT after 5 failed attempts; last successful login … UTC (2d 3h before the check)`.
fn account_line(f: &Finding, end: chrono::DateTime<chrono::Utc>) -> String {
    let mut line = account_label(f.account).to_string();
    // Locked out *after* the failures; otherwise the failures are the lockout counter so far.
    let locked = matches!(f.account, AccountState::LockedOut | AccountState::InactiveAndLockedOut);
    let joint = if locked { " after" } else { "," };
    match f.failed_attempts {
        Some(0) | None => {}
        Some(1) => line.push_str(&format!("{joint} 1 failed attempt")),
        Some(n) => line.push_str(&format!("{joint} {n} failed attempts")),
    }
    if let Some(at) = f.last_login_time {
        line.push_str(&format!(
            "; last successful login {} UTC ({} before the check)",
            sn_time::format(at),
            age(at, end)
        ));
    }
    line
}

/// `14 × login.failed (last … UTC), 2 × login (last … UTC)`; an SSO event's reason after its time.
fn activity_line(activity: &[&crate::domain::EventActivity]) -> String {
    let mut by_last: Vec<&&crate::domain::EventActivity> = activity.iter().collect();
    by_last.sort_by(|a, b| b.last.cmp(&a.last).then(b.count.cmp(&a.count)));
    by_last
        .iter()
        .map(|a| {
            let last = match (a.last, &a.last_detail) {
                (Some(at), Some(d)) => format!(" (last {} UTC: {})", sn_time::format(at), clean(d)),
                (Some(at), None) => format!(" (last {} UTC)", sn_time::format(at)),
                (None, _) => String::new(),
            };
            format!("{} × {}{last}", a.count, clean(&a.name))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `after … UTC, up to … UTC (4h plus the built-in job's 1-minute margin)`.
pub(crate) fn window_line(report: &Report) -> String {
    let w = &report.window;
    format!(
        "after {} UTC, up to {} UTC ({} plus the built-in job's 1-minute margin)",
        sn_time::format(w.start),
        sn_time::format(w.end),
        humantime::format_duration(w.length)
    )
}

/// A down MID Server named in a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MidView<'a> {
    pub(crate) sys_id: Untrusted<'a>,
    pub(crate) name: Untrusted<'a>,
    /// `silent since 2026-11-22 11:39:12 UTC (20m before the check)`, when its last heartbeat is known.
    pub(crate) down_since: Option<String>,
}

/// How long before `end` a moment was, in the largest two units that matter: `3d 4h`, `2h 5m`, `20m`, `45s`.
pub(crate) fn age(at: chrono::DateTime<chrono::Utc>, end: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (end - at).num_seconds().max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `open for 3d 4h, detected by 19 checks since … UTC`, `new this cycle`, or `new: back 2d after …`. The
/// number is the open record's `count` (plus this check): every check that detected the finding counts, a
/// manual `check` as much as a cycle of `run`, as every run of the built-in job counts.
pub(crate) fn seen(h: &crate::domain::FindingHistory, end: chrono::DateTime<chrono::Utc>) -> String {
    if h.times_detected > 1 {
        return format!(
            "open for {}, detected by {} checks since {} UTC",
            age(h.first_detected, end),
            h.times_detected,
            sn_time::format(h.first_detected)
        );
    }
    match h.resolved_before {
        Some(at) => format!("new: back after {} (midwatch resolved it {} UTC)", age(at, end), sn_time::format(at)),
        None => "new this cycle".to_string(),
    }
}

/// `silent since … UTC (20m before the check)`.
pub(crate) fn silent_since(at: chrono::DateTime<chrono::Utc>, end: chrono::DateTime<chrono::Utc>) -> String {
    format!("silent since {} UTC ({} before the check)", sn_time::format(at), age(at, end))
}

/// One finding as every rendering shows it.
#[derive(Debug, Clone)]
pub(crate) struct FindingView<'a> {
    /// The documented message, cleaned.
    pub(crate) message: Untrusted<'a>,
    pub(crate) user: Untrusted<'a>,
    pub(crate) down_mid_servers: Vec<MidView<'a>>,
    /// The detail rows after the MID Servers, label → cleaned value: deciding event, login history, account,
    /// missing roles, likely cause.
    pub(crate) rows: Vec<(&'static str, String)>,
}

impl<'a> FindingView<'a> {
    /// The view of `f` in a report whose window ends at `end`.
    pub(crate) fn of(f: &'a Finding, end: chrono::DateTime<chrono::Utc>) -> FindingView<'a> {
        let mut rows = Vec::new();
        if let Some(h) = &f.history {
            rows.push(("Seen", seen(h, end)));
        }
        match &f.evidence.event {
            Some(e) => {
                let mid = e.source_mid.as_deref().map(|m| format!(", MID Server {}", clean(m))).unwrap_or_default();
                let from = e.ip.as_deref().map(|ip| format!(" from {}{mid}", clean(ip))).unwrap_or_default();
                rows.push((
                    "Deciding event",
                    format!(
                        "{} at {} UTC{from} (sysevent {})",
                        e.name.event_name(),
                        sn_time::format(e.at),
                        clean(&e.sys_id)
                    ),
                ));
            }
            None => rows.push(("Deciding event", "none: no login attempt in the window".to_string())),
        }
        if let Some(h) = &f.evidence.login_history {
            let reason =
                if h.failure_reason.is_empty() { String::new() } else { format!(": {}", clean(&h.failure_reason)) };
            rows.push((
                "Login history",
                format!("{} at {} UTC from {}{reason}", clean(&h.status), sn_time::format(h.at), clean(&h.ip_address)),
            ));
        }
        rows.push(("Account", account_line(f, end)));
        let (sso, logins): (Vec<_>, Vec<_>) =
            f.activity.iter().partition(|a| crate::domain::SSO_EVENTS.contains(&a.name.as_str()));
        if !logins.is_empty() {
            rows.push(("Login events", activity_line(&logins)));
        }
        if !sso.is_empty() {
            rows.push(("SSO events", activity_line(&sso)));
        }
        let roles = &f.missing_roles;
        if !roles.from_event.is_empty() {
            rows.push(("Missing (event)", clean(&roles.from_event.join(", "))));
        }
        if !roles.from_role_containment.is_empty() {
            rows.push((
                "Missing (roles)",
                format!("{} (compared with what mid_server contains)", clean(&roles.from_role_containment.join(", "))),
            ));
        }
        if let Some(cause) = &f.likely_cause {
            rows.push(("Likely cause", clean(cause)));
        }
        FindingView {
            message: Untrusted::of(&f.message),
            user: Untrusted::of(&f.user),
            down_mid_servers: f
                .down_mid_servers
                .iter()
                .map(|m| MidView {
                    sys_id: Untrusted::of(&m.sys_id),
                    name: Untrusted::of(&m.name),
                    down_since: m.down_since.map(|at| silent_since(at, end)),
                })
                .collect(),
            rows,
        }
    }
}

/// A user configured on down MID Servers, in the ID map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MappedUser<'a> {
    pub(crate) user: Untrusted<'a>,
    pub(crate) mid_servers: Vec<Untrusted<'a>>,
}

/// The MID Server ID map, cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdMapView<'a> {
    pub(crate) unassociated_users: Vec<Untrusted<'a>>,
    pub(crate) users_on_down_mid_servers: Vec<MappedUser<'a>>,
    /// sys_id → name.
    pub(crate) down_mid_servers: Vec<MidView<'a>>,
}

impl<'a> IdMapView<'a> {
    pub(crate) fn of(map: &'a IdMap) -> IdMapView<'a> {
        IdMapView {
            unassociated_users: map.unassociated_users.iter().map(|u| Untrusted::of(u)).collect(),
            users_on_down_mid_servers: map
                .users_on_down_mid_servers
                .iter()
                .map(|(u, mids)| MappedUser {
                    user: Untrusted::of(u),
                    mid_servers: mids.iter().map(|m| Untrusted::of(m)).collect(),
                })
                .collect(),
            down_mid_servers: map
                .down_mid_servers
                .iter()
                .map(|(id, name)| MidView { sys_id: Untrusted::of(id), name: Untrusted::of(name), down_since: None })
                .collect(),
        }
    }
}

/// The title of the early warnings' section, with how many there are.
pub(crate) fn warnings_title(n: usize) -> String {
    format!("Early warnings ({n}): users of Up MID Servers, before the outage")
}

/// The title of the observations' section, with how many there are.
pub(crate) fn observations_title(n: usize) -> String {
    format!("Observations ({n}): no change of status")
}

/// The parts of a report every rendering shows, cleaned once.
#[derive(Debug, Clone)]
pub(crate) struct ReportView<'a> {
    pub(crate) report: &'a Report,
    pub(crate) status_line: String,
    pub(crate) window: String,
    /// (user, reason) of the users the check refused to query.
    pub(crate) skipped_users: Vec<(String, String)>,
    pub(crate) id_map: Option<IdMapView<'a>>,
    /// Down MID Servers not judged this cycle (`[check] down_for`).
    pub(crate) held_back: Vec<HeldBackView<'a>>,
    /// The early warnings' and observations' sentences, cleaned.
    pub(crate) warnings: Vec<String>,
    pub(crate) observations: Vec<String>,
    pub(crate) notes: Vec<String>,
}

/// A MID Server down for less than `[check] down_for`: its users are judged on a later cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldBackView<'a> {
    pub(crate) mid: MidView<'a>,
    pub(crate) users: Vec<Untrusted<'a>>,
}

impl<'a> ReportView<'a> {
    pub(crate) fn of(report: &'a Report) -> ReportView<'a> {
        ReportView {
            report,
            status_line: clean(&report.status_line()),
            window: window_line(report),
            skipped_users: report.skipped_users.iter().map(|s| (clean(&s.user), clean(&s.reason))).collect(),
            id_map: report.id_map.as_ref().map(IdMapView::of),
            held_back: report
                .down_mid_servers
                .iter()
                .filter(|m| !m.judged)
                .map(|m| HeldBackView {
                    mid: MidView {
                        sys_id: Untrusted::of(&m.sys_id),
                        name: Untrusted::of(&m.name),
                        down_since: m.down_since.map(|at| silent_since(at, report.window.end)),
                    },
                    users: m.users.iter().map(|u| Untrusted::of(u)).collect(),
                })
                .collect(),
            warnings: report.warnings.iter().map(|w| clean(w.text())).collect(),
            observations: report.observations.iter().map(|o| clean(o.text())).collect(),
            notes: report.notes.iter().map(|n| clean(n)).collect(),
        }
    }

    /// The findings of one category, in report order.
    pub(crate) fn findings_of(&self, category: crate::domain::Category) -> Vec<FindingView<'a>> {
        let end = self.report.window.end;
        self.report.findings.iter().filter(|f| f.category == category).map(|f| FindingView::of(f, end)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FindingHistory;

    #[test]
    fn a_finding_s_history_says_how_many_checks_detected_it_and_since_when() {
        let at = |s: &str| sn_time::parse(s).unwrap_or_else(|| panic!("{s}"));
        let end = at("2026-11-22 12:02:00");
        let open =
            FindingHistory { first_detected: at("2026-11-22 12:00:00"), times_detected: 9, resolved_before: None };
        // Nine manual checks within two minutes: checks, not cycles of the schedule.
        assert_eq!(seen(&open, end), "open for 2m, detected by 9 checks since 2026-11-22 12:00:00 UTC");
        let new = FindingHistory { times_detected: 1, ..open };
        assert_eq!(seen(&new, end), "new this cycle");
        let back = FindingHistory { resolved_before: Some(at("2026-11-20 12:02:00")), ..new };
        assert_eq!(seen(&back, end), "new: back after 2d (midwatch resolved it 2026-11-20 12:02:00 UTC)");
    }
}
