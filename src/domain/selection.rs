//! `check --user NAME` and `--mid-server NAME`: whom a check covers.
//!
//! A selection is asked for by name; `collect` resolves it against the instance (the MID Servers' users
//! join the named users) and says which names matched nothing. The write-back of a selected check touches
//! only the records of the users it covers (`writeback::records_of`). Names compare as the instance's
//! queries compare them, without regard to case: `--user MIDSERVER2` selects `midserver2`.

use std::collections::BTreeSet;

use super::UserKey;

/// The names given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--user`: `sys_user.user_name`, in any case (the instance compares names without regard to case).
    pub users: BTreeSet<String>,
    /// `--mid-server`: `ecc_agent.name`, in any case; stands for the users configured on it.
    pub mid_servers: BTreeSet<String>,
}

impl Selection {
    pub(crate) fn is_empty(&self) -> bool {
        self.users.is_empty() && self.mid_servers.is_empty()
    }

    /// How the report names the selection: `--user a --mid-server m`.
    pub(crate) fn describe(&self) -> String {
        let users = self.users.iter().map(|u| format!("--user {}", quoted(u)));
        let mids = self.mid_servers.iter().map(|m| format!("--mid-server {}", quoted(m)));
        users.chain(mids).collect::<Vec<_>>().join(" ")
    }
}

/// What a check covers: every user the built-in job checks, or a selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    All,
    Only(Selection),
}

impl Scope {
    /// `All` for an empty selection.
    pub fn of(selection: Selection) -> Scope {
        if selection.is_empty() { Scope::All } else { Scope::Only(selection) }
    }
}

/// A selection as the instance resolved it: the users it covers, and the names that matched nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResolvedSelection {
    pub(crate) requested: Selection,
    /// The `--user` names and the users configured on the `--mid-server`s.
    pub(crate) users: BTreeSet<String>,
    /// `--user` names with no `sys_user` row that holds `mid_server` or is configured on a MID Server.
    pub(crate) unknown_users: Vec<String>,
    /// `--mid-server` names with no `ecc_agent` row.
    pub(crate) unknown_mid_servers: Vec<String>,
    /// When a name is unknown: the names the instance knows, for "did you mean" (every user that holds
    /// `mid_server` or is configured on a MID Server, every MID Server).
    pub(crate) known: KnownNames,
}

/// The names a selection can use, as the instance spells them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KnownNames {
    pub(crate) users: BTreeSet<String>,
    pub(crate) mid_servers: BTreeSet<String>,
}

impl ResolvedSelection {
    /// Whether the selection covers the user with this key, however either spells it.
    pub(crate) fn covers(&self, user: &UserKey) -> bool {
        self.users.iter().any(|u| UserKey::of(u) == *user)
    }

    /// The usage error for names that matched nothing, if any, with the known names closest to each.
    pub(crate) fn unknown(&self) -> Option<String> {
        let mut problems = Vec::new();
        for u in &self.unknown_users {
            problems.push(match did_you_mean(u, &self.known.users, &self.requested.users) {
                Some(close) => format!(
                    "--user {}: no MID Server user of that name; did you mean {close}? (names are compared \
                     without regard to case, as the instance compares them)",
                    quoted(u)
                ),
                None => format!(
                    "--user {}: no MID Server user of that name (no sys_user with that user_name holds the \
                     mid_server role or is configured on a MID Server); names are compared as the instance \
                     compares them, without regard to case",
                    quoted(u)
                ),
            });
        }
        for m in &self.unknown_mid_servers {
            let close = did_you_mean(m, &self.known.mid_servers, &self.requested.mid_servers)
                .map(|c| format!("; did you mean {c}?"));
            problems.push(format!(
                "--mid-server {}: no MID Server of that name (ecc_agent.name, compared without regard to case){}",
                quoted(m),
                close.unwrap_or_default()
            ));
        }
        (!problems.is_empty()).then(|| problems.join("\n"))
    }
}

/// The known names closest to `name` (at most three), quoted: `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`; not one
/// already `given` (in any case): the one typed wrong is another.
fn did_you_mean(name: &str, known: &BTreeSet<String>, given: &BTreeSet<String>) -> Option<String> {
    let others = known.iter().filter(|k| !given.iter().any(|g| super::same_name(g, k))).map(String::as_str);
    let close: Vec<String> = crate::spelling::closest(name, others, 3).into_iter().map(quoted).collect();
    match close.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [first @ .., last] => Some(format!("{} or {last}", first.join(", "))),
    }
}

/// A name as a usage message shows it: quoted, its control characters escaped.
fn quoted(name: &str) -> String {
    format!("'{}'", crate::escape::clean(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_covers_its_users_in_any_case_and_says_so_of_a_name_it_does_not_know() {
        let sel = ResolvedSelection {
            users: BTreeSet::from(["MIDSERVER.CASE".to_string()]),
            unknown_users: vec!["nobody".to_string()],
            ..ResolvedSelection::default()
        };
        assert!(sel.covers(&UserKey::of("MidServer.Case")));
        assert!(!sel.covers(&UserKey::of("midserver.cases")));
        let text = sel.unknown().unwrap_or_default();
        assert!(text.contains("--user 'nobody': no MID Server user of that name"), "{text}");
        assert!(text.contains("without regard to case") && !text.contains("case included"), "{text}");
    }

    #[test]
    fn an_unknown_name_close_to_known_ones_gets_them_as_did_you_mean() {
        let known = KnownNames {
            users: ["midserver2", "midserver3", "mid.tokyo"].map(String::from).into(),
            mid_servers: ["mid-london-01"].map(String::from).into(),
        };
        let sel = ResolvedSelection {
            requested: Selection {
                users: ["midservr2", "nobody", "MIDSERVER3"].map(String::from).into(),
                ..Selection::default()
            },
            unknown_users: vec!["midservr2".to_string(), "nobody".to_string()],
            unknown_mid_servers: vec!["mid-londn-01".to_string()],
            known,
            ..ResolvedSelection::default()
        };
        let text = sel.unknown().unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "--user 'midservr2': no MID Server user of that name; did you mean 'midserver2'? (names are compared \
             without regard to case, as the instance compares them)"
        );
        assert!(lines[1].starts_with("--user 'nobody': no MID Server user of that name (no sys_user"), "{text}");
        assert!(lines[2].ends_with("compared without regard to case); did you mean 'mid-london-01'?"), "{text}");
    }
}
