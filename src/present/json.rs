//! The JSON report: a stable document for scripts (`--format json`).

use serde::Serialize;

use super::Report;

/// The version of the JSON document's shape; bumped only on incompatible changes.
pub(crate) const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a, E: Serialize> {
    schema_version: u32,
    midwatch_version: &'a str,
    status_line: String,
    exit_code: u8,
    #[serde(flatten)]
    report: &'a Report,
    #[serde(flatten)]
    extra: &'a E,
}

/// The report as a pretty-printed JSON document; `extra` adds top-level keys (write-back, email).
pub fn render<E: Serialize>(report: &Report, extra: &E) -> String {
    serde_json::to_string_pretty(&document(report, extra))
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot render the report: {e}\"}}"))
}

/// The report as a JSON value, as [`render`] prints it.
pub(crate) fn document<E: Serialize>(report: &Report, extra: &E) -> serde_json::Value {
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        midwatch_version: env!("CARGO_PKG_VERSION"),
        status_line: report.status_line(),
        exit_code: report.status.exit_code(),
        report,
        extra,
    };
    serde_json::to_value(&doc)
        .unwrap_or_else(|e| serde_json::json!({ "error": format!("cannot render the report: {e}") }))
}

/// The JSON document of a check that could not complete.
pub(crate) fn render_error(instance: Option<&str>, error: &str) -> String {
    let doc = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "midwatch_version": env!("CARGO_PKG_VERSION"),
        "status": "UNKNOWN",
        "exit_code": 3,
        "instance": instance,
        "status_line": format!("MIDWATCH UNKNOWN - {}", first_line(error)),
        "error": error,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
