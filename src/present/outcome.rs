//! A cycle's outcome as `check` and `demo` print it: the report, what write-back, email and alerts did, and, after
//! `check --until-ok`, what the watch did. The parts come in present's own terms ([`OutcomeView`]), so the
//! renderings know nothing of the steps that produced them.

use std::time::Duration;

use super::{Detail, Format, json, text};
use crate::domain::{Report, WatchEnd, Watched};
use crate::writeback::WriteBack;

/// The parts of one cycle's outcome that its renderings show.
#[derive(Debug)]
pub struct OutcomeView<'a> {
    pub(crate) report: &'a Report,
    pub(crate) write_back: &'a WriteBack,
    /// The email's section of the text report; `None` when no email is configured or `--no-email` was given.
    pub(crate) email: Option<text::EmailSection>,
    /// The email's outcome as the JSON report's `email` member (`null` without email).
    pub(crate) email_json: serde_json::Value,
    /// The alerts' lines of the text report (what was posted, then any problem); `None` when none were posted.
    pub(crate) alerts: Option<Vec<String>>,
    /// The JSON report's `alerts` member, present only when alerts were posted.
    pub(crate) alerts_json: Option<serde_json::Value>,
    pub(crate) duration: Duration,
    /// `check --until-ok`: the rounds before this report.
    pub(crate) watch: Option<&'a Watched>,
    /// `check --show-email`: the text report shows the text of this cycle's email.
    pub(crate) show_email: bool,
}

impl OutcomeView<'_> {
    /// With `show`, the text report shows the text of this cycle's email (`check --show-email`).
    pub(crate) fn showing_email(self, show: bool) -> Self {
        OutcomeView { show_email: show, ..self }
    }

    /// The report in the requested format, with what the side effects did.
    pub fn render(&self, format: Format, detail: Detail) -> String {
        match format {
            Format::Text => {
                let mut out = text::render(self.report, detail, Some(self.duration));
                out.push_str(&text::write_back(self.write_back, detail));
                out.push_str(&text::email(self.email.as_ref(), self.show_email));
                out.push_str(&alerts_section(self.alerts.as_deref()));
                if let Some(watch) = self.watch {
                    out.push_str(&watch_section(watch));
                }
                out
            }
            Format::Json => json::render(self.report, &self.json_extra()),
        }
    }

    /// The JSON document of this cycle (`check --format json`), as a value.
    #[cfg(feature = "demo")]
    pub(crate) fn document(&self) -> serde_json::Value {
        json::document(self.report, &self.json_extra())
    }

    fn json_extra(&self) -> serde_json::Value {
        let mut extra = serde_json::json!({
            "write_back": self.write_back,
            "email": self.email_json,
            "duration_seconds": (self.duration.as_secs_f64() * 1000.0).round() / 1000.0,
        });
        // Only `check --until-ok` has rounds to tell, and only a cycle that posted alerts has alerts.
        if let (Some(watch), Some(fields)) = (self.watch, extra.as_object_mut()) {
            fields.insert("watch".into(), serde_json::json!(watch));
        }
        if let (Some(alerts), Some(fields)) = (&self.alerts_json, extra.as_object_mut()) {
            fields.insert("alerts".into(), alerts.clone());
        }
        extra
    }
}

/// The text report's section of the alerts posted to `[alertmanager]`.
fn alerts_section(lines: Option<&[String]>) -> String {
    let Some((first, rest)) = lines.and_then(<[String]>::split_first) else { return String::new() };
    let mut out = format!("\nAlertmanager: {}\n", crate::escape::clean(first));
    for line in rest {
        out.push_str(&format!("  {}\n", crate::escape::clean(line)));
    }
    out
}

/// The text report's section of a watch.
fn watch_section(watch: &Watched) -> String {
    let how = match watch.ended {
        WatchEnd::Clear => "every watched user is clear".to_string(),
        WatchEnd::TimedOut => "the --timeout passed with findings still open".to_string(),
        WatchEnd::Interrupted => "interrupted: nothing was written to ecc_agent_issue".to_string(),
    };
    format!(
        "\nWatch: {} round{} since {} UTC, every {}; {how}\n",
        watch.rounds,
        if watch.rounds == 1 { "" } else { "s" },
        watch.started.format("%H:%M:%S"),
        watch.every
    )
}
