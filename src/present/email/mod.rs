//! The email: subject, plain text (wrapped for a terminal mail client) and HTML alternatives.
//!
//! ```text
//! Report + Delta (delta.rs) + Links (links.rs) ──▶ EmailView (view.rs: every sentence, once)
//!                                                     ├──▶ text.rs  plain text body
//!                                                     └──▶ html.rs  HTML body
//! ```
//!
//! Rendering is a pure function of the report, the change since the last email, the links and `now`, so the
//! snapshot tests can compare it byte for byte. Every value that comes from the instance (user names, MID
//! Server names, messages, reasons) is cleaned of control characters in both bodies and HTML-escaped in the
//! HTML one; none of them ever goes into a header.

mod delta;
mod html;
mod links;
mod text;
mod view;

use chrono::{DateTime, Utc};

pub use delta::Delta;
pub use links::Links;
pub use text::wrap;

use crate::domain::Report;
use crate::escape::clean;
use view::EmailView;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// How much of the report an email shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// Everything.
    Full,
    /// Within a size: the full detail of the first `n` findings of each category (and the first `n` entries of
    /// each other list), every finding's message, and how many more there are and where to see them in full.
    FirstInFull(usize),
}

impl Form {
    /// How many items of each list are shown in full.
    fn keep(self) -> usize {
        match self {
            Form::Full => usize::MAX,
            Form::FirstInFull(n) => n,
        }
    }
}

/// Renders the subject and both bodies.
pub fn render(report: &Report, delta: &Delta<'_>, links: &Links, now: DateTime<Utc>) -> RenderedEmail {
    render_form(report, delta, links, now, Form::Full)
}

/// Renders the subject and both bodies in `form`; the subject is the same in every form.
pub(crate) fn render_form(
    report: &Report,
    delta: &Delta<'_>,
    links: &Links,
    now: DateTime<Utc>,
    form: Form,
) -> RenderedEmail {
    let subject = subject(report, delta);
    let view = EmailView::of(report, delta, links, now, form);
    let text = text::render(&view);
    let html = html::render(&view, &subject);
    RenderedEmail { subject, text, html }
}

