//! Plain typed records of the instance, as `collect` hands them to `evaluate`.
//!
//! Nothing here knows HTTP or JSON: the Table API client decodes the instance's value shapes once,
//! and the rules only ever see these types.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The sampling period of one cycle. Events count when `start < sys_created_on <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Exclusive lower bound: `end - length - margin`.
    #[serde(with = "crate::domain::sn_time")]
    pub(crate) start: DateTime<Utc>,
    /// Inclusive upper bound: "now" by the instance's clock (the `Date` header of the answers to the cycle's
    /// first reads; `cycle/clock.rs`). Fixed for the whole read, so rows that arrive while `sysevent` is being
    /// paged cannot shift the pages.
    #[serde(with = "crate::domain::sn_time")]
    pub end: DateTime<Utc>,
    /// The configured length, without the margin.
    #[serde(serialize_with = "serialize_duration")]
    pub(crate) length: std::time::Duration,
}

/// The built-in job's allowance for scheduling delay (docs/servicenow.md §1 item 1).
pub(crate) const WINDOW_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The shortest window accepted: the MID Server heartbeat interval.
pub(crate) const MIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(5 * 60);

impl Window {
    /// The part of this window after `start` (exclusive), as its own window: what a later round of a watch
    /// reads. The length stays the configured one.
    pub(crate) fn since(&self, start: DateTime<Utc>) -> Window {
        Window { start: start.max(self.start), end: self.end, length: self.length }
    }

    /// The window of `length` ending at `end`, widened by the built-in job's one-minute margin.
    pub fn ending_at(end: DateTime<Utc>, length: std::time::Duration) -> Window {
        let span = chrono::Duration::from_std(length + WINDOW_MARGIN).unwrap_or(chrono::Duration::MAX);
        let start = end.checked_sub_signed(span).unwrap_or(DateTime::<Utc>::MIN_UTC);
        Window { start, end, length }
    }

    pub(crate) fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start < at && at <= self.end
    }
}

fn serialize_duration<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// The stored `ecc_agent.status` of a MID Server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MidServerStatus {
    Up,
    /// The only status the built-in job acts on.
    Down,
    /// Paused, Upgrading, Upgrade Failed, Draining, …: kept verbatim, never judged as down.
    Other(String),
}

impl MidServerStatus {
    /// The built-in job compares with the stored string `Down` exactly (case-sensitively), so `down` or
    /// `DOWN` is not down.
    pub(crate) fn parse(stored: &str) -> MidServerStatus {
        match stored {
            "Up" => Self::Up,
            "Down" => Self::Down,
            other => Self::Other(other.to_string()),
        }
    }
}

impl From<&str> for MidServerStatus {
    fn from(stored: &str) -> MidServerStatus {
        MidServerStatus::parse(stored)
    }
}

/// A row of `ecc_agent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MidServer {
    pub(crate) sys_id: SysId,
    pub(crate) name: String,
    pub(crate) status: MidServerStatus,
    /// `last_refreshed`: the last heartbeat the MID Server answered (heartbeats run every 5 minutes), so for a
    /// down MID Server the time it went silent. `None` when the instance did not give it.
    pub(crate) last_refreshed: Option<DateTime<Utc>>,
    /// `ip_address` and `host_name`: where its logins come from (empty when not given).
    pub(crate) ip_address: String,
    pub(crate) host_name: String,
    /// `user_name`: the user it logged in as (the MID Server dashboard's "logged-in user"), when given.
    pub(crate) logged_in_user: Option<UserName>,
}

impl MidServer {
    pub(crate) fn is_down(&self) -> bool {
        self.status == MidServerStatus::Down
    }

    pub(crate) fn is_up(&self) -> bool {
        self.status == MidServerStatus::Up
    }

    /// Whether a login from `source` (an event's `parm2`) came from this MID Server: its `ip_address`, or its
    /// `host_name` compared without regard to case.
    pub(crate) fn is_source(&self, source: &str) -> bool {
        let source = source.trim();
        !source.is_empty() && (self.ip_address.trim() == source || same_name(self.host_name.trim(), source))
    }
}

/// The stored `ecc_agent_issue.state`. Read case-insensitively once, here; every other place compares the
/// enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IssueState {
    New,
    Acknowledged,
    Resolved,
    /// A state this version does not know, kept verbatim; treated as open, like New and Acknowledged.
    Other(String),
}

impl IssueState {
    pub(crate) fn parse(stored: &str) -> IssueState {
        let s = stored.trim();
        if s.eq_ignore_ascii_case("new") {
            Self::New
        } else if s.eq_ignore_ascii_case("acknowledged") {
            Self::Acknowledged
        } else if s.eq_ignore_ascii_case("resolved") {
            Self::Resolved
        } else {
            Self::Other(s.to_string())
        }
    }

    /// The stored value midwatch writes or queries with.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::New => "new",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
            Self::Other(s) => s,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        *self != Self::Resolved
    }
}

impl Serialize for IssueState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A sys_id: the 32 lowercase hexadecimal digits that key a record. Made only by [`SysId::parse`], where it
/// enters from an answer, so one that reaches a query or a URL path is always safe there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub(crate) struct SysId(String);

