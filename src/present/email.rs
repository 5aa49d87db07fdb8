//! The email: subject, plain text (wrapped for a terminal mail client) and HTML alternatives.
//!
//! Rendering is a pure function of the report, the change since the last email, the links and `now`, so the
//! snapshot tests can compare it byte for byte. Every value that comes from the instance (user names, MID
//! Server names, messages, reasons) is cleaned of control characters in both bodies and HTML-escaped in the
//! HTML one; none of them ever goes into a header.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use url::Url;

use super::{FindingView, IdMapView, ReportView, Value, clean};
use crate::domain::{Category, Finding, FindingKey, Report, Status, sn_time};

/// Text lines are wrapped at this width where words allow (URLs are never broken).
pub const WIDTH: usize = 76;

/// How the findings compare with the last email's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta<'a> {
    pub new: Vec<&'a Finding>,
    pub still_open: Vec<&'a Finding>,
    /// In the last email, gone now.
    pub resolved: Vec<FindingKey>,
    /// When the last email was composed; `None` for the first one.
    pub previous_at: Option<DateTime<Utc>>,
}

impl<'a> Delta<'a> {
    /// Compares with the findings of the last email (`previous_at` `None`: nothing was ever sent).
    pub fn against(report: &'a Report, previous: &[FindingKey], previous_at: Option<DateTime<Utc>>) -> Delta<'a> {
        let was = |f: &Finding| {
            previous.iter().any(|p| p.user == f.user && p.category == f.category && p.message == f.message)
        };
        let (still_open, new): (Vec<&Finding>, Vec<&Finding>) = report.findings.iter().partition(|f| was(f));
        let current = FindingKey::of_report(report);
        let mut resolved: Vec<FindingKey> = previous.iter().filter(|p| !current.contains(p)).cloned().collect();
        resolved.sort();
        resolved.dedup();
        Delta { new, still_open, resolved, previous_at }
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders the subject and both bodies.
pub fn render(report: &Report, delta: &Delta<'_>, links: &Links, now: DateTime<Utc>) -> RenderedEmail {
    let subject = subject(report, delta);
    let view = EmailView::of(report, delta);
    let text = text(&view, links, now);
    let html = html(&view, links, now, &subject);
    RenderedEmail { subject, text, html }
}

/// New or still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    New,
    StillOpen,
}

/// A finding of the last email that is gone now.
struct ResolvedView<'a> {
    message: Value<'a>,
    user: Value<'a>,
}

type Groups<'a> = Vec<(Category, Vec<FindingView<'a>>)>;

