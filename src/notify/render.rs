//! The email: subject, plain text (wrapped for a terminal mail client) and HTML alternatives.
//!
//! Rendering is a pure function of the report, the change since the last email, the links and `now`, so the
//! snapshot tests can compare it byte for byte. Every value that comes from the instance (user names, MID
//! Server names, messages, reasons) is cleaned of control characters in both bodies and HTML-escaped in the
//! HTML one; none of them ever goes into a header.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use url::Url;

use super::Links;
use super::outbox::{NotifiedFinding, NotifiedState};
use crate::model::sn_time;
use crate::report::{AccountState, Category, Finding, IdMap, Report, Status};

/// Text lines are wrapped at this width where words allow (URLs are never broken).
pub const WIDTH: usize = 76;

/// How the findings compare with the last email's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta<'a> {
    pub new: Vec<&'a Finding>,
    pub still_open: Vec<&'a Finding>,
    /// In the last email, gone now.
    pub resolved: Vec<NotifiedFinding>,
    /// When the last email was composed; `None` for the first one.
    pub previous_at: Option<DateTime<Utc>>,
}

impl<'a> Delta<'a> {
    /// Compares with the last-notified state (`None`: nothing was ever sent, every finding is new).
    pub fn compute(report: &'a Report, last: Option<&NotifiedState>) -> Delta<'a> {
        match last {
            Some(l) => Delta::against(report, &l.findings, Some(l.notified_at)),
            None => Delta::against(report, &[], None),
        }
    }

    pub fn against(report: &'a Report, previous: &[NotifiedFinding], previous_at: Option<DateTime<Utc>>) -> Delta<'a> {
        let was = |f: &Finding| {
            previous.iter().any(|p| p.user == f.user && p.category == f.category && p.message == f.message)
        };
        let (still_open, new): (Vec<&Finding>, Vec<&Finding>) = report.findings.iter().partition(|f| was(f));
        let current = NotifiedFinding::of_report(report);
        let mut resolved: Vec<NotifiedFinding> = previous.iter().filter(|p| !current.contains(p)).cloned().collect();
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
    let text = text(report, delta, links, now);
    let html = html(report, delta, links, now, &subject);
    RenderedEmail { subject, text, html }
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

/// Control characters (CR, LF, TAB, ESC, …) made visible as escapes, so that no value can start a new line in
/// a body, fake a MIME boundary, or move a terminal's cursor.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

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

fn account(a: AccountState) -> &'static str {
    match a {
        AccountState::Active => "active",
        AccountState::Inactive => "INACTIVE",
        AccountState::LockedOut => "LOCKED OUT",
        AccountState::InactiveAndLockedOut => "INACTIVE and LOCKED OUT",
        AccountState::NotFound => "NO SUCH USER in sys_user",
    }
}

/// The detail rows of a finding, label → (cleaned) value, without links.
fn detail_rows(f: &Finding) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    match &f.evidence.event {
        Some(e) => {
            let from = e.ip.as_deref().map(|ip| format!(" from {}", clean(ip))).unwrap_or_default();
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
    rows.push(("Account", account(f.account).to_string()));
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
    rows
}

/// Current findings of one category, in report order.
fn of_category<'a>(findings: &[&'a Finding], c: Category) -> Vec<&'a Finding> {
    findings.iter().copied().filter(|f| f.category == c).collect()
}

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

fn window_line(report: &Report) -> String {
    let w = &report.window;
    format!(
        "after {} UTC, up to {} UTC ({} plus the built-in job's 1-minute margin)",
        sn_time::format(w.start),
        sn_time::format(w.end),
        humantime::format_duration(w.length)
    )
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

fn text(report: &Report, delta: &Delta<'_>, links: &Links, now: DateTime<Utc>) -> String {
    let mut t = TextOut { out: String::new() };
    t.wrapped("", "  ", &clean(&report.status_line()));
    t.blank();
    t.wrapped("Instance: ", "          ", &clean(links.instance_url.as_str()));
    t.wrapped("Window:   ", "          ", &window_line(report));
    t.wrapped("Changes:  ", "          ", &changes_line(delta));

    let sections: [(&str, &[&Finding]); 2] = [("NEW", &delta.new), ("STILL OPEN", &delta.still_open)];
    for (title, findings) in sections {
        if findings.is_empty() {
            continue;
        }
        t.blank();
        t.heading(&format!("{title} ({})", findings.len()), '=');
        for c in Category::ALL {
            let group = of_category(findings, c);
            if group.is_empty() {
                continue;
            }
            t.blank();
            t.heading(&format!("{} ({})", c.title(), group.len()), '-');
            t.wrapped("What to do: ", "  ", c.remediation());
            for f in group {
                text_finding(&mut t, f, links);
            }
        }
    }
    if !delta.resolved.is_empty() {
        t.blank();
        t.heading(&format!("RESOLVED ({})", delta.resolved.len()), '=');
        for c in Category::ALL {
            let group: Vec<&NotifiedFinding> = delta.resolved.iter().filter(|f| f.category == c).collect();
            if group.is_empty() {
                continue;
            }
            t.blank();
            t.heading(&format!("{} ({})", c.title(), group.len()), '-');
            for f in group {
                t.blank();
                t.wrapped("  * ", "    ", &clean(&f.message));
                if let Some(u) = issue_link(links, &f.message) {
                    t.field("Issue record", &u);
                }
                if let Some(u) = user_link(links, &f.user) {
                    t.field("User record", &u);
                }
            }
        }
    }
    if report.findings.is_empty() {
        t.blank();
        t.line("No MID Server user has a problem now.");
    }
    if !report.skipped_users.is_empty() {
        t.blank();
        t.heading(&format!("USERS NOT CHECKED ({})", report.skipped_users.len()), '=');
        for s in &report.skipped_users {
            t.wrapped("  * ", "    ", &format!("{}: {}", clean(&s.user), clean(&s.reason)));
        }
    }
    if let Some(map) = &report.id_map {
        text_id_map(&mut t, map, links);
    }
    if !report.notes.is_empty() {
        t.blank();
        t.heading("NOTES", '=');
        for n in &report.notes {
            t.wrapped("  - ", "    ", &clean(n));
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

fn text_finding(t: &mut TextOut, f: &Finding, links: &Links) {
    t.blank();
    t.wrapped("  * ", "    ", &clean(&f.message));
    for m in &f.down_mid_servers {
        let link = mid_link(links, &m.sys_id).unwrap_or_else(|| clean(&m.sys_id));
        t.field("Down MID Server", &format!("{} {link}", clean(&m.name)));
    }
    for (label, value) in detail_rows(f) {
        t.field(label, &value);
    }
    if let Some(u) = issue_link(links, &f.message) {
        t.field("Issue record", &u);
    }
    if let Some(u) = user_link(links, &f.user) {
        t.field("User record", &u);
    }
}

fn text_id_map(t: &mut TextOut, map: &IdMap, links: &Links) {
    t.blank();
    t.heading("MID SERVER ID MAP", '=');
    t.line("Users with the mid_server role not configured on any MID Server:");
    if map.unassociated_users.is_empty() {
        t.line("  (none)");
    }
    for u in &map.unassociated_users {
        t.wrapped("  ", "    ", &clean(u));
    }
    t.line("Users configured on down MID Servers (MID Server sys_ids):");
    for (u, mids) in &map.users_on_down_mid_servers {
        t.wrapped("  ", "    ", &format!("{}: {}", clean(u), clean(&mids.join(", "))));
    }
    t.line("Down MID Servers (sys_id: name):");
    for (id, name) in &map.down_mid_servers {
        t.wrapped("  ", "    ", &format!("{}: {}", clean(id), clean(name)));
        if let Some(u) = mid_link(links, id) {
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

fn html(report: &Report, delta: &Delta<'_>, links: &Links, now: DateTime<Utc>, subject: &str) -> String {
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
        status_color(report.status),
        escape_html(&report.status_line())
    ));
    h.l("<table style=\"border-collapse:collapse\">");
    let instance = links.instance_url.as_str();
    h.row("Instance", &a(instance, instance));
    h.row("Window", &escape_html(&window_line(report)));
    h.row("Changes", &escape_html(&changes_line(delta)));
    h.l("</table>");

    let sections: [(&str, &str, &[&Finding]); 2] =
        [("New", "#cf222e", &delta.new), ("Still open", "#9a6700", &delta.still_open)];
    for (title, color, findings) in sections {
        if findings.is_empty() {
            continue;
        }
        h.h2(&format!("{title} ({})", findings.len()), color);
        for c in Category::ALL {
            let group = of_category(findings, c);
            if group.is_empty() {
                continue;
            }
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
    if !delta.resolved.is_empty() {
        h.h2(&format!("Resolved ({})", delta.resolved.len()), "#1a7f37");
        for c in Category::ALL {
            let group: Vec<&NotifiedFinding> = delta.resolved.iter().filter(|f| f.category == c).collect();
            if group.is_empty() {
                continue;
            }
            h.h3(&format!("{} ({})", c.title(), group.len()));
            h.l("<ul>");
            for f in group {
                let mut item =
                    format!("<li><span style=\"text-decoration:line-through\">{}</span>", escape_html(&f.message));
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
    if report.findings.is_empty() {
        h.l("<p><strong>No MID Server user has a problem now.</strong></p>");
    }
    if !report.skipped_users.is_empty() {
        h.h2(&format!("Users not checked ({})", report.skipped_users.len()), "#d0d7de");
        h.l("<ul>");
        for s in &report.skipped_users {
            h.l(&format!("<li><code>{}</code>: {}</li>", escape_html(&s.user), escape_html(&s.reason)));
        }
        h.l("</ul>");
    }
    if let Some(map) = &report.id_map {
        html_id_map(&mut h, map, links);
    }
    if !report.notes.is_empty() {
        h.h2("Notes", "#d0d7de");
        h.l("<ul>");
        for n in &report.notes {
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
fn refs(links: &Links, message: &str, user: &str) -> String {
    let mut refs = Vec::new();
    if let Some(u) = issue_link(links, message) {
        refs.push(a(&u, "issue record"));
    }
    if let Some(u) = user_link(links, user) {
        refs.push(a(&u, &format!("user {user}")));
    }
    refs.join(" &middot; ")
}

fn html_finding(h: &mut HtmlOut, f: &Finding, links: &Links, color: &str) {
    h.l(&format!("<div style=\"border-left:4px solid {color};padding:2px 0 2px 10px;margin:0 0 12px 0\">"));
    h.l(&format!("<p style=\"margin:0 0 4px 0\"><strong>{}</strong></p>", escape_html(&f.message)));
    h.l("<table style=\"border-collapse:collapse;font-size:13px\">");
    for m in &f.down_mid_servers {
        let value = match mid_link(links, &m.sys_id) {
            Some(u) => format!("{} ({})", a(&u, &m.name), escape_html(&m.sys_id)),
            None => format!("{} ({})", escape_html(&m.name), escape_html(&m.sys_id)),
        };
        h.row("Down MID Server", &value);
    }
    for (label, value) in detail_rows(f) {
        h.row(label, &escape_html(&value));
    }
    let refs = refs(links, &f.message, &f.user);
    if !refs.is_empty() {
        h.row("Links", &refs);
    }
    h.l("</table>");
    h.l("</div>");
}

fn html_id_map(h: &mut HtmlOut, map: &IdMap, links: &Links) {
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
        h.l(&format!("<li>{}</li>", linked(user_link(links, u), u)));
    }
    h.l("</ul>");
    h.l("<p style=\"margin:4px 0\">Users configured on down MID Servers (MID Server sys_ids):</p>");
    h.l("<ul>");
    for (u, mids) in &map.users_on_down_mid_servers {
        let ids: Vec<String> = mids.iter().map(|id| linked(mid_link(links, id), id)).collect();
        h.l(&format!("<li>{}: {}</li>", linked(user_link(links, u), u), ids.join(", ")));
    }
    h.l("</ul>");
    h.l("<p style=\"margin:4px 0\">Down MID Servers (sys_id: name):</p>");
    h.l("<ul>");
    for (id, name) in &map.down_mid_servers {
        h.l(&format!("<li>{}: {}</li>", linked(mid_link(links, id), id), escape_html(name)));
    }
    h.l("</ul>");
}
