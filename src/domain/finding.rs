//! What `evaluate` concludes: findings, their categories and evidence, the early warnings and observations, the
//! summary and the plugin status.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{LoginEventKind, SkippedUser, Window};

/// Which text the messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStyle {
    /// The product documentation's wording (one space, "is associated", "but not associated").
    #[default]
    Documented,
    /// The built-in job's stored strings, byte for byte (two spaces after the first sentence).
    Instance,
}

/// The four kinds of problem, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Authentication,
    Authorization,
    Network,
    Configuration,
}

impl Category {
    pub(crate) const ALL: [Category; 4] =
        [Self::Authentication, Self::Authorization, Self::Network, Self::Configuration];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Authorization => "authorization",
            Self::Network => "network",
            Self::Configuration => "configuration",
        }
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            Self::Authentication => "Authentication",
            Self::Authorization => "Authorization",
            Self::Network => "Network",
            Self::Configuration => "Configuration",
        }
    }

    /// What an administrator should do about a finding of this category.
    pub(crate) fn remediation(self) -> &'static str {
        match self {
            Self::Authentication => {
                "Check the password of the MID Server user: set the same password in the MID Server's config.xml \
                 (mid.instance.password) and on the user record, make sure the account is active and not locked out, \
                 then restart the MID Server."
            }
            Self::Authorization => {
                "Re-assign the mid_server role (remove it from the user and add it again) so that the user is granted \
                 every role mid_server contains; the missing roles are listed with each finding."
            }
            Self::Network => {
                "Check that the MID Server service is running and that its host can reach the instance (proxy, \
                 firewall, DNS, TLS inspection); the MID Server's agent log (agent0.log.0) shows the connection errors."
            }
            Self::Configuration => {
                "Reserve the mid_server role for MID Server users: remove the role from users that no MID Server is \
                 configured with, or configure the user on its MID Server (mid.instance.username in config.xml)."
            }
        }
    }
}

/// What the deciding evidence says, one value per condition of the built-in job (docs/servicenow.md §1 item 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    LoginFailedOnDownMid,
    AuthorizationFailedOnDownMid,
    NoLoginOnDownMid,
    /// A network finding whose user lacks `soap_script`: the instance cannot record its failures.
    ConnectivityUndetectable,
    LoginFailedUnassociated,
    AuthorizationFailedUnassociated,
    NoLoginUnassociated,
    LoginSucceededUnassociated,
}

impl Condition {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::LoginFailedOnDownMid => "users of down MID Servers whose last login failed authentication",
            Self::AuthorizationFailedOnDownMid => "users of down MID Servers whose last login failed authorization",
            Self::NoLoginOnDownMid => "users of down MID Servers with no login attempt",
            Self::ConnectivityUndetectable => {
                "users of down MID Servers with no login attempt whose connectivity the instance cannot detect"
            }
            Self::LoginFailedUnassociated => "unassociated role users whose last login failed authentication",
            Self::AuthorizationFailedUnassociated => "unassociated role users whose last login failed authorization",
            Self::NoLoginUnassociated => "unassociated role users with no login attempt",
            Self::LoginSucceededUnassociated => "unassociated role users that logged in successfully",
        }
    }
}

/// A MID Server named in a finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MidRef {
    pub sys_id: String,
    pub name: String,
    /// When the MID Server went silent (its `last_refreshed`), when known.
    #[serde(with = "crate::domain::sn_time::option")]
    pub down_since: Option<DateTime<Utc>>,
}

/// Roles a user lacks, from the two sources the instance offers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MissingRoles {
    /// `parm2` of the deciding `login.authorization.failed` event.
    pub from_event: Vec<String>,
    /// Roles `mid_server` contains (and `mid_server` itself) that the user does not hold.
    pub from_role_containment: Vec<String>,
}

/// The state of the user's `sys_user` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    Active,
    Inactive,
    LockedOut,
    InactiveAndLockedOut,
    /// No `sys_user` row has this user name: a MID Server configured with it can never log in, and the
    /// instance records no `login.failed` for an unknown user.
    NotFound,
}

