//! The issue messages, in the two styles `messages = "documented" | "instance"`.
//!
//! The message is the key the built-in job (and midwatch) de-duplicates `ecc_agent_issue` on,
//! so these strings are part of the contract (docs/servicenow.md §1 item 6).

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
}
