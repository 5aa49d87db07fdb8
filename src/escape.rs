//! Untrusted text made safe to print: every value from the instance (user names, MID Server names, event
//! fields, error messages that quote them) and from the config goes through [`clean`] (or [`Shown`]) before
//! it reaches a terminal line, a log line or a mail body, so no value can forge a line.

use std::fmt::Write as _;

/// Control characters (CR, LF, TAB, ESC, …) made visible as escapes, so that no value can start a new line in
/// a report, a log line or a mail body, fake a MIME boundary, or move a terminal's cursor.
pub(crate) fn clean(s: &str) -> String {
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

/// A value for display: `Display` prints it [`clean`]ed. For log fields (`tracing::warn!(user = %Shown(u))`)
/// and `format!` arguments that carry instance data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown<'a>(pub &'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&clean(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(clean("a\r\nMIDWATCH OK - x\t\u{1b}[2J\u{2028}"), "a\\r\\nMIDWATCH OK - x\\t\\u{1b}[2J\\u{2028}");
        assert_eq!(Shown("x\ny").to_string(), "x\\ny");
        assert_eq!(clean("plain välue"), "plain välue");
    }
}