/// The event that decided a finding, and what Identity Center adds to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub event: Option<EventEvidence>,
    pub login_history: Option<LoginHistoryEvidence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventEvidence {
    pub sys_id: String,
    pub name: LoginEventKind,
    #[serde(with = "crate::domain::sn_time")]
    pub at: DateTime<Utc>,
    /// The source IP (`parm2` of `login` and `login.failed`), when it is one.
    pub ip: Option<String>,
    /// The MID Server whose `ip_address` or `host_name` that source is, when exactly one is.
    pub source_mid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginHistoryEvidence {
    pub(crate) status: String,
    pub failure_reason: String,
    pub(crate) ip_address: String,
    #[serde(with = "crate::domain::sn_time")]
    pub(crate) at: DateTime<Utc>,
}

/// One problem of one MID Server user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub category: Category,
    pub condition: Condition,
    pub user: String,
    /// The `ecc_agent_issue.message`, in the configured style.
    pub message: String,
    pub down_mid_servers: Vec<MidRef>,
    pub missing_roles: MissingRoles,
    pub account: AccountState,
    /// The account's `last_login_time`, where readable.
    #[serde(with = "crate::domain::sn_time::option")]
    pub last_login_time: Option<DateTime<Utc>>,
    /// The account's `failed_attempts` (the lockout counter), where the column exists and is readable.
    pub failed_attempts: Option<u32>,
    /// The user's events in the window by name (`login*` and SSO), as counted: evidence, never a decision.
    pub activity: Vec<super::EventActivity>,
    /// The most likely cause, when the data points at one beyond the documented message.
    pub likely_cause: Option<String>,
    pub evidence: Evidence,
    /// The domain written to `ecc_agent_issue.sys_domain`.
    pub sys_domain: String,
    /// Since when midwatch has seen it, from its own `ecc_agent_issue` records; `None` when they could not be
    /// read. Filled in after evaluation (the rules never look at it).
    #[serde(flatten)]
    pub history: Option<FindingHistory>,
}

/// Since when a finding has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FindingHistory {
    /// When midwatch's source first recorded it (its open record's `sys_created_on`); now for a new finding.
    #[serde(with = "crate::domain::sn_time")]
    pub first_detected: DateTime<Utc>,
    /// How many checks have detected it (each cycle of `run` and each manual `check`), this one included
    /// (the open record's `count` + 1).
    pub times_detected: u64,
    /// For a new finding: when midwatch's source last resolved the same message, if it did (it is back).
    #[serde(with = "crate::domain::sn_time::option", skip_serializing_if = "Option::is_none")]
    pub resolved_before: Option<DateTime<Utc>>,
}

/// The three sections of the MID Server ID map (docs/servicenow.md §1 item 7).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct IdMap {
    pub unassociated_users: Vec<String>,
    pub(crate) users_on_down_mid_servers: BTreeMap<String, Vec<String>>,
    pub down_mid_servers: BTreeMap<String, String>,
}

/// Counts by condition, without names (the built-in job's summary debug level, plus findings).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    pub role_users: usize,
    pub down_mid_servers: usize,
    pub users_on_down_mid_servers: usize,
    pub configured_mid_users: usize,
    pub unassociated_role_users: usize,
    pub last_attempt_failed_authentication: usize,
    pub last_attempt_failed_authorization: usize,
    pub last_attempt_succeeded: usize,
    pub no_attempt: usize,
    pub connectivity_undetectable: usize,
    /// Early warnings and observations (beyond the built-in job).
    pub warnings: usize,
    pub observations: usize,
    pub findings: usize,
    pub findings_by_category: BTreeMap<Category, usize>,
    pub findings_by_condition: BTreeMap<Condition, usize>,
}

