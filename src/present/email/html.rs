//! The HTML body: the view laid out as a styled document, every shown value HTML-escaped.

use std::fmt::Write as _;

use super::view::{
    AT_A_GLANCE, CHANGES, DOWN_MID_SERVER, EmailView, FindingItem, GLANCE_COLUMNS, Group, INSTANCE, IdMapSection,
    LINKS, Linked, Open, Ref, ResolvedItem, Section, WHAT_TO_DO, WINDOW,
};
use crate::domain::Status;
use crate::escape::clean;

const TH: &str = "text-align:left;vertical-align:top;font-weight:normal;color:#555;padding:1px 12px 1px 0;\
                  white-space:nowrap";
const TD: &str = "vertical-align:top;padding:1px 0";
const GREY: &str = "#d0d7de";

/// HTML-escapes a cleaned value (text and attribute contexts).
fn escape_html(s: &str) -> String {
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

/// One of the email's own sentences, escaped, its `` `command` `` spans as `<code>`.
fn code_spans(sentence: &str) -> String {
    let spans: Vec<String> = sentence.split('`').map(escape_html).collect();
    spans.iter().enumerate().map(|(i, s)| if i % 2 == 1 { format!("<code>{s}</code>") } else { s.clone() }).collect()
}

/// The value linked when its link is known, else escaped.
fn linked(l: &Linked) -> String {
    match &l.href {
        Some(u) => a(u, &l.text),
        None => escape_html(&l.text),
    }
}

/// `issue record · user NAME` links.
fn refs(refs: &[Ref]) -> String {
    refs.iter().map(|r| a(&r.href, &r.label)).collect::<Vec<_>>().join(" &middot; ")
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

    fn intro(&mut self, text: &str) {
        self.intro_html(&escape_html(text));
    }

    /// A paragraph already in HTML.
    fn intro_html(&mut self, html: &str) {
        self.l(&format!("<p style=\"margin:4px 0\">{html}</p>"));
    }

    /// `… and 12 more: …` after a list the compact form cut short.
    fn more(&mut self, more: Option<&String>) {
        if let Some(m) = more {
            self.intro_html(&code_spans(m));
        }
    }

    /// A list of items already in HTML.
    fn ul(&mut self, items: impl IntoIterator<Item = String>) {
        self.l("<ul>");
        for item in items {
            self.l(&format!("<li>{item}</li>"));
        }
        self.l("</ul>");
    }
}

/// Renders the HTML body; `subject` is its title.
pub(super) fn render(v: &EmailView, subject: &str) -> String {
    let mut h = HtmlOut(String::new());
    head(&mut h, subject);
    header(&mut h, v);
    glance(&mut h, v);
    for s in &v.sections {
        section(&mut h, s);
    }
    footer(&mut h, v);
    h.0
}

/// From the doctype to the opening of the body.
fn head(h: &mut HtmlOut, subject: &str) {
    h.l("<!DOCTYPE html>");
    h.l("<html lang=\"en\">");
    h.l("<head>");
    h.l("<meta charset=\"utf-8\">");
    h.l(&format!("<title>{}</title>", escape_html(subject)));
    h.l("</head>");
    h.l("<body style=\"font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#1f2328;line-height:1.4\">");
}

/// The status line, and the instance, window and changes.
fn header(h: &mut HtmlOut, v: &EmailView) {
    h.l(&format!(
        "<p style=\"font-family:monospace;font-weight:bold;color:{}\">{}</p>",
        status_color(v.status),
        escape_html(&v.status_line)
    ));
    h.l("<table style=\"border-collapse:collapse\">");
    h.row(INSTANCE, &a(&v.instance_url, &v.instance_url));
    h.row(WINDOW, &escape_html(&v.window));
    h.row(CHANGES, &escape_html(&v.changes));
    h.l("</table>");
}

/// The "at a glance" table, when some category has findings.
fn glance(h: &mut HtmlOut, v: &EmailView) {
    if v.glance.is_empty() {
        return;
    }
    const C: &str = "padding:2px 10px;border-bottom:1px solid #d0d7de";
    const N: &str = "padding:2px 10px;border-bottom:1px solid #d0d7de;text-align:right";
    let [category, findings, new, oldest] = GLANCE_COLUMNS;
    h.l(&format!("<h3 style=\"font-size:15px;margin-bottom:4px\">{AT_A_GLANCE}</h3>"));
    h.l("<table style=\"border-collapse:collapse;font-size:13px\">");
    h.l(&format!(
        "<tr><th style=\"{C};text-align:left\">{category}</th><th style=\"{N}\">{findings}</th>\
         <th style=\"{N}\">{new}</th><th style=\"{C};text-align:left\">{oldest}</th></tr>"
    ));
    for g in &v.glance {
        h.l(&format!(
            "<tr><td style=\"{C}\">{}</td><td style=\"{N}\">{}</td><td style=\"{N}\">{}</td>\
             <td style=\"{C}\">{}</td></tr>",
            g.category.title(),
            g.findings,
            g.new,
            escape_html(&g.oldest_open)
        ));
    }
    h.l("</table>");
}

fn section(h: &mut HtmlOut, section: &Section) {
    match section {
        Section::Findings { open, title, groups } => findings(h, *open, title, groups),
        Section::Resolved { title, groups } => resolved(h, title, groups),
        Section::AllClear(line) => h.l(&format!("<p><strong>{}</strong></p>", escape_html(line))),
        Section::HeldBack { title, intro, items, more } => {
            h.h2(title, GREY);
            h.intro(intro);
            h.ul(items.iter().map(|held| format!("{}{}", linked(&held.name), escape_html(&held.detail))));
            h.more(more.as_ref());
        }
        Section::NotChecked { title, items, more } => {
            h.h2(title, GREY);
            h.ul(items
                .iter()
                .map(|(user, reason)| format!("<code>{}</code>: {}", escape_html(user), escape_html(reason))));
            h.more(more.as_ref());
        }
        Section::IdMap(map) => id_map(h, map),
        Section::Notes { title, items } => {
            h.h2(title, GREY);
            h.ul(items.iter().map(|n| escape_html(n)));
        }
    }
}

/// The new or still open findings, by category, each category with what to do.
fn findings(h: &mut HtmlOut, open: Open, title: &str, groups: &[Group<FindingItem>]) {
    let color = match open {
        Open::New => "#cf222e",
        Open::StillOpen => "#9a6700",
    };
    h.h2(title, color);
    for g in groups {
        h.h3(&g.title);
        h.l(&format!(
            "<p style=\"background:#f6f8fa;padding:6px 8px;margin:4px 0 8px 0\"><strong>{WHAT_TO_DO}:\
             </strong> {}</p>",
            escape_html(g.category.remediation())
        ));
        for f in &g.items {
            finding(h, f, color);
        }
        rest(h, g, escape_html);
    }
}

/// In the compact form, how many more items the group has and where to see them, then their messages (each
/// laid out by `item`).
fn rest<T>(h: &mut HtmlOut, g: &Group<T>, item: impl Fn(&str) -> String) {
    let Some(more) = &g.more else { return };
    let list = more.list.as_deref().map(|u| format!(" {}", a(u, u))).unwrap_or_default();
    h.intro_html(&format!("{}:{list}", code_spans(&more.sentence)));
    h.ul(g.rest.iter().map(|m| item(m)));
}

/// The findings gone since the last email, struck through, by category.
fn resolved(h: &mut HtmlOut, title: &str, groups: &[Group<ResolvedItem>]) {
    let struck =
        |message: &str| format!("<span style=\"text-decoration:line-through\">{}</span>", escape_html(message));
    h.h2(title, "#1a7f37");
    for g in groups {
        h.h3(&g.title);
        h.ul(g.items.iter().map(|f| {
            let mut item = struck(&f.message);
            if !f.refs.is_empty() {
                let _ = write!(item, "<br>{}", refs(&f.refs));
            }
            item
        }));
        rest(h, g, struck);
    }
}

/// The closing paragraph, and the end of the document.
fn footer(h: &mut HtmlOut, v: &EmailView) {
    let f = &v.footer;
    let list = f.list.as_deref().map(|u| a(u, f.list_label)).unwrap_or_default();
    h.l(&format!(
        "<p style=\"color:#6e7781;font-size:12px;border-top:1px solid #d0d7de;padding-top:6px;margin-top:24px\">\
         {} {list}</p>",
        escape_html(&f.sent)
    ));
    h.l("</body>");
    h.l("</html>");
}

fn finding(h: &mut HtmlOut, f: &FindingItem, color: &str) {
    h.l(&format!("<div style=\"border-left:4px solid {color};padding:2px 0 2px 10px;margin:0 0 12px 0\">"));
    h.l(&format!("<p style=\"margin:0 0 4px 0\"><strong>{}</strong></p>", escape_html(&f.message)));
    h.l("<table style=\"border-collapse:collapse;font-size:13px\">");
    for m in &f.down_mid_servers {
        let name = linked(&m.name);
        let since = m.since.as_ref().map(|s| format!(", {}", escape_html(s))).unwrap_or_default();
        h.row(DOWN_MID_SERVER, &format!("{name} ({}){since}", escape_html(&m.sys_id)));
    }
    for (label, value) in &f.rows {
        h.row(label, &escape_html(value));
    }
    if !f.refs.is_empty() {
        h.row(LINKS, &refs(&f.refs));
    }
    h.l("</table>");
    h.l("</div>");
}

fn id_map(h: &mut HtmlOut, map: &IdMapSection) {
    h.h2(map.title, GREY);
    h.intro(map.unassociated_intro);
    let none = map.unassociated.is_empty().then(|| escape_html(map.none));
    h.ul(none.into_iter().chain(map.unassociated.iter().map(linked)));
    let [unassociated_more, on_down_more, down_more] = &map.more;
    h.more(unassociated_more.as_ref());
    h.intro(map.on_down_intro);
    h.ul(map.on_down.iter().map(|(user, mids)| {
        let ids: Vec<String> = mids.iter().map(linked).collect();
        format!("{}: {}", linked(user), ids.join(", "))
    }));
    h.more(on_down_more.as_ref());
    h.intro(map.down_intro);
    h.ul(map.down.iter().map(|(id, name)| format!("{}: {}", linked(id), escape_html(name))));
    h.more(down_more.as_ref());
}