impl SysId {
    /// The sys_id, when `s` is exactly 32 lowercase hexadecimal digits.
    pub(crate) fn parse(s: &str) -> Option<SysId> {
        (s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| SysId(s.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Any text as a sys_id, for the unit tests' short readable ids.
    #[cfg(test)]
    pub(crate) fn unchecked(s: &str) -> SysId {
        SysId(s.to_string())
    }
}

/// The unit tests' short readable ids.
#[cfg(test)]
impl From<&str> for SysId {
    fn from(s: &str) -> SysId {
        SysId::unchecked(s)
    }
}

impl std::borrow::Borrow<str> for SysId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SysId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SysId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `sys_user.user_name` (or an event's `parm1`, or a configured `mid.instance.username`), as spelled where it
/// was read. Any text: it reaches a query only as a [`crate::snow::query::QueryValue`] or a safe prefix. Two
/// spellings of one user compare equal only through [`UserKey`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub(crate) struct UserName(String);

impl UserName {
    pub(crate) fn new(name: impl Into<String>) -> UserName {
        UserName(name.into())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for UserName {
    fn from(name: &str) -> UserName {
        UserName::new(name)
    }
}

impl From<String> for UserName {
    fn from(name: String) -> UserName {
        UserName(name)
    }
}

impl std::borrow::Borrow<str> for UserName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for UserName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for UserName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UserName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user name as the instance compares it: each character lower-cased. "GlideRecord queries are
/// case-insensitive" (docs/servicenow.md §3), so `parm1=midserver2` selects the events of `MidServer2` and
/// `user_name=MidServer2` the record `midserver2`; and the MID Server dashboard compares the configured and the
/// logged-in user lower-cased. So every index of users by name is keyed by this: one user is one key, whatever
/// the spelling of its record, its MID Servers' configuration and its events.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct UserKey(String);

impl UserKey {
    pub(crate) fn of(name: &str) -> UserKey {
        UserKey(name.chars().flat_map(char::to_lowercase).collect())
    }

    /// The name lower-cased: a spelling of the user that the instance's queries match as any other.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether two names are equal as the instance compares them, without regard to case: two user names with the
/// same [`UserKey`], or two MID Server names. Byte by byte while both are ASCII (most names differ in their first
/// bytes), by characters from the first non-ASCII byte on.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if let (Some(x), Some(y)) = (a.as_bytes().first(), b.as_bytes().first())
        && x.is_ascii()
        && y.is_ascii()
        && !x.eq_ignore_ascii_case(y)
    {
        return false;
    }
    for (x, y) in a.bytes().zip(b.bytes()) {
        if !(x.is_ascii() && y.is_ascii()) {
            return UserKey::of(a) == UserKey::of(b);
        }
        if !x.eq_ignore_ascii_case(&y) {
            return false;
        }
    }
    // One is the other, or an ASCII prefix of it: what is left of the longer folds to something.
    a.len() == b.len()
}

/// A `mid.instance.username` row of `ecc_agent_config`: the user a MID Server is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MidUserConfig {
    /// The `ecc_agent` reference; `None` when empty or not a sys_id.
    pub(crate) mid_server: Option<SysId>,
    pub(crate) user_name: UserName,
    pub(crate) sys_domain: Option<String>,
}

/// A row of `sys_user`, with the roles we read for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserAccount {
    pub(crate) sys_id: SysId,
    pub(crate) user_name: UserName,
    pub(crate) active: bool,
    pub(crate) locked_out: bool,
    pub(crate) sys_domain: Option<String>,
    /// `last_login_time`: the last successful login the instance recorded, when readable.
    pub(crate) last_login_time: Option<DateTime<Utc>>,
    /// `failed_attempts`: failed logins since the last success (the lockout counter), when the column exists
    /// and is readable.
    pub(crate) failed_attempts: Option<u32>,
    /// sys_ids of every role the user holds (`sys_user_has_role`, inherited rows included);
    /// `None` when the roles were not read for this user.
    pub(crate) roles: Option<BTreeSet<SysId>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum LoginEventKind {
    #[serde(rename = "login")]
    Succeeded,
    #[serde(rename = "login.failed")]
    Failed,
    #[serde(rename = "login.authorization.failed")]
    AuthorizationFailed,
}

impl LoginEventKind {
    pub(crate) const ALL: [LoginEventKind; 3] = [Self::Succeeded, Self::Failed, Self::AuthorizationFailed];

    pub(crate) fn event_name(self) -> &'static str {
        match self {
            Self::Succeeded => "login",
            Self::Failed => "login.failed",
            Self::AuthorizationFailed => "login.authorization.failed",
        }
    }

    pub(crate) fn from_event_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.event_name() == name)
    }
}

/// A `login`, `login.failed` or `login.authorization.failed` row of `sysevent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoginEvent {
    pub(crate) sys_id: SysId,
    pub(crate) kind: LoginEventKind,
    /// `parm1`: the user name as the event spells it; it is the user's whose name has the same [`UserKey`].
    pub(crate) user_name: UserName,
    /// `parm2`: the source IP for `login`/`login.failed`, the missing roles for an authorization failure.
    pub(crate) parm2: String,
    pub(crate) created_on: DateTime<Utc>,
}

/// How many events of one name a user had in the window, and the last of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventActivity {
    /// `login.failed`, `external.authentication.failed`, …
    pub name: String,
    pub count: u64,
    /// The last one's `sys_created_on`, when known.
    #[serde(with = "crate::domain::sn_time::option")]
    pub(crate) last: Option<DateTime<Utc>>,
    /// The last one's `parm2` (for SSO events the reason, e.g. "User locked out"), when it was read.
    pub(crate) last_detail: Option<String>,
}

