//! The terminal report: a plugin-style first line, then the summary or the detailed findings, and the
//! write-back and email sections of a cycle.

use std::fmt::Write as _;

use super::{Detail, FindingView, IdMapView, ReportView};
use crate::domain::{Category, Report};
use crate::escape::clean;
use crate::writeback::WriteBack;

/// The text report; `duration`, when given, is the check's wall time, added to the status line's performance
/// data as `duration=<seconds>s`.
pub fn render(report: &Report, detail: Detail, duration: Option<std::time::Duration>) -> String {
    let view = ReportView::of(report);
    let mut out = String::new();
    let _ = writeln!(out, "{}", status_line(&view.status_line, duration));
    let _ = writeln!(out, "Window: {}", view.window);
    match detail {
        Detail::Summary => summary(&mut out, &view),
        Detail::Detailed => detailed(&mut out, &view),
    }
    if !view.notes.is_empty() {
        let _ = writeln!(out, "\nNotes:");
        for n in &view.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    out
}

/// A cleaned status line with the check's wall time, when given, last in its performance data.
pub(crate) fn status_line(cleaned: &str, duration: Option<std::time::Duration>) -> String {
    let took = duration.map(|d| format!(" duration={:.3}s", d.as_secs_f64())).unwrap_or_default();
    format!("{cleaned}{took}")
}

fn summary(out: &mut String, v: &ReportView<'_>) {
    let s = &v.report.summary;
    let rows: [(&str, usize); 12] = [
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
        ("Early warnings (users of Up MID Servers)", s.warnings),
        ("Observations", s.observations),
    ];
    // The counts first, in one column, so that they align whatever the labels' lengths.
    let categories: Vec<(&str, usize)> =
        Category::ALL.iter().map(|c| (c.name(), s.findings_by_category.get(c).copied().unwrap_or(0))).collect();
    let conditions: Vec<(&str, usize)> = s.findings_by_condition.iter().map(|(c, n)| (c.describe(), *n)).collect();
    let _ = writeln!(out);
    for (label, n) in rows {
        let _ = writeln!(out, "{n:>5}  {label}");
    }
    let _ = writeln!(out, "\nFindings by category:");
    for (label, n) in categories {
        let _ = writeln!(out, "{n:>5}  {label}");
    }
    if !conditions.is_empty() {
        let _ = writeln!(out, "\nFindings by condition:");
        for (label, n) in conditions {
            let _ = writeln!(out, "{n:>5}  {label}");
        }
    }
    if !v.skipped_users.is_empty() {
        let _ = writeln!(out, "\nUsers not checked: {}", v.skipped_users.len());
    }
    if !v.held_back.is_empty() {
        let _ = writeln!(out, "Recently down MID Servers, not judged yet: {}", v.held_back.len());
    }
}

fn detailed(out: &mut String, v: &ReportView<'_>) {
    for c in Category::ALL {
        let findings = v.findings_of(c);
        if findings.is_empty() {
            continue;
        }
        let n = findings.len();
        let _ = writeln!(out, "\n{} ({n} finding{})", c.title(), if n == 1 { "" } else { "s" });
        let _ = writeln!(out, "  What to do: {}", c.remediation());
        for f in &findings {
            finding(out, f);
        }
    }
    early(out, v);
    held_back(out, v);
    if !v.skipped_users.is_empty() {
        let _ = writeln!(out, "\nUsers not checked");
        for (user, reason) in &v.skipped_users {
            let _ = writeln!(out, "  * \"{user}\": {reason}");
        }
    }
    if let Some(map) = &v.id_map {
        id_map(out, map);
    }
}

/// The early warnings and the observations, each a sentence.
fn early(out: &mut String, v: &ReportView<'_>) {
    for (title, items) in [
        (super::warnings_title(v.warnings.len()), &v.warnings),
        (super::observations_title(v.observations.len()), &v.observations),
    ] {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        for item in items {
            let _ = writeln!(out, "  * {item}");
        }
    }
}

fn held_back(out: &mut String, v: &ReportView<'_>) {
    if v.held_back.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nRecently down, not judged yet ([check] down_for)");
    for h in &v.held_back {
        let since = h.mid.down_since.as_deref().unwrap_or("last heartbeat unknown");
        let users: Vec<&str> = h.users.iter().map(|u| u.text.as_str()).collect();
        let _ = writeln!(out, "  * {} ({}), {since}: {}", h.mid.name.text, h.mid.sys_id.text, users.join(", "));
    }
}

fn finding(out: &mut String, f: &FindingView<'_>) {
    let _ = writeln!(out, "  * {}", f.message.text);
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "      {:<17} {value}", format!("{label}:"));
    };
    if !f.down_mid_servers.is_empty() {
        let mids: Vec<String> = f
            .down_mid_servers
            .iter()
            .map(|m| match &m.down_since {
                Some(since) => format!("{} ({}), {since}", m.name.text, m.sys_id.text),
                None => format!("{} ({})", m.name.text, m.sys_id.text),
            })
            .collect();
        line("Down MID Servers", &mids.join("; "));
    }
    for (label, value) in &f.rows {
        line(label, value);
    }
}

