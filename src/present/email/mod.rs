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

/// Renders the subject and both bodies.
pub fn render(report: &Report, delta: &Delta<'_>, links: &Links, now: DateTime<Utc>) -> RenderedEmail {
    let subject = subject(report, delta);
    let view = EmailView::of(report, delta, links, now);
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
