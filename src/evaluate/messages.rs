//! The issue messages, in the two styles `messages = "documented" | "instance"`.
//!
//! The message is the key the built-in job (and midwatch) de-duplicates `ecc_agent_issue` on,
//! so these strings are part of the contract (docs/servicenow.md §1 item 6).

use std::collections::BTreeSet;

use crate::domain::{LoginEventKind, MessageStyle};

/// The message for user `user` whose last login event in the window was `last` (None: no attempt),
/// configured on `down` down MID Servers.
pub(crate) fn issue_message(style: MessageStyle, user: &str, last: Option<LoginEventKind>, down: usize) -> String {
    let doc = style == MessageStyle::Documented;
    // The built-in job separates the two sentences with two spaces; the documentation renders one.
    let gap = if doc { " " } else { "  " };
    let mids = match down {
        1 => "1 down MID Server".to_string(),
        n => format!("{n} down MID Servers"),
    };
    let plural = if down == 1 { "" } else { "s" };
    match (last, down) {
        (Some(LoginEventKind::Failed), 0) => {
            format!(
                "Login authentication failure for User {user} with mid_server role not associated with a MID Server."
            )
        }
        (Some(LoginEventKind::Failed), _) => format!(
            "Login authentication failure for User {user} associated with {mids}.{gap}Check password on MID server{plural}."
        ),
        (Some(LoginEventKind::AuthorizationFailed), 0) => {
            format!(
                "Login authorization failure for User {user} with mid_server role not associated with a MID Server."
            )
        }
        (Some(LoginEventKind::AuthorizationFailed), _) => format!(
            "Login authorization failure for User {user} associated with {mids}.{gap}Re-assign mid_server role to grant all required roles."
        ),
        (Some(LoginEventKind::Succeeded), _) => {
            let but = if doc { "but not associated" } else { "but is not associated" };
            format!(
                "User {user} with mid_server role successfully connected {but} with a MID Server.{gap}The mid_server role should be reserved for MID Server use only."
            )
        }
        (None, 0) => {
            let is = if doc { "is not associated" } else { "not associated" };
            format!(
                "User {user} with mid_server role {is} with a MID Server.{gap}No login attempts within reporting period."
            )
        }
        (None, _) => {
            let is = if doc { "is associated" } else { "associated" };
            format!("User {user} {is} with {mids}.{gap}No login attempts within reporting period.")
        }
    }
}

/// The documentation's message for a user whose connectivity the instance cannot detect.
pub(crate) fn undetectable_message(user: &str) -> String {
    format!("Connectivity of MID Server user {user} cannot be detected by the instance")
}

/// The user an `ecc_agent_issue` message is about: the one name that fits one of the messages above, in
/// either style, with any number of down MID Servers, as the message spells it. The words around the name
/// match without regard to case, as write-back compares messages (`writeback::reconcile`). `None` for a
/// message the rules do not produce, and for one that two different names would fit (a user name that itself
/// contains a message's words): such a record is nobody's in particular, and a selected check leaves it alone.
pub(crate) fn user_of(message: &str) -> Option<String> {
    // The templates' words are ASCII: lower-casing ASCII keeps every byte where it was, so a name found in
    // the lower-cased message is sliced from the message itself.
    let lowered = message.to_ascii_lowercase();
    let mut names = BTreeSet::new();
    for t in TEMPLATES.iter() {
        if let Some(name) = t.user_in(&lowered).and_then(|at| message.get(at)) {
            names.insert(name.to_string());
        }
    }
    let mut names = names.into_iter();
    match (names.next(), names.next()) {
        (Some(name), None) => Some(name),
        _ => None,
    }
}

/// Stands for the user name in a message template.
const USER: &str = "\u{0}";
/// Stands for the number of down MID Servers (2 or more).
const COUNT: &str = "\u{1}";

/// A message with the user name (and the number of down MID Servers) left open.
struct Template {
    prefix: String,
    /// What follows the name; `COUNT` at most once, for the digits of the number.
    suffix: String,
}

impl Template {
    /// Where the name is in `message` (lower-cased ASCII, as the template is) if it is this template's message.
    fn user_in(&self, message: &str) -> Option<std::ops::Range<usize>> {
        let rest = message.strip_prefix(self.prefix.as_str())?;
        let name = match self.suffix.split_once(COUNT) {
            None => rest.strip_suffix(self.suffix.as_str())?,
            Some((before, after)) => {
                let rest = rest.strip_suffix(after)?;
                let digits = rest.trim_end_matches(|c: char| c.is_ascii_digit());
                if digits.len() == rest.len() {
                    return None;
                }
                digits.strip_suffix(before)?
            }
        };
        (!name.is_empty()).then_some(self.prefix.len()..self.prefix.len() + name.len())
    }
}

/// Every message shape the rules produce, built once from the functions above so that they cannot drift apart.
static TEMPLATES: std::sync::LazyLock<Vec<Template>> = std::sync::LazyLock::new(templates);