fn id_map(out: &mut String, map: &IdMapView<'_>) {
    let _ = writeln!(out, "\nMID Server ID map");
    let _ = writeln!(out, "  Users with the mid_server role not configured on any MID Server:");
    if map.unassociated_users.is_empty() {
        let _ = writeln!(out, "    (none)");
    }
    for u in &map.unassociated_users {
        let _ = writeln!(out, "    {}", u.text);
    }
    let _ = writeln!(out, "  Users configured on down MID Servers (MID Server sys_ids):");
    for u in &map.users_on_down_mid_servers {
        let ids: Vec<&str> = u.mid_servers.iter().map(|m| m.text.as_str()).collect();
        let _ = writeln!(out, "    {}: {}", u.user.text, ids.join(", "));
    }
    let _ = writeln!(out, "  Down MID Servers (sys_id: name):");
    for m in &map.down_mid_servers {
        let _ = writeln!(out, "    {}: {}", m.sys_id.text, m.name.text);
    }
}

/// The write-back section of the text report.
pub(crate) fn write_back(w: &WriteBack, detail: Detail) -> String {
    let mut out = String::new();
    let detailed = detail == Detail::Detailed;
    match w {
        WriteBack::Disabled => {}
        WriteBack::Failed { source, error } => {
            let _ = writeln!(
                out,
                "\necc_agent_issue (source {}): not written: {}",
                clean(source),
                clean(&error.to_string())
            );
        }
        WriteBack::CutOff { source, plan } => {
            let _ = writeln!(
                out,
                "\necc_agent_issue (source {}): cut off by the check's deadline while writing (planned: {}); some \
                 records may not be written yet: the next cycle converges",
                clean(source),
                plan.tally()
            );
        }
        WriteBack::DryRun { source, plan } => {
            let _ = writeln!(
                out,
                "\necc_agent_issue (source {}), dry run, nothing written: would {}",
                clean(source),
                plan.tally()
            );
            if detailed {
                for c in &plan.create {
                    let _ = writeln!(out, "  would create:   {}", clean(&c.message));
                }
                for u in &plan.count {
                    let _ = writeln!(
                        out,
                        "  would count:    {} -> count {}: {}",
                        clean(&u.sys_id),
                        u.count,
                        clean(&u.message)
                    );
                }
                for r in &plan.resolve {
                    let _ = writeln!(out, "  would resolve:  {}: {}", clean(&r.sys_id), clean(&r.message));
                }
            }
        }
        WriteBack::Applied { source, applied, .. } => {
            let _ = writeln!(
                out,
                "\necc_agent_issue (source {}): {} created, {} counted, {} resolved{}",
                clean(source),
                applied.created.len(),
                applied.counted.len(),
                applied.resolved.len(),
                if applied.failed.is_empty() { String::new() } else { format!(", {} FAILED", applied.failed.len()) }
            );
            if detailed {
                for c in &applied.created {
                    let _ = writeln!(out, "  created   {}: {}", clean(&c.sys_id), clean(&c.message));
                }
                for c in &applied.counted {
                    let count = c.count.map(|n| format!(" (count {n})")).unwrap_or_default();
                    let _ = writeln!(out, "  counted   {}{count}: {}", clean(&c.sys_id), clean(&c.message));
                }
                for r in &applied.resolved {
                    let _ = writeln!(out, "  resolved  {}: {}", clean(&r.sys_id), clean(&r.message));
                }
            }
            for f in &applied.failed {
                let _ = writeln!(out, "  FAILED {} of \"{}\": {}", f.action, clean(&f.message), clean(&f.error));
            }
        }
    }
    out
}

/// What the email step did, as the text report shows it. `notify` fills it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EmailSection {
    /// `sent to 2 recipients`, `queued (…)`…
    pub(crate) summary: String,
    /// A dry run: the message that would be sent.
    pub(crate) dry_run: Option<DryRunEmail>,
    /// The text body of this cycle's message, when one was composed (already cleaned by the email rendering).
    pub(crate) text: Option<String>,
    pub(crate) problems: Vec<String>,
}

/// What a dry run tells of the message it would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DryRunEmail {
    pub(crate) subject: String,
    pub(crate) recipients: Vec<String>,
    /// Its size as it would go to the relay (headers, both alternatives), in bytes.
    pub(crate) size: usize,
}

/// The email section of the text report; `show_text` (`check --show-email`) adds the message's text body.
/// A dry run says whom the message would go to, its subject and its size, not the whole message.
pub(crate) fn email(section: Option<&EmailSection>, show_text: bool) -> String {
    let Some(section) = section else {
        return if show_text {
            "\nEmail: none (no [email] section, or --no-email)\n".to_string()
        } else {
            String::new()
        };
    };
    let mut out = String::new();
    match &section.dry_run {
        Some(d) => {
            let _ = writeln!(out, "\nEmail (dry run, not sent): would go to {}", clean(&d.recipients.join(", ")));
            let _ = writeln!(out, "  Subject: {}", clean(&d.subject));
            let how = if show_text { "its text follows" } else { "add --show-email to print its text" };
            let _ = writeln!(out, "  Size:    {} (text and HTML); {how}", size(d.size));
        }
        None => {
            let _ = writeln!(out, "\nEmail: {}", clean(&section.summary));
        }
    }
    for line in section.text.iter().filter(|_| show_text).flat_map(|t| t.lines()) {
        let _ = writeln!(out, "  | {line}");
    }
    for p in &section.problems {
        let _ = writeln!(out, "  problem: {}", clean(p));
    }
    out
}

/// `812 bytes`, `23.4 kB`, `1.2 MB` (of 1000).
fn size(bytes: usize) -> String {
    match bytes {
        0..1000 => format!("{bytes} bytes"),
        1000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}