/// The SSO events recorded as evidence (parm1 the user name, parm2 the reason).
pub(crate) const SSO_EVENTS: [&str; 2] = ["external.authentication.failed", "external.authentication.succeeded"];

/// A row of the Identity Center table `sys_user_login_history` (column names unconfirmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoginHistoryEntry {
    /// The `user` reference: the sys_id of the `sys_user` row, never a user name.
    pub(crate) user: SysId,
    pub(crate) status: String,
    pub(crate) failure_reason: String,
    pub(crate) ip_address: String,
    pub(crate) created_on: DateTime<Utc>,
}

/// The optional Identity Center data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum LoginHistory {
    Rows(Vec<LoginHistoryEntry>),
    /// The table does not exist (HTTP 400 "Invalid table"): Identity Center is not installed.
    #[default]
    Absent,
    /// The table exists but could not be read; the reason is reported once.
    Unreadable(String),
}

/// The `mid_server` role and what it contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MidServerRole {
    pub(crate) sys_id: SysId,
    /// Every role `mid_server` contains, transitively: sys_id → name.
    pub(crate) contains: BTreeMap<SysId, String>,
}

/// A user name the check refused to put into a query, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedUser {
    pub user: String,
    pub(crate) reason: String,
}

/// Everything one cycle read from the instance: the input of the pure rules.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `None` when the instance has no `mid_server` role (the built-in job logs it and checks no role users).
    pub(crate) mid_server_role: Option<MidServerRole>,
    /// sys_ids of the users holding `mid_server` (`sys_user_has_role`, inherited rows included).
    pub(crate) role_holders: BTreeSet<SysId>,
    /// `sys_user` rows of role holders and configured MID users, keyed by sys_id.
    pub(crate) users: BTreeMap<SysId, UserAccount>,
    pub(crate) mid_servers: Vec<MidServer>,
    pub(crate) mid_user_configs: Vec<MidUserConfig>,
    /// Login events of the checked users inside the window (others may be present; they are ignored).
    pub(crate) login_events: Vec<LoginEvent>,
    /// Each checked user's events in the window by name — `login*` and the SSO `external.authentication.*` —
    /// as far as the read plan counted them (evidence only: they never decide a finding).
    pub(crate) event_activity: BTreeMap<UserKey, Vec<EventActivity>>,
    pub(crate) login_history: LoginHistory,
    pub(crate) skipped_users: Vec<SkippedUser>,
    /// The selection of a selected check, as the instance resolved it; `None` for a check of everyone.
    pub(crate) selected: Option<super::ResolvedSelection>,
    /// The events' read: from (exclusive) and until (inclusive); `None` until they are read. A later round of
    /// a watch keeps the first round's start: its event counts cover everything read since.
    pub(crate) read_from: Option<DateTime<Utc>>,
    pub(crate) read_until: Option<DateTime<Utc>>,
    /// `[check] early_warnings`: the users of Up MID Servers are read and judged for warnings too (set before
    /// the window's read, which then reads their latest events).
    pub(crate) early_warnings: bool,
    /// How many users of Up MID Servers were not asked about refused logins (the Aggregate API is not
    /// available): the early warnings could not judge them.
    pub(crate) up_users_uncounted: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_key_is_the_name_lower_cased_character_by_character() {
        assert_eq!(UserKey::of("MidServer.Case"), UserKey::of("midserver.CASE"));
        assert_eq!(UserKey::of("JÜRGEN.Müller").as_str(), "jürgen.müller");
        assert_ne!(UserKey::of("midserver2"), UserKey::of("midserver2 "));
        assert!(same_name("MidServer.Case", "midserver.case"));
        assert!(same_name("\u{212a}elvin", "kelvin"), "the Kelvin sign lower-cases to k");
        assert!(!same_name("al", "alice") && !same_name("", "a") && same_name("", ""));
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config())]

        /// The fast comparison and the key agree, whatever the text, the case of its letters and its length.
        #[test]
        fn same_name_is_equality_of_user_keys(
            a in "[a-zA-Z.\u{c0}-\u{17f}\u{212a}\u{130}]{0,6}",
            b in "[a-zA-Z.\u{c0}-\u{17f}\u{212a}\u{130}]{0,6}",
            flip in proptest::bool::ANY,
        ) {
            // Half the time, compare a name with itself in other cases.
            let b = if flip { a.to_uppercase() } else { b };
            proptest::prop_assert_eq!(same_name(&a, &b), UserKey::of(&a) == UserKey::of(&b), "{:?} {:?}", a, b);
        }
    }
}