fn templates() -> Vec<Template> {
    let mut shapes = vec![undetectable_message(USER)];
    for style in [MessageStyle::Documented, MessageStyle::Instance] {
        for last in [
            None,
            Some(LoginEventKind::Failed),
            Some(LoginEventKind::AuthorizationFailed),
            Some(LoginEventKind::Succeeded),
        ] {
            shapes.push(issue_message(style, USER, last, 0));
            shapes.push(issue_message(style, USER, last, 1));
            // The plural sentence, its number left open ("2 down MID Servers" → "\u{1} down MID Servers").
            shapes.push(issue_message(style, USER, last, 2).replacen(" 2 down ", &format!(" {COUNT} down "), 1));
        }
    }
    shapes.sort();
    shapes.dedup();
    shapes
        .iter()
        .filter_map(|s| {
            s.split_once(USER)
                .map(|(p, rest)| Template { prefix: p.to_ascii_lowercase(), suffix: rest.to_ascii_lowercase() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use LoginEventKind::*;
    use MessageStyle::*;

    #[test]
    fn documented_messages_match_product_table() {
        let cases: [(Option<LoginEventKind>, usize, &str); 12] = [
            (
                Some(Failed),
                1,
                "Login authentication failure for User u associated with 1 down MID Server. Check password on MID server.",
            ),
            (
                Some(Failed),
                2,
                "Login authentication failure for User u associated with 2 down MID Servers. Check password on MID servers.",
            ),
            (
                Some(Failed),
                0,
                "Login authentication failure for User u with mid_server role not associated with a MID Server.",
            ),
            (
                Some(AuthorizationFailed),
                1,
                "Login authorization failure for User u associated with 1 down MID Server. Re-assign mid_server role to grant all required roles.",
            ),
            (
                Some(AuthorizationFailed),
                3,
                "Login authorization failure for User u associated with 3 down MID Servers. Re-assign mid_server role to grant all required roles.",
            ),
            (
                Some(AuthorizationFailed),
                0,
                "Login authorization failure for User u with mid_server role not associated with a MID Server.",
            ),
            (None, 1, "User u is associated with 1 down MID Server. No login attempts within reporting period."),
            (None, 2, "User u is associated with 2 down MID Servers. No login attempts within reporting period."),
            (
                None,
                0,
                "User u with mid_server role is not associated with a MID Server. No login attempts within reporting period.",
            ),
            (
                Some(Succeeded),
                0,
                "User u with mid_server role successfully connected but not associated with a MID Server. The mid_server role should be reserved for MID Server use only.",
            ),
            (
                Some(Failed),
                10,
                "Login authentication failure for User u associated with 10 down MID Servers. Check password on MID servers.",
            ),
            (None, 10, "User u is associated with 10 down MID Servers. No login attempts within reporting period."),
        ];
        for (last, n, want) in cases {
            assert_eq!(issue_message(Documented, "u", last, n), want, "{last:?} n={n}");
        }
    }

    #[test]
    fn instance_messages_match_builtin_job_byte_for_byte() {
        let cases: [(Option<LoginEventKind>, usize, &str); 10] = [
            (
                Some(Failed),
                0,
                "Login authentication failure for User u with mid_server role not associated with a MID Server.",
            ),
            (
                Some(Failed),
                1,
                "Login authentication failure for User u associated with 1 down MID Server.  Check password on MID server.",
            ),
            (
                Some(Failed),
                2,
                "Login authentication failure for User u associated with 2 down MID Servers.  Check password on MID servers.",
            ),
            (
                Some(Succeeded),
                0,
                "User u with mid_server role successfully connected but is not associated with a MID Server.  The mid_server role should be reserved for MID Server use only.",
            ),
            (
                Some(AuthorizationFailed),
                0,
                "Login authorization failure for User u with mid_server role not associated with a MID Server.",
            ),
            (
                Some(AuthorizationFailed),
                1,
                "Login authorization failure for User u associated with 1 down MID Server.  Re-assign mid_server role to grant all required roles.",
            ),
            (
                Some(AuthorizationFailed),
                2,
                "Login authorization failure for User u associated with 2 down MID Servers.  Re-assign mid_server role to grant all required roles.",
            ),
            (
                None,
                0,
                "User u with mid_server role not associated with a MID Server.  No login attempts within reporting period.",
            ),
            (None, 1, "User u associated with 1 down MID Server.  No login attempts within reporting period."),
            (None, 2, "User u associated with 2 down MID Servers.  No login attempts within reporting period."),
        ];
        for (last, n, want) in cases {
            assert_eq!(issue_message(Instance, "u", last, n), want, "{last:?} n={n}");
        }
    }

    #[test]
    fn a_message_is_attributed_to_the_one_user_it_names() {
        for style in [Documented, Instance] {
            for last in [None, Some(Failed), Some(AuthorizationFailed), Some(Succeeded)] {
                for n in [0, 1, 2, 7, 12] {
                    for user in ["midserver2", "mid.paris", "a b", "12", "x associated"] {
                        let m = issue_message(style, user, last, n);
                        assert_eq!(user_of(&m).as_deref(), Some(user), "{m}");
                    }
                }
            }
        }
        assert_eq!(user_of(&undetectable_message("mid.tokyo")).as_deref(), Some("mid.tokyo"));
    }

    #[test]
    fn a_message_in_another_case_is_attributed_to_the_name_it_spells() {
        let m = issue_message(Instance, "MidServer.Case", Some(Failed), 2);
        assert_eq!(user_of(&m).as_deref(), Some("MidServer.Case"));
        assert_eq!(user_of(&m.to_uppercase()).as_deref(), Some("MIDSERVER.CASE"));
        let m = issue_message(Documented, "jürgen.müller", None, 0).to_lowercase();
        assert_eq!(user_of(&m).as_deref(), Some("jürgen.müller"));
    }

    #[test]
    fn a_message_no_rule_produces_is_nobodys() {
        assert_eq!(user_of("MID Server down"), None);
        assert_eq!(
            user_of("User  is associated with 1 down MID Server. No login attempts within reporting period."),
            None
        );
        // The same words under another source's wording, or with the number missing, are nobody's.
        assert_eq!(
            user_of("User bob is associated with 1 down MID Server  No login attempts within reporting period."),
            None
        );
        assert_eq!(
            user_of("User bob is associated with  down MID Servers. No login attempts within reporting period."),
            None
        );
    }
}
