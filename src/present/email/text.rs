//! The plain text body, wrapped for a terminal mail client: the view laid out as lines.

use super::view::{
    AT_A_GLANCE, CHANGES, DOWN_MID_SERVER, EmailView, FindingItem, GLANCE_COLUMNS, Group, INSTANCE, IdMapSection, Ref,
    SIGNATURE, Section, WHAT_TO_DO, WINDOW,
};
use crate::escape::clean;

/// Text lines are wrapped at this width where words allow (URLs are never broken).
pub(crate) const WIDTH: usize = 76;

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

    /// A section's heading: its title in capitals, underlined.
    fn section(&mut self, title: &str) {
        self.blank();
        self.heading(&title.to_uppercase(), '=');
    }

    /// `Label:    value` in the header, the value wrapped under itself.
    fn header(&mut self, label: &str, value: &str) {
        let first = format!("{:<10}", format!("{label}:"));
        let rest = " ".repeat(first.chars().count());
        self.wrapped(&first, &rest, value);
    }

    /// `      Label:           value`, the value wrapped under itself.
    fn field(&mut self, label: &str, value: &str) {
        let first = format!("      {:<17}", format!("{label}:"));
        let rest = " ".repeat(first.chars().count());
        self.wrapped(&first, &rest, value);
    }

    fn refs(&mut self, refs: &[Ref]) {
        for r in refs {
            self.field(r.field, &r.href);
        }
    }

    /// `… and 12 more: …` after a list the compact form cut short.
    fn more(&mut self, more: Option<&String>) {
        if let Some(m) = more {
            self.wrapped("  ", "    ", m);
        }
    }

    fn glance_row(&mut self, cells: [&str; 4]) {
        let [category, findings, new, oldest] = cells;
        self.line(&format!("  {category:<16} {findings:>8} {new:>5}  {oldest}"));
    }
}

/// Renders the text body.
pub(super) fn render(v: &EmailView) -> String {
    let mut t = TextOut { out: String::new() };
    t.wrapped("", "  ", &v.status_line);
    t.blank();
    t.header(INSTANCE, &clean(&v.instance_url));
    t.header(WINDOW, &v.window);
    t.header(CHANGES, &v.changes);
    if !v.glance.is_empty() {
        t.blank();
        t.line(&format!("{AT_A_GLANCE}:"));
        t.glance_row(GLANCE_COLUMNS);
        for g in &v.glance {
            let (findings, new) = (g.findings.to_string(), g.new.to_string());
            t.glance_row([g.category.name(), &findings, &new, &g.oldest_open]);
        }
    }
    for section in &v.sections {
        match section {
            Section::Findings { title, groups, .. } => {
                t.section(title);
                for g in groups {
                    t.blank();
                    t.heading(&g.title, '-');
                    t.wrapped(&format!("{WHAT_TO_DO}: "), "  ", g.category.remediation());
                    for f in &g.items {
                        finding(&mut t, f);
                    }
                    rest(&mut t, g);
                }
            }
            Section::Resolved { title, groups } => {
                t.section(title);
                for g in groups {
                    t.blank();
                    t.heading(&g.title, '-');
                    for f in &g.items {
                        t.blank();
                        t.wrapped("  * ", "    ", &f.message);
                        t.refs(&f.refs);
                    }
                    rest(&mut t, g);
                }
            }
            Section::AllClear(line) => {
                t.blank();
                t.line(line);
            }
            Section::HeldBack { title, intro, items, more } => {
                t.section(title);
                t.wrapped("", "", intro);
                for h in items {
                    t.wrapped("  * ", "    ", &format!("{}{}", h.name.text, h.detail));
                    if let Some(u) = &h.name.href {
                        t.wrapped("    ", "    ", u);
                    }
                }
                t.more(more.as_ref());
            }
            Section::NotChecked { title, items, more } => {
                t.section(title);
                for (user, reason) in items {
                    t.wrapped("  * ", "    ", &format!("{user}: {reason}"));
                }
                t.more(more.as_ref());
            }
            Section::IdMap(map) => id_map(&mut t, map),
            Section::Notes { title, items } => {
                t.section(title);
                for n in items {
                    t.wrapped("  - ", "    ", n);
                }
            }
        }
    }
    t.blank();
    t.line(SIGNATURE);
    let f = &v.footer;
    t.wrapped("", "", &format!("{} {}: {}", f.sent, f.list_label, f.list.as_deref().unwrap_or_default()));
    t.out
}

fn finding(t: &mut TextOut, f: &FindingItem) {
    t.blank();
    t.wrapped("  * ", "    ", &f.message);
    for m in &f.down_mid_servers {
        let link = m.name.href.as_deref().unwrap_or(&m.sys_id);
        let since = m.since.as_ref().map(|s| format!(", {s}")).unwrap_or_default();
        t.field(DOWN_MID_SERVER, &format!("{}{since} {link}", m.name.text));
    }
    for (label, value) in &f.rows {
        t.field(label, value);
    }
    t.refs(&f.refs);
}

/// In the compact form, how many more items the group has and where to see them, then their messages.
fn rest<T>(t: &mut TextOut, g: &Group<T>) {
    let Some(more) = &g.more else { return };
    t.blank();
    match &more.list {
        Some(url) => t.wrapped("  ", "  ", &format!("{}: {url}", more.sentence)),
        None => t.wrapped("  ", "  ", &format!("{}:", more.sentence)),
    }
    for message in &g.rest {
        t.wrapped("  * ", "    ", message);
    }
}

fn id_map(t: &mut TextOut, map: &IdMapSection) {
    t.section(map.title);
    t.line(map.unassociated_intro);
    if map.unassociated.is_empty() {
        t.line(&format!("  {}", map.none));
    }
    for u in &map.unassociated {
        t.wrapped("  ", "    ", &u.text);
    }
    let [unassociated_more, on_down_more, down_more] = &map.more;
    t.more(unassociated_more.as_ref());
    t.line(map.on_down_intro);
    for (user, mids) in &map.on_down {
        let ids: Vec<&str> = mids.iter().map(|m| m.text.as_str()).collect();
        t.wrapped("  ", "    ", &format!("{}: {}", user.text, ids.join(", ")));
    }
    t.more(on_down_more.as_ref());
    t.line(map.down_intro);
    for (id, name) in &map.down {
        t.wrapped("  ", "    ", &format!("{}: {name}", id.text));
        if let Some(u) = &id.href {
            t.wrapped("    ", "    ", u);
        }
    }
    t.more(down_more.as_ref());
}
