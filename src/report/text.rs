//! The text report: a plugin-style first line, then the summary or the detailed findings.

use std::fmt::Write as _;

use super::{AccountState, Category, Finding, IdMap, Report};
use crate::model::sn_time;

/// How much the text report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Detail {
    /// Counts by condition, no names.
    Summary,
    /// Named findings by category, with remediation and the MID Server ID map.
    #[default]
    Detailed,
}

pub fn render(report: &Report, detail: Detail) -> String {
    let mut out = String::new();
    let w = &report.window;
    let _ = writeln!(out, "{}", report.status_line());
    let _ = writeln!(
        out,
        "Window: after {} UTC, up to {} UTC ({} plus the built-in job's 1-minute margin)",
        sn_time::format(w.start),
        sn_time::format(w.end),
        humantime::format_duration(w.length)
    );
    match detail {
        Detail::Summary => summary(&mut out, report),
        Detail::Detailed => detailed(&mut out, report),
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "\nNotes:");
        for n in &report.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    out
}

fn summary(out: &mut String, r: &Report) {
    let s = &r.summary;
    let rows: [(&str, usize); 10] = [
        ("Users with the mid_server role", s.role_users),
        ("Down MID Servers", s.down_mid_servers),
        ("Users configured on down MID Servers", s.users_on_down_mid_servers),
        ("Configured MID Server users", s.configured_mid_users),
        ("Role users not associated with a MID Server", s.unassociated_role_users),
        ("Last login attempt failed authentication", s.last_attempt_failed_authentication),
        ("Last login attempt failed authorization", s.last_attempt_failed_authorization),
        ("Last login attempt succeeded", s.last_attempt_succeeded),
        ("No login attempt in the window", s.no_attempt),
        ("Connectivity undetectable (no soap_script)", s.connectivity_undetectable),
    ];
    let _ = writeln!(out);
    for (label, n) in rows {
        let _ = writeln!(out, "{label:<46} {n:>5}");
    }
    let _ = writeln!(out, "\nFindings by category:");
    for c in Category::ALL {
        let _ = writeln!(out, "  {:<44} {:>5}", c.name(), s.findings_by_category.get(&c).copied().unwrap_or(0));
    }
    if !s.findings_by_condition.is_empty() {
        let _ = writeln!(out, "\nFindings by condition:");
        for (cond, n) in &s.findings_by_condition {
            let _ = writeln!(out, "  {:<44} {n:>5}", cond.describe());
        }
    }
    if !r.skipped_users.is_empty() {
        let _ = writeln!(out, "\nUsers not checked: {}", r.skipped_users.len());
    }
}

fn detailed(out: &mut String, r: &Report) {
    for c in Category::ALL {
        let findings: Vec<&Finding> = r.findings.iter().filter(|f| f.category == c).collect();
        if findings.is_empty() {
            continue;
        }
        let n = findings.len();
        let _ = writeln!(out, "\n{} ({n} finding{})", c.title(), if n == 1 { "" } else { "s" });
        let _ = writeln!(out, "  What to do: {}", c.remediation());
        for f in findings {
            finding(out, f);
        }
    }
    if !r.skipped_users.is_empty() {
        let _ = writeln!(out, "\nUsers not checked");
        for s in &r.skipped_users {
            let _ = writeln!(out, "  * {:?}: {}", s.user, s.reason);
        }
    }
    if let Some(map) = &r.id_map {
        id_map(out, map);
    }
}

fn finding(out: &mut String, f: &Finding) {
    let _ = writeln!(out, "  * {}", f.message);
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "      {label:<17} {value}");
    };
    if !f.down_mid_servers.is_empty() {
        let mids: Vec<String> = f.down_mid_servers.iter().map(|m| format!("{} ({})", m.name, m.sys_id)).collect();
        line("Down MID Servers:", mids.join(", "));
    }
    match &f.evidence.event {
        Some(e) => {
            let from = e.ip.as_deref().map(|ip| format!(" from {ip}")).unwrap_or_default();
            line(
                "Deciding event:",
                format!("{} at {} UTC{from} (sysevent {})", e.name.event_name(), sn_time::format(e.at), e.sys_id),
            );
        }
        None => line("Deciding event:", "none: no login attempt in the window".into()),
    }
    if let Some(h) = &f.evidence.login_history {
        let reason = if h.failure_reason.is_empty() { String::new() } else { format!(": {}", h.failure_reason) };
        line("Login history:", format!("{} at {} UTC from {}{reason}", h.status, sn_time::format(h.at), h.ip_address));
    }
    let account = match f.account {
        AccountState::Active => "active",
        AccountState::Inactive => "INACTIVE",
        AccountState::LockedOut => "LOCKED OUT",
        AccountState::InactiveAndLockedOut => "INACTIVE and LOCKED OUT",
        AccountState::NotFound => "NO SUCH USER in sys_user",
    };
    line("Account:", account.into());
    let roles = &f.missing_roles;
    if !roles.from_event.is_empty() {
        line("Missing (event):", roles.from_event.join(", "));
    }
    if !roles.from_role_containment.is_empty() {
        line(
            "Missing (roles):",
            format!("{} (compared with what mid_server contains)", roles.from_role_containment.join(", ")),
        );
    }
    if let Some(cause) = &f.likely_cause {
        line("Likely cause:", cause.clone());
    }
}

fn id_map(out: &mut String, map: &IdMap) {
    let _ = writeln!(out, "\nMID Server ID map");
    let _ = writeln!(out, "  Users with the mid_server role not configured on any MID Server:");
    if map.unassociated_users.is_empty() {
        let _ = writeln!(out, "    (none)");
    }
    for u in &map.unassociated_users {
        let _ = writeln!(out, "    {u}");
    }
    let _ = writeln!(out, "  Users configured on down MID Servers (MID Server sys_ids):");
    for (u, mids) in &map.users_on_down_mid_servers {
        let _ = writeln!(out, "    {u}: {}", mids.join(", "));
    }
    let _ = writeln!(out, "  Down MID Servers (sys_id: name):");
    for (id, name) in &map.down_mid_servers {
        let _ = writeln!(out, "    {id}: {name}");
    }
}