/// The plugin status (Nagios/Icinga convention): OK, WARNING, CRITICAL, UNKNOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Critical => 2,
            Self::Unknown => 3,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// What `evaluate` concludes from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub instance: String,
    pub window: Window,
    pub messages: MessageStyle,
    pub status: Status,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    /// Early warnings about the users of Up MID Servers: at least WARNING, never written to `ecc_agent_issue`.
    pub warnings: Vec<Warning>,
    /// What explains a missing finding or a configuration detail; no change of status.
    pub observations: Vec<Observation>,
    /// Present only when at least one MID Server is down.
    pub id_map: Option<IdMap>,
    pub skipped_users: Vec<SkippedUser>,
    /// Every down MID Server, with when it went silent and whether it was judged this cycle.
    pub down_mid_servers: Vec<DownMidServer>,
    /// Things the reader should know about how complete the check was.
    pub notes: Vec<String>,
    /// The `sys_user` sys_id of each user the snapshot holds, by user name: links go by sys_id, never by name.
    #[serde(skip)]
    pub user_ids: BTreeMap<String, String>,
    /// A selected check's users (`--user`, and those of `--mid-server`); `None` for a check of everyone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_users: Option<Vec<String>>,
    /// The side effects that did not complete (`email not sent`), named in the status line: a monitoring system
    /// shows only that line. Empty until the cycle's side effects have run.
    #[serde(skip)]
    pub unfinished: Vec<String>,
}

/// The first few names of a list, then how many more: `a, b, c and 4 more`.
fn some_of(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let shown = names.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    match names.len().saturating_sub(SHOWN) {
        // A selected MID Server no user is configured on.
        0 if names.is_empty() => "no user".to_string(),
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// A MID Server whose `status` is `Down`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownMidServer {
    pub(crate) sys_id: String,
    pub(crate) name: String,
    /// Its `last_refreshed`: the last heartbeat it answered.
    #[serde(with = "crate::domain::sn_time::option")]
    pub(crate) down_since: Option<DateTime<Utc>>,
    /// `false` when it has been down for less than `[check] down_for`: it may be restarting or upgrading, so
    /// its users are not judged this cycle (they are on a later one).
    pub(crate) judged: bool,
    /// The users configured on it.
    pub(crate) users: Vec<String>,
}

impl Report {
    /// The one-line plugin status, e.g. `MIDWATCH CRITICAL - 3 findings (2 authentication, 1 network) on acme
    /// | findings=3 down_mid_servers=2 authentication=2 authorization=0 network=1 configuration=0`.
    pub fn status_line(&self) -> String {
        let n = self.findings.len();
        let what = if n == 0 {
            "no findings".to_string()
        } else {
            let by: Vec<String> =
                self.summary.findings_by_category.iter().map(|(c, k)| format!("{k} {}", c.name())).collect();
            format!("{n} finding{} ({})", if n == 1 { "" } else { "s" }, by.join(", "))
        };
        let warned = match self.warnings.len() {
            0 => String::new(),
            k => format!(", {k} warning{}", if k == 1 { "" } else { "s" }),
        };
        let skipped = match self.skipped_users.len() {
            0 => String::new(),
            k => format!(", {k} user{} not checked", if k == 1 { "" } else { "s" }),
        };
        let of = self.selected_users.as_deref().map(|users| format!(" for {}", some_of(users))).unwrap_or_default();
        let unfinished: String = self.unfinished.iter().map(|u| format!("; {u}")).collect();
        format!(
            "MIDWATCH {} - {what}{warned}{skipped}{of} on {}{unfinished} | {}",
            self.status.label(),
            self.instance,
            self.perfdata()
        )
    }

    /// Whether `user` (in any case) has a finding or an early warning: not clear.
    pub(crate) fn flags(&self, user: &str) -> bool {
        self.findings.iter().any(|f| super::same_name(&f.user, user))
            || self.warnings.iter().any(|w| super::same_name(w.user(), user))
    }

    /// The performance data (monitoring-plugins format, `label=value`, space-separated): the findings, the
    /// down MID Servers, the findings of every category and the early warnings, zero included, so that a graph
    /// has every series.
    pub(crate) fn perfdata(&self) -> String {
        let mut items = vec![("findings", self.findings.len()), ("down_mid_servers", self.summary.down_mid_servers)];
        for c in Category::ALL {
            items.push((c.name(), self.summary.findings_by_category.get(&c).copied().unwrap_or(0)));
        }
        items.push(("warnings", self.warnings.len()));
        let items: Vec<String> = items.into_iter().map(|(label, n)| format!("{label}={n}")).collect();
        items.join(" ")
    }
}

// Beyond the built-in job, before the outage: warnings about the users of Up MID Servers, and observations
// that explain what a finding does not. Neither changes a documented finding or is written to `ecc_agent_issue`;
// each serializes with its `kind` first and a `text` that says it in one sentence.

/// Something about to break: the status is at least WARNING.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// A user configured only on Up MID Servers whose latest login event in the window is a failure.
    FailingOnUpMid {
        user: String,
        /// Its Up MID Servers, by name.
        mid_servers: Vec<String>,
        /// `login.failed` and `login.authorization.failed` events in the window, as counted.
        failures: u64,
        #[serde(with = "crate::domain::sn_time")]
        last_failure: DateTime<Utc>,
        /// `parm2` of the latest failure, when it is an address.
        source_ip: Option<String>,
        /// The MID Server whose `ip_address` or `host_name` is that address, when exactly one is.
        source_mid: Option<String>,
        /// `sys_user.failed_attempts`, where readable.
        failed_attempts: Option<u32>,
        text: String,
    },
    /// A user configured on Up MID Servers whose account is locked out or inactive.
    LockedOutOnUpMid { user: String, mid_servers: Vec<String>, locked_out: bool, active: bool, text: String },
}