/// What both bodies show, built once from the report and the change since the last email.
struct EmailView<'a> {
    report: ReportView<'a>,
    changes: String,
    /// New, then still open, with their counts; each grouped by category, empty groups left out.
    sections: Vec<(Section, usize, Groups<'a>)>,
    resolved_count: usize,
    resolved: Vec<(Category, Vec<ResolvedView<'a>>)>,
    glance: Vec<GlanceRow>,
}

/// One row of the "at a glance" table: a category with findings now.
struct GlanceRow {
    category: Category,
    findings: usize,
    new: usize,
    /// How long the oldest of them has been open (`None`: all new, or no history).
    oldest_open: Option<String>,
}

fn glance(report: &Report, delta: &Delta<'_>) -> Vec<GlanceRow> {
    Category::ALL
        .into_iter()
        .filter_map(|c| {
            let of_c: Vec<&Finding> = report.findings.iter().filter(|f| f.category == c).collect();
            if of_c.is_empty() {
                return None;
            }
            let oldest =
                of_c.iter().filter_map(|f| f.history.filter(|h| h.times_detected > 1).map(|h| h.first_detected)).min();
            Some(GlanceRow {
                category: c,
                findings: of_c.len(),
                new: delta.new.iter().filter(|f| f.category == c).count(),
                oldest_open: oldest.map(|at| super::age(at, report.window.end)),
            })
        })
        .collect()
}

impl<'a> EmailView<'a> {
    fn of(report: &'a Report, delta: &'a Delta<'a>) -> EmailView<'a> {
        let group = |findings: &[&'a Finding]| -> Groups<'a> {
            Category::ALL
                .into_iter()
                .map(|c| {
                    (
                        c,
                        findings
                            .iter()
                            .filter(|f| f.category == c)
                            .map(|f| FindingView::of(f, report.window.end))
                            .collect::<Vec<_>>(),
                    )
                })
                .filter(|(_, g)| !g.is_empty())
                .collect()
        };
        let sections = [(Section::New, &delta.new), (Section::StillOpen, &delta.still_open)]
            .into_iter()
            .filter(|(_, f)| !f.is_empty())
            .map(|(s, f)| (s, f.len(), group(f)))
            .collect();
        EmailView {
            report: ReportView::of(report),
            changes: changes_line(delta),
            sections,
            resolved_count: delta.resolved.len(),
            glance: glance(report, delta),
            resolved: Category::ALL
                .into_iter()
                .map(|c| {
                    let group: Vec<ResolvedView<'a>> = delta
                        .resolved
                        .iter()
                        .filter(|f| f.category == c)
                        .map(|f| ResolvedView { message: Value::of(&f.message), user: Value::of(&f.user) })
                        .collect();
                    (c, group)
                })
                .filter(|(_, g)| !g.is_empty())
                .collect(),
        }
    }
}

/// `[midwatch] CRITICAL acme: 3 MID Server user issues (2 new, 1 resolved)`.
pub fn subject(report: &Report, delta: &Delta<'_>) -> String {
    let n = report.findings.len();
    let what = match n {
        0 => "no MID Server user issues".to_string(),
        1 => "1 MID Server user issue".to_string(),
        n => format!("{n} MID Server user issues"),
    };
    let mut parts = Vec::new();
    if !delta.new.is_empty() {
        parts.push(format!("{} new", delta.new.len()));
    }
    if !delta.resolved.is_empty() {
        parts.push(format!("{} resolved", delta.resolved.len()));
    }
    let changes = match (parts.is_empty(), n) {
        (false, _) => format!(" ({})", parts.join(", ")),
        (true, 0) => String::new(),
        (true, _) => " (no change)".to_string(),
    };
    // The subject is a header: keep it on one line whatever the instance name holds (lettre encodes it too).
    one_line(&format!("[midwatch] {} {}: {what}{changes}", report.status.label(), clean(&report.instance)))
}

// ---------------------------------------------------------------------------------------------------------
// Values from the instance

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// HTML-escapes a cleaned value (text and attribute contexts).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Links

/// Links to the instance: `ecc_agent_issue` record sys_ids by message (may be empty when write-back is off).
#[derive(Debug, Clone)]
pub struct Links {
    pub instance_url: Url,
    pub issue_ids: std::collections::BTreeMap<String, String>,
}

fn page(links: &Links, path: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url: Url = links.instance_url.join(path).ok()?;
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs.iter().copied());
    }
    Some(url.to_string())
}

/// The `ecc_agent_issue` record when its sys_id is known, else the list filtered on the message.
pub fn issue_link(links: &Links, message: &str) -> Option<String> {
    match links.issue_ids.get(message) {
        Some(id) => page(links, "nav_to.do", &[("uri", &format!("ecc_agent_issue.do?sys_id={id}"))]),
        None => page(links, "ecc_agent_issue_list.do", &[("sysparm_query", &format!("message={message}"))]),
    }
}

pub fn user_link(links: &Links, user: &str) -> Option<String> {
    page(links, "sys_user_list.do", &[("sysparm_query", &format!("user_name={user}"))])
}

pub fn mid_link(links: &Links, sys_id: &str) -> Option<String> {
    page(links, "ecc_agent.do", &[("sys_id", sys_id)])
}

// ---------------------------------------------------------------------------------------------------------
// Shared wording

fn changes_line(delta: &Delta<'_>) -> String {
    match delta.previous_at {
        None => "first email from midwatch for this instance: every finding is new".to_string(),
        Some(at) => format!(
            "{} new, {} still open, {} resolved since the last email ({} UTC)",
            delta.new.len(),
            delta.still_open.len(),
            delta.resolved.len(),
            sn_time::format(at)
        ),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Plain text

/// Greedy word wrap: `first` prefixes the first line, `rest` the others; words longer than the line stay whole.
pub fn wrap(text: &str, first: &str, rest: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from(first);
    let mut empty = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if !empty && !fits {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from(rest);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

struct TextOut {
    out: String,
}

impl TextOut {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }

    fn wrapped(&mut self, first: &str, rest: &str, text: &str) {
        self.out.push_str(&wrap(text, first, rest, WIDTH));
    }

    fn heading(&mut self, title: &str, underline: char) {
        self.line(title);
        self.line(&underline.to_string().repeat(title.chars().count()));
    }

    /// `      Label:           value`, the value wrapped under itself.
    fn field(&mut self, label: &str, value: &str) {
        let first = format!("      {:<17}", format!("{label}:"));
        let rest = " ".repeat(first.chars().count());
        self.wrapped(&first, &rest, value);
    }
}

fn text(v: &EmailView<'_>, links: &Links, now: DateTime<Utc>) -> String {
    let r = &v.report;
    let mut t = TextOut { out: String::new() };
    t.wrapped("", "  ", &r.status_line);
    t.blank();
    t.wrapped("Instance: ", "          ", &clean(links.instance_url.as_str()));
    t.wrapped("Window:   ", "          ", &r.window);
    t.wrapped("Changes:  ", "          ", &v.changes);
    if !v.glance.is_empty() {
        t.blank();
        t.line("At a glance:");
        t.line(&format!("  {:<16} {:>8} {:>5}  {}", "Category", "Findings", "New", "Oldest open"));
        for g in &v.glance {
            t.line(&format!(
                "  {:<16} {:>8} {:>5}  {}",
                g.category.name(),
                g.findings,
                g.new,
                g.oldest_open.as_deref().unwrap_or("-")
            ));
        }
    }

    for (section, count, groups) in &v.sections {
        let title = match section {
            Section::New => "NEW",
            Section::StillOpen => "STILL OPEN",
        };
        t.blank();
        t.heading(&format!("{title} ({count})"), '=');
        for (c, group) in groups {
            t.blank();
            t.heading(&format!("{} ({})", c.title(), group.len()), '-');
            t.wrapped("What to do: ", "  ", c.remediation());
            for f in group {
                text_finding(&mut t, f, links);
            }
        }
    }
    if v.resolved_count > 0 {
        t.blank();
        t.heading(&format!("RESOLVED ({})", v.resolved_count), '=');
        for (c, group) in &v.resolved {
            t.blank();
            t.heading(&format!("{} ({})", c.title(), group.len()), '-');
            for f in group {
                t.blank();
                t.wrapped("  * ", "    ", &f.message.text);
                if let Some(u) = issue_link(links, f.message.raw) {
                    t.field("Issue record", &u);
                }
                if let Some(u) = user_link(links, f.user.raw) {
                    t.field("User record", &u);
                }
            }
        }
    }
    if r.report.findings.is_empty() {
        t.blank();
        t.line("No MID Server user has a problem now.");
    }
    if !r.held_back.is_empty() {
        t.blank();
        t.heading(&format!("RECENTLY DOWN, NOT JUDGED YET ({})", r.held_back.len()), '=');
        t.wrapped(
            "",
            "",
            "Down for less than [check] down_for: they may be restarting or upgrading. Their users are judged on a \
             later cycle if they stay down.",
        );
        for h in &r.held_back {
            let since = h.mid.down_since.as_deref().unwrap_or("last heartbeat unknown");
            let users: Vec<&str> = h.users.iter().map(|u| u.text.as_str()).collect();
            t.wrapped("  * ", "    ", &format!("{}, {since}; users: {}", h.mid.name.text, users.join(", ")));
            if let Some(u) = mid_link(links, h.mid.sys_id.raw) {
                t.wrapped("    ", "    ", &u);
            }
        }
    }
    if !r.skipped_users.is_empty() {
        t.blank();
        t.heading(&format!("USERS NOT CHECKED ({})", r.skipped_users.len()), '=');
        for (user, reason) in &r.skipped_users {
            t.wrapped("  * ", "    ", &format!("{user}: {reason}"));
        }
    }
    if let Some(map) = &r.id_map {
        text_id_map(&mut t, map, links);
    }
    if !r.notes.is_empty() {
        t.blank();
        t.heading("NOTES", '=');
        for n in &r.notes {
            t.wrapped("  - ", "    ", n);
        }
    }
    t.blank();
    t.line("-- ");
    let list = page(links, "ecc_agent_issue_list.do", &[]).unwrap_or_default();
    t.wrapped(
        "",
        "",
        &format!(
            "Sent by midwatch at {} UTC. \"New\" and \"resolved\" compare with the previous email. \
             MID Server Issue records: {list}",
            sn_time::format(now)
        ),
    );
    t.out
}

fn text_finding(t: &mut TextOut, f: &FindingView<'_>, links: &Links) {
    t.blank();
    t.wrapped("  * ", "    ", &f.message.text);
    for m in &f.down_mid_servers {
        let link = mid_link(links, m.sys_id.raw).unwrap_or_else(|| m.sys_id.text.clone());
        let since = m.down_since.as_ref().map(|s| format!(", {s}")).unwrap_or_default();
        t.field("Down MID Server", &format!("{}{since} {link}", m.name.text));
    }
    for (label, value) in &f.rows {
        t.field(label, value);
    }
    if let Some(u) = issue_link(links, f.message.raw) {
        t.field("Issue record", &u);
    }
    if let Some(u) = user_link(links, f.user.raw) {
        t.field("User record", &u);
    }
}

fn text_id_map(t: &mut TextOut, map: &IdMapView<'_>, links: &Links) {
    t.blank();
    t.heading("MID SERVER ID MAP", '=');
    t.line("Users with the mid_server role not configured on any MID Server:");
    if map.unassociated_users.is_empty() {
        t.line("  (none)");
    }
    for u in &map.unassociated_users {
        t.wrapped("  ", "    ", &u.text);
    }
    t.line("Users configured on down MID Servers (MID Server sys_ids):");
    for u in &map.users_on_down_mid_servers {
        let ids: Vec<&str> = u.mid_servers.iter().map(|m| m.text.as_str()).collect();
        t.wrapped("  ", "    ", &format!("{}: {}", u.user.text, ids.join(", ")));
    }
    t.line("Down MID Servers (sys_id: name):");
    for m in &map.down_mid_servers {
        t.wrapped("  ", "    ", &format!("{}: {}", m.sys_id.text, m.name.text));
        if let Some(u) = mid_link(links, m.sys_id.raw) {
            t.wrapped("    ", "    ", &u);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// HTML

const TH: &str = "text-align:left;vertical-align:top;font-weight:normal;color:#555;padding:1px 12px 1px 0;\
                  white-space:nowrap";
const TD: &str = "vertical-align:top;padding:1px 0";

fn status_color(s: Status) -> &'static str {
    match s {
        Status::Ok => "#1a7f37",
        Status::Warning => "#9a6700",
        Status::Critical => "#cf222e",
        Status::Unknown => "#6e7781",
    }
}

fn a(href: &str, label: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape_html(href), escape_html(label))
}

struct HtmlOut(String);

impl HtmlOut {
    fn l(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push('\n');
    }

    fn row(&mut self, label: &str, value_html: &str) {
        self.l(&format!("<tr><th style=\"{TH}\">{label}</th><td style=\"{TD}\">{value_html}</td></tr>"));
    }

    fn h2(&mut self, title: &str, color: &str) {
        self.l(&format!(
            "<h2 style=\"font-size:18px;border-bottom:2px solid {color};padding-bottom:2px\">{}</h2>",
            escape_html(title)
        ));
    }

    fn h3(&mut self, title: &str) {
        self.l(&format!("<h3 style=\"font-size:15px;margin-bottom:4px\">{}</h3>", escape_html(title)));
    }
}

fn html(v: &EmailView<'_>, links: &Links, now: DateTime<Utc>, subject: &str) -> String {
    let r = &v.report;
    let mut h = HtmlOut(String::new());
    h.l("<!DOCTYPE html>");
    h.l("<html lang=\"en\">");
    h.l("<head>");
    h.l("<meta charset=\"utf-8\">");
    h.l(&format!("<title>{}</title>", escape_html(subject)));
    h.l("</head>");
    h.l("<body style=\"font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#1f2328;line-height:1.4\">");
    h.l(&format!(
        "<p style=\"font-family:monospace;font-weight:bold;color:{}\">{}</p>",
        status_color(r.report.status),
        escape_html(&r.status_line)
    ));
    h.l("<table style=\"border-collapse:collapse\">");
    let instance = links.instance_url.as_str();
    h.row("Instance", &a(instance, instance));
    h.row("Window", &escape_html(&r.window));
    h.row("Changes", &escape_html(&v.changes));
    h.l("</table>");
    if !v.glance.is_empty() {
        const C: &str = "padding:2px 10px;border-bottom:1px solid #d0d7de";
        const N: &str = "padding:2px 10px;border-bottom:1px solid #d0d7de;text-align:right";
        h.l("<h3 style=\"font-size:15px;margin-bottom:4px\">At a glance</h3>");
        h.l("<table style=\"border-collapse:collapse;font-size:13px\">");
        h.l(&format!(
            "<tr><th style=\"{C};text-align:left\">Category</th><th style=\"{N}\">Findings</th>\
             <th style=\"{N}\">New</th><th style=\"{C};text-align:left\">Oldest open</th></tr>"
        ));
        for g in &v.glance {
            h.l(&format!(
                "<tr><td style=\"{C}\">{}</td><td style=\"{N}\">{}</td><td style=\"{N}\">{}</td>\
                 <td style=\"{C}\">{}</td></tr>",
                g.category.title(),
                g.findings,
                g.new,
                escape_html(g.oldest_open.as_deref().unwrap_or("-"))
            ));
        }
        h.l("</table>");
    }

    for (section, count, groups) in &v.sections {
        let (title, color) = match section {
            Section::New => ("New", "#cf222e"),
            Section::StillOpen => ("Still open", "#9a6700"),
        };
        h.h2(&format!("{title} ({count})"), color);
        for (c, group) in groups {
            h.h3(&format!("{} ({})", c.title(), group.len()));
            h.l(&format!(
                "<p style=\"background:#f6f8fa;padding:6px 8px;margin:4px 0 8px 0\"><strong>What to do:</strong> {}</p>",
                escape_html(c.remediation())
            ));
            for f in group {
                html_finding(&mut h, f, links, color);
            }
        }
    }
    if v.resolved_count > 0 {
        h.h2(&format!("Resolved ({})", v.resolved_count), "#1a7f37");
        for (c, group) in &v.resolved {
            h.h3(&format!("{} ({})", c.title(), group.len()));
            h.l("<ul>");
            for f in group {
                let mut item =
                    format!("<li><span style=\"text-decoration:line-through\">{}</span>", escape_html(&f.message.text));
                let refs = refs(links, &f.message, &f.user);
                if !refs.is_empty() {
                    let _ = write!(item, "<br>{refs}");
                }
                item.push_str("</li>");
                h.l(&item);
            }
            h.l("</ul>");
        }
    }
    if r.report.findings.is_empty() {
        h.l("<p><strong>No MID Server user has a problem now.</strong></p>");
    }
    if !r.held_back.is_empty() {
        h.h2(&format!("Recently down, not judged yet ({})", r.held_back.len()), "#d0d7de");
        h.l("<p style=\"margin:4px 0\">Down for less than [check] down_for: they may be restarting or upgrading. \
             Their users are judged on a later cycle if they stay down.</p>");
        h.l("<ul>");
        for held in &r.held_back {
            let name = match mid_link(links, held.mid.sys_id.raw) {
                Some(u) => a(&u, &held.mid.name.text),
                None => escape_html(&held.mid.name.text),
            };
            let since = held.mid.down_since.as_deref().unwrap_or("last heartbeat unknown");
            let users: Vec<&str> = held.users.iter().map(|u| u.text.as_str()).collect();
            h.l(&format!("<li>{name}, {}; users: {}</li>", escape_html(since), escape_html(&users.join(", "))));
        }
        h.l("</ul>");
    }
    if !r.skipped_users.is_empty() {
        h.h2(&format!("Users not checked ({})", r.skipped_users.len()), "#d0d7de");
        h.l("<ul>");
        for (user, reason) in &r.skipped_users {
            h.l(&format!("<li><code>{}</code>: {}</li>", escape_html(user), escape_html(reason)));
        }
        h.l("</ul>");
    }
    if let Some(map) = &r.id_map {
        html_id_map(&mut h, map, links);
    }
    if !r.notes.is_empty() {
        h.h2("Notes", "#d0d7de");
        h.l("<ul>");
        for n in &r.notes {
            h.l(&format!("<li>{}</li>", escape_html(n)));
        }
        h.l("</ul>");
    }
    let list =
        page(links, "ecc_agent_issue_list.do", &[]).map(|u| a(&u, "MID Server Issue records")).unwrap_or_default();
    h.l(&format!(
        "<p style=\"color:#6e7781;font-size:12px;border-top:1px solid #d0d7de;padding-top:6px;margin-top:24px\">\
         Sent by midwatch at {} UTC. &quot;New&quot; and &quot;resolved&quot; compare with the previous email. \
         {list}</p>",
        sn_time::format(now)
    ));
    h.l("</body>");
    h.l("</html>");
    h.0
}

/// `issue record · user NAME` links, HTML.
fn refs(links: &Links, message: &Value<'_>, user: &Value<'_>) -> String {
    let mut refs = Vec::new();
    if let Some(u) = issue_link(links, message.raw) {
        refs.push(a(&u, "issue record"));
    }
    if let Some(u) = user_link(links, user.raw) {
        refs.push(a(&u, &format!("user {}", user.text)));
    }
    refs.join(" &middot; ")
}

fn html_finding(h: &mut HtmlOut, f: &FindingView<'_>, links: &Links, color: &str) {
    h.l(&format!("<div style=\"border-left:4px solid {color};padding:2px 0 2px 10px;margin:0 0 12px 0\">"));
    h.l(&format!("<p style=\"margin:0 0 4px 0\"><strong>{}</strong></p>", escape_html(&f.message.text)));
    h.l("<table style=\"border-collapse:collapse;font-size:13px\">");
    for m in &f.down_mid_servers {
        let name = match mid_link(links, m.sys_id.raw) {
            Some(u) => a(&u, &m.name.text),
            None => escape_html(&m.name.text),
        };
        let since = m.down_since.as_ref().map(|s| format!(", {}", escape_html(s))).unwrap_or_default();
        h.row("Down MID Server", &format!("{name} ({}){since}", escape_html(&m.sys_id.text)));
    }
    for (label, value) in &f.rows {
        h.row(label, &escape_html(value));
    }
    let refs = refs(links, &f.message, &f.user);
    if !refs.is_empty() {
        h.row("Links", &refs);
    }
    h.l("</table>");
    h.l("</div>");
}

fn html_id_map(h: &mut HtmlOut, map: &IdMapView<'_>, links: &Links) {
    let linked = |link: Option<String>, label: &str| match link {
        Some(u) => a(&u, label),
        None => escape_html(label),
    };
    h.h2("MID Server ID map", "#d0d7de");
    h.l("<p style=\"margin:4px 0\">Users with the mid_server role not configured on any MID Server:</p>");
    h.l("<ul>");
    if map.unassociated_users.is_empty() {
        h.l("<li>(none)</li>");
    }
    for u in &map.unassociated_users {
        h.l(&format!("<li>{}</li>", linked(user_link(links, u.raw), &u.text)));
    }
    h.l("</ul>");
    h.l("<p style=\"margin:4px 0\">Users configured on down MID Servers (MID Server sys_ids):</p>");
    h.l("<ul>");
    for u in &map.users_on_down_mid_servers {
        let ids: Vec<String> = u.mid_servers.iter().map(|id| linked(mid_link(links, id.raw), &id.text)).collect();
        h.l(&format!("<li>{}: {}</li>", linked(user_link(links, u.user.raw), &u.user.text), ids.join(", ")));
    }
    h.l("</ul>");
    h.l("<p style=\"margin:4px 0\">Down MID Servers (sys_id: name):</p>");
    h.l("<ul>");
    for m in &map.down_mid_servers {
        let id = linked(mid_link(links, m.sys_id.raw), &m.sys_id.text);
        h.l(&format!("<li>{id}: {}</li>", escape_html(&m.name.text)));
    }
    h.l("</ul>");
}