/// `[midwatch] CRITICAL acme: 3 MID Server user issues (2 new, 1 resolved)`.
fn subject(report: &Report, delta: &Delta<'_>) -> String {
    let n = report.findings.len();
    let what = match n {
        0 => "no MID Server user issues".to_string(),
        1 => "1 MID Server user issue".to_string(),
        n => format!("{n} MID Server user issues"),
    };
    let what = match report.warnings.len() {
        0 => what,
        1 => format!("{what}, 1 early warning"),
        w => format!("{what}, {w} early warnings"),
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
        (true, _) if delta.reminder => " (reminder: still open)".to_string(),
        (true, _) => " (no change)".to_string(),
    };
    // The subject is a header: keep it on one line whatever the instance name holds (lettre encodes it too).
    let subject = format!("[midwatch] {} {}: {what}{changes}", report.status.label(), clean(&report.instance));
    subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{
        AccountState, Category, Condition, Evidence, Finding, FindingKey, IdMap, MessageStyle, MissingRoles,
        SkippedUser, Status, Summary, Window, sn_time,
    };

    fn now() -> DateTime<Utc> {
        sn_time::parse("2026-11-22 12:00:00").expect("time")
    }

    fn finding(i: usize, category: Category) -> Finding {
        Finding {
            category,
            condition: Condition::NoLoginOnDownMid,
            user: format!("u{i:02}"),
            message: format!("User u{i:02} is associated with 1 down MID Server."),
            down_mid_servers: Vec::new(),
            missing_roles: MissingRoles::default(),
            account: AccountState::Active,
            last_login_time: None,
            failed_attempts: None,
            activity: Vec::new(),
            likely_cause: Some(format!("the likely cause of u{i:02}")),
            evidence: Evidence { event: None, login_history: None },
            sys_domain: "global".into(),
            history: None,
        }
    }

    /// 30 network findings, 2 authentication ones, 30 users on down MID Servers in the ID map, 5 users not
    /// checked; and 6 findings of the last email resolved.
    fn outage() -> (Report, Vec<FindingKey>) {
        let findings: Vec<Finding> =
            (0..32).map(|i| finding(i, if i < 2 { Category::Authentication } else { Category::Network })).collect();
        let mut id_map = IdMap::default();
        for i in 0..30 {
            let mid = format!("ec0a{i:028x}");
            id_map.users_on_down_mid_servers.insert(format!("u{i:02}"), vec![mid.clone()]);
            id_map.down_mid_servers.insert(mid, format!("mid-{i:02}"));
        }
        let report = Report {
            instance: "acme".into(),
            window: Window::ending_at(now(), std::time::Duration::from_secs(4 * 3600)),
            messages: MessageStyle::Documented,
            status: Status::Critical,
            summary: Summary { findings: findings.len(), ..Summary::default() },
            findings,
            warnings: Vec::new(),
            observations: Vec::new(),
            id_map: Some(id_map),
            skipped_users: (0..5).map(|i| SkippedUser { user: format!("odd{i}"), reason: "no".into() }).collect(),
            down_mid_servers: Vec::new(),
            notes: Vec::new(),
            user_ids: BTreeMap::new(),
            selected_users: None,
            unfinished: Vec::new(),
        };
        let gone = (40..46)
            .map(|i| FindingKey { user: format!("u{i}"), category: Category::Network, message: format!("gone {i}") })
            .collect();
        (report, gone)
    }

    fn links() -> Links {
        Links { instance_url: "https://acme.service-now.com".parse().expect("url"), issue_ids: BTreeMap::new() }
    }

    #[test]
    fn a_form_that_cuts_nothing_is_the_full_email_byte_for_byte() {
        let (report, gone) = outage();
        let delta = Delta::against(&report, &gone, Some(now()));
        let full = render(&report, &delta, &links(), now());
        assert_eq!(render_form(&report, &delta, &links(), now(), Form::FirstInFull(30)), full);
        assert!(!full.text.contains("more"), "{}", full.text);
        assert!(full.text.contains("the likely cause of u31"));
    }

    #[test]
    fn the_compact_form_keeps_every_message_and_says_how_many_more_of_each_list_and_where() {
        let (report, gone) = outage();
        let delta = Delta::against(&report, &gone, Some(now()));
        let email = render_form(&report, &delta, &links(), now(), Form::FirstInFull(2));
        let text = email.text.split_whitespace().collect::<Vec<_>>().join(" ");
        for f in &report.findings {
            assert!(text.contains(&f.message), "{}", f.message);
            assert!(email.html.contains(&f.message), "{}", f.message);
        }
        for key in &gone {
            assert!(text.contains(&key.message) && email.html.contains(&key.message), "{}", key.message);
        }
        // The first two of each category in full, the others by their message.
        assert!(text.contains("the likely cause of u00") && text.contains("the likely cause of u03"));
        assert!(!text.contains("the likely cause of u04"), "{text}");
        assert!(text.contains(
            "28 more network findings, message only. Each in full: `midwatch check --format json`, or midwatch's \
             MID Server Issue records on the instance: https://acme.service-now.com/ecc_agent_issue_list.do"
        ));
        assert!(!text.contains("more authentication"), "both authentication findings are in full");
        assert!(text.contains("4 more, without their links:"), "the resolved ones");
        assert_eq!(text.matches("… and 28 more: `midwatch check --format json` lists them all.").count(), 2);
        assert!(text.contains("… and 3 more: `midwatch check --format json` lists them all."), "not checked");
        assert!(email.html.contains("<code>midwatch check --format json</code>"));
        assert_eq!(email.subject, render(&report, &delta, &links(), now()).subject);
    }
}