impl Warning {
    /// `failing_on_up_mid` or `locked_out_on_up_mid`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::FailingOnUpMid { .. } => "failing_on_up_mid",
            Self::LockedOutOnUpMid { .. } => "locked_out_on_up_mid",
        }
    }

    pub(crate) fn user(&self) -> &str {
        match self {
            Self::FailingOnUpMid { user, .. } | Self::LockedOutOnUpMid { user, .. } => user,
        }
    }

    /// The sentence every rendering shows.
    pub(crate) fn text(&self) -> &str {
        match self {
            Self::FailingOnUpMid { text, .. } | Self::LockedOutOnUpMid { text, .. } => text,
        }
    }

    /// What identifies the warning between two emails (new, gone): `failing_on_up_mid: mid.paris`.
    pub(crate) fn key(&self) -> String {
        format!("{}: {}", self.kind(), self.user())
    }

    /// The report's warnings' keys, sorted and without duplicates.
    pub(crate) fn keys_of(warnings: &[Warning]) -> Vec<String> {
        let mut keys: Vec<String> = warnings.iter().map(Warning::key).collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// Something the reader should know that changes no status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// A Down MID Server all of whose users logged in successfully in the window: not a user problem.
    DownNotUser {
        mid_server: String,
        users: Vec<String>,
        /// The latest of those successful logins.
        #[serde(with = "crate::domain::sn_time")]
        last_login: DateTime<Utc>,
        text: String,
    },
    /// A MID Server logged in as one user (`ecc_agent.user_name`) but configured with another.
    UserMismatch { mid_server: String, logged_in_user: String, configured_user: String, text: String },
    /// A configured user name that matches its user record only when case is ignored.
    UserNameCase { mid_server: String, configured_user: String, user: String, text: String },
}

impl Observation {
    /// The sentence every rendering shows.
    pub(crate) fn text(&self) -> &str {
        match self {
            Self::DownNotUser { text, .. } | Self::UserMismatch { text, .. } | Self::UserNameCase { text, .. } => text,
        }
    }
}

/// A finding as remembered between emails: what identifies it in `ecc_agent_issue` (the message) and how the
/// email groups it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FindingKey {
    pub user: String,
    pub category: Category,
    pub message: String,
}

impl FindingKey {
    /// The report's findings, sorted and without duplicates.
    pub fn of_report(report: &Report) -> Vec<FindingKey> {
        let mut v: Vec<FindingKey> = report
            .findings
            .iter()
            .map(|f| FindingKey { user: f.user.clone(), category: f.category, message: f.message.clone() })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::some_of;

    #[test]
    fn a_selection_is_named_by_its_first_users_then_how_many_more() {
        let names = |n: usize| (1..=n).map(|i| format!("u{i}")).collect::<Vec<_>>();
        assert_eq!(some_of(&names(0)), "no user");
        assert_eq!(some_of(&names(1)), "u1");
        assert_eq!(some_of(&names(3)), "u1, u2, u3");
        assert_eq!(some_of(&names(5)), "u1, u2, u3 and 2 more");
    }
}
