//! The rules: a pure function from a [`Snapshot`] to a [`Report`].
//!
//! This reproduces the built-in MIDUserConnectivity job (docs/servicenow.md §1) exactly — who is
//! checked, which event decides, what n counts — and adds its own detail (missing roles, account state, evidence) without ever
//! changing a documented message. User names compare as the instance's queries compare them, without regard to
//! case (`UserKey`): one user, one finding, whatever the spellings of its record, configuration and events.
//! Beyond the job, it warns about the users of Up MID Servers before their outage and observes what explains a
//! missing finding (`early.rs`). No I/O and no clock: the window is an input.

mod early;
pub(crate) mod messages;

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::MessageStyle;
use crate::domain::{
    AccountState, Category, Condition, DownMidServer, EventEvidence, Evidence, Finding, IdMap, LoginHistoryEvidence,
    MidRef, MissingRoles, Report, Status, Summary,
};
use crate::domain::{
    LoginEvent, LoginEventKind, LoginHistory, MidServer, Population, Snapshot, SysId, UserAccount, UserKey, Window,
    same_name,
};
use crate::evaluate::messages::issue_message;

/// The domain written when the user's is empty, as the built-in job does.
pub(crate) const GLOBAL_DOMAIN: &str = "global";

/// The role whose absence makes a user's authorization failures invisible to the instance.
pub(crate) const SOAP_SCRIPT_ROLE: &str = "soap_script";

/// The user's domain: from `sys_user` for role users, else from the `ecc_agent_config` row.
fn domain(pop: &Population<'_>, s: &Snapshot, user: &str) -> String {
    let from_user = pop.role_users.get(&UserKey::of(user)).and_then(|u| u.sys_domain);
    let from_config =
        || s.mid_user_configs.iter().filter(|c| same_name(&c.user_name, user)).find_map(|c| c.sys_domain.as_deref());
    from_user.or_else(from_config).filter(|d| !d.is_empty()).unwrap_or(GLOBAL_DOMAIN).to_string()
}

/// What the report needs beyond the snapshot.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub instance: &'a str,
    pub window: Window,
    pub messages: MessageStyle,
    /// `[check] down_for`: a MID Server down for less than this (by its `last_refreshed`, against the window's
    /// end) is not judged yet. Zero is exactly the built-in job.
    pub down_for: std::time::Duration,
}

/// The down MID Servers that went silent less than `down_for` before the window's end (sys_ids). A MID
/// Server without `last_refreshed` is judged, as by the built-in job.
fn held_back<'s>(s: &'s Snapshot, ctx: &Context<'_>) -> BTreeSet<&'s SysId> {
    if ctx.down_for.is_zero() {
        return BTreeSet::new();
    }
    let span = chrono::Duration::from_std(ctx.down_for).unwrap_or(chrono::Duration::MAX);
    let Some(cutoff) = ctx.window.end.checked_sub_signed(span) else { return BTreeSet::new() };
    s.mid_servers
        .iter()
        .filter(|m| m.is_down() && m.last_refreshed.is_some_and(|at| at > cutoff))
        .map(|m| &m.sys_id)
        .collect()
}

/// Every down MID Server, judged or held back, with its users.
fn down_mid_servers(s: &Snapshot, held: &BTreeSet<&SysId>) -> Vec<DownMidServer> {
    let mut out: Vec<DownMidServer> = s
        .mid_servers
        .iter()
        .filter(|m| m.is_down())
        .map(|m| {
            let mut users: Vec<(UserKey, String)> = s
                .mid_user_configs
                .iter()
                .filter(|c| c.mid_server.as_ref() == Some(&m.sys_id))
                .map(|c| (UserKey::of(&c.user_name), c.user_name.to_string()))
                .collect();
            // One user once, whatever its spellings.
            users.sort();
            users.dedup_by(|a, b| a.0 == b.0);
            let users = users.into_iter().map(|(_, name)| name).collect();
            DownMidServer {
                sys_id: m.sys_id.to_string(),
                name: m.name.clone(),
                down_since: m.last_refreshed,
                judged: !held.contains(&m.sys_id),
                users,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.sys_id).cmp(&(&b.name, &b.sys_id)));
    out.dedup_by(|a, b| a.sys_id == b.sys_id);
    out
}

/// The sys_id of each account by user name (the first of two accounts with one name), and by the configured
/// name of a user of down MID Servers (the name its finding carries) where its record spells it otherwise.
fn user_ids(s: &Snapshot, pop: &Population<'_>) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    for u in s.users.values() {
        ids.entry(u.user_name.to_string()).or_insert_with(|| u.sys_id.to_string());
    }
    for name in pop.down_mid_users.values().map(|u| u.name) {
        if let Some(u) = user_by_name(s, name) {
            ids.entry(name.to_string()).or_insert_with(|| u.sys_id.to_string());
        }
    }
    ids
}

/// Evaluates every rule on the snapshot.
pub fn evaluate(s: &Snapshot, ctx: &Context<'_>) -> Report {
    let held = held_back(s, ctx);
    let pop = Population::holding_back(s, &held);
    let latest = latest_events(s, &ctx.window);
    let mut summary = Summary {
        role_users: pop.role_users.len(),
        down_mid_servers: pop.down_mid_servers.len(),
        users_on_down_mid_servers: pop.down_mid_users.len(),
        configured_mid_users: pop.configured.len(),
        unassociated_role_users: pop.unassociated.len(),
        ..Summary::default()
    };
    let skipped: BTreeSet<UserKey> = s.skipped_users.iter().map(|u| UserKey::of(&u.user)).collect();

    let mut findings = Vec::new();
    for (key, user) in pop.to_check() {
        if skipped.contains(&key) {
            continue;
        }
        let event = latest.get(&key).copied();
        match event.map(|e| e.kind) {
            Some(LoginEventKind::Failed) => summary.last_attempt_failed_authentication += 1,
            Some(LoginEventKind::AuthorizationFailed) => summary.last_attempt_failed_authorization += 1,
            Some(LoginEventKind::Succeeded) => summary.last_attempt_succeeded += 1,
            None => summary.no_attempt += 1,
        }
        let down = pop.down_mid_users.get(&key).map(|u| u.mid_servers.as_slice()).unwrap_or_default();
        if let Some(f) = finding(s, &pop, ctx, user, event, down) {
            if f.condition == Condition::ConnectivityUndetectable {
                summary.connectivity_undetectable += 1;
            }
            findings.push(f);
        }
    }
    findings.sort_by(|a, b| (a.category, &a.user).cmp(&(b.category, &b.user)));

    for f in &findings {
        *summary.findings_by_category.entry(f.category).or_default() += 1;
        *summary.findings_by_condition.entry(f.condition).or_default() += 1;
    }
    summary.findings = findings.len();

    let selected = s.selected.as_ref();
    let early = early::early(s, &pop, &latest, &|k| selected.is_none_or(|sel| sel.covers(k)));
    summary.warnings = early.warnings.len();
    summary.observations = early.observations.len();

    let status = if findings.iter().any(|f| f.category != Category::Configuration) {
        Status::Critical
    } else if findings.is_empty() && early.warnings.is_empty() {
        Status::Ok
    } else {
        Status::Warning
    };

    Report {
        instance: ctx.instance.to_string(),
        window: ctx.window,
        messages: ctx.messages,
        status,
        summary,
        findings,
        warnings: early.warnings,
        observations: early.observations,
        id_map: id_map(&pop),
        skipped_users: s.skipped_users.clone(),
        down_mid_servers: down_mid_servers(s, &held),
        notes: notes(s, &pop),
        user_ids: user_ids(s, &pop),
        selected_users: s.selected.as_ref().map(|sel| sel.users.iter().cloned().collect()),
        unfinished: Vec::new(),
    }
}

/// The most recent login event of each user inside the window, whatever the case its `parm1` spells the user
/// in; ties on the second are broken by sys_id so that the result does not depend on the order the instance
/// returned rows in.
pub(crate) fn latest_events<'s>(s: &'s Snapshot, window: &Window) -> BTreeMap<UserKey, &'s LoginEvent> {
    let mut latest: BTreeMap<UserKey, &LoginEvent> = BTreeMap::new();
    for e in s.login_events.iter().filter(|e| window.contains(e.created_on)) {
        let slot = latest.entry(UserKey::of(&e.user_name)).or_insert(e);
        if (e.created_on, &e.sys_id) > (slot.created_on, &slot.sys_id) {
            *slot = e;
        }
    }
    latest
}

fn finding(
    s: &Snapshot,
    pop: &Population<'_>,
    ctx: &Context<'_>,
    user: &str,
    event: Option<&LoginEvent>,
    down: &[&MidServer],
) -> Option<Finding> {
    let kind = event.map(|e| e.kind);
    let n = down.len();
    let account = account_state(s, user);
    let missing_roles = missing_roles(s, user, event);
    let lacks_soap_script = lacks_role(s, user, SOAP_SCRIPT_ROLE);

    let (category, condition) = match (kind, n) {
        (Some(LoginEventKind::Succeeded), 1..) => return None,
        (Some(LoginEventKind::Failed), 1..) => (Category::Authentication, Condition::LoginFailedOnDownMid),
        (Some(LoginEventKind::AuthorizationFailed), 1..) => {
            (Category::Authorization, Condition::AuthorizationFailedOnDownMid)
        }
        (None, 1..) if lacks_soap_script => (Category::Network, Condition::ConnectivityUndetectable),
        (None, 1..) => (Category::Network, Condition::NoLoginOnDownMid),
        (Some(LoginEventKind::Failed), 0) => (Category::Configuration, Condition::LoginFailedUnassociated),
        (Some(LoginEventKind::AuthorizationFailed), 0) => {
            (Category::Configuration, Condition::AuthorizationFailedUnassociated)
        }
        (Some(LoginEventKind::Succeeded), 0) => (Category::Configuration, Condition::LoginSucceededUnassociated),
        (None, 0) => (Category::Configuration, Condition::NoLoginUnassociated),
    };

    let likely_cause = likely_cause(user, account, condition, &missing_roles);
    let mut down_mid_servers: Vec<MidRef> = down
        .iter()
        .map(|m| MidRef { sys_id: m.sys_id.to_string(), name: m.name.clone(), down_since: m.last_refreshed })
        .collect();
    down_mid_servers.sort();

    Some(Finding {
        category,
        condition,
        user: user.to_string(),
        message: issue_message(ctx.messages, user, kind, n),
        down_mid_servers,
        missing_roles,
        account,
        last_login_time: user_by_name(s, user).and_then(|u| u.last_login_time),
        failed_attempts: user_by_name(s, user).and_then(|u| u.failed_attempts),
        activity: s.event_activity.get(&UserKey::of(user)).cloned().unwrap_or_default(),
        likely_cause,
        evidence: evidence(s, user, event, &ctx.window),
        sys_domain: domain(pop, s, user),
        history: None,
    })
}

/// The account of `user`: the one spelled so, else the first whose name differs from it only in case.
fn user_by_name<'s>(s: &'s Snapshot, user: &str) -> Option<&'s UserAccount> {
    s.users.values().find(|u| u.user_name == user).or_else(|| s.users.values().find(|u| same_name(&u.user_name, user)))
}

fn account_state(s: &Snapshot, user: &str) -> AccountState {
    match user_by_name(s, user) {
        None => AccountState::NotFound,
        Some(u) => match (u.active, u.locked_out) {
            (true, false) => AccountState::Active,
            (false, false) => AccountState::Inactive,
            (true, true) => AccountState::LockedOut,
            (false, true) => AccountState::InactiveAndLockedOut,
        },
    }
}

/// `mid_server` and every role it contains that the user does not hold, by name, sorted.
fn missing_roles(s: &Snapshot, user: &str, event: Option<&LoginEvent>) -> MissingRoles {
    let from_event = match event {
        Some(e) if e.kind == LoginEventKind::AuthorizationFailed => {
            let mut roles: Vec<String> =
                e.parm2.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect();
            roles.sort();
            roles.dedup();
            roles
        }
        _ => Vec::new(),
    };
    let from_role_containment = match (&s.mid_server_role, user_by_name(s, user).and_then(|u| u.roles.as_ref())) {
        (Some(role), Some(held)) => {
            let mut missing: Vec<String> = std::iter::once((&role.sys_id, &"mid_server".to_string()))
                .chain(role.contains.iter())
                .filter(|(id, _)| !held.contains(*id))
                .map(|(_, name)| name.to_string())
                .collect();
            missing.sort();
            missing.dedup();
            missing
        }
        _ => Vec::new(),
    };
    MissingRoles { from_event, from_role_containment }
}

/// True only when we know the user's roles and they lack `role` (one that `mid_server` contains).
fn lacks_role(s: &Snapshot, user: &str, role: &str) -> bool {
    let Some(mid_role) = &s.mid_server_role else { return false };
    let Some(role_id) = mid_role.contains.iter().find(|(_, n)| n.as_str() == role).map(|(id, _)| id) else {
        return false;
    };
    user_by_name(s, user).and_then(|u| u.roles.as_ref()).is_some_and(|held| !held.contains(role_id))
}

fn likely_cause(user: &str, account: AccountState, condition: Condition, missing: &MissingRoles) -> Option<String> {
    let on_down_mid = matches!(
        condition,
        Condition::LoginFailedOnDownMid
            | Condition::AuthorizationFailedOnDownMid
            | Condition::NoLoginOnDownMid
            | Condition::ConnectivityUndetectable
    );
    if !on_down_mid {
        return None;
    }
    match account {
        AccountState::NotFound => {
            return Some(format!(
                "No user named {user} exists on the instance: the MID Server cannot log in, and the instance records \
                 no login event for an unknown user. Check mid.instance.username in the MID Server's config.xml."
            ));
        }
        AccountState::LockedOut | AccountState::InactiveAndLockedOut => {
            return Some(format!(
                "The account {user} is locked out (sys_user.locked_out): unlock it, then check the password the MID \
                 Server uses."
            ));
        }
        AccountState::Inactive => {
            return Some(format!("The account {user} is inactive (sys_user.active = false): activate it."));
        }
        AccountState::Active => {}
    }
    if condition == Condition::ConnectivityUndetectable {
        let roles = missing.from_role_containment.join(", ");
        return Some(format!(
            "{}: the user lacks {SOAP_SCRIPT_ROLE}, so the instance can never record its authorization failures; \
             the problem may be missing roles ({roles}) rather than the network. Re-assign the mid_server role.",
            crate::evaluate::messages::undetectable_message(user)
        ));
    }
    None
}

/// What a report shows of a login event.
pub(crate) fn event_evidence(e: &LoginEvent) -> EventEvidence {
    EventEvidence {
        sys_id: e.sys_id.to_string(),
        name: e.kind,
        at: e.created_on,
        ip: (e.kind != LoginEventKind::AuthorizationFailed)
            .then(|| e.parm2.trim())
            .filter(|p| p.parse::<std::net::IpAddr>().is_ok())
            .map(str::to_string),
        source_mid: None,
    }
}

fn evidence(s: &Snapshot, user: &str, event: Option<&LoginEvent>, window: &Window) -> Evidence {
    let event = event.map(|e| {
        let mut evidence = event_evidence(e);
        // The MID Server the deciding login came from: the one holding a stale password, when it is another.
        evidence.source_mid = evidence.ip.as_deref().and_then(|ip| {
            early::Source::of(&s.mid_servers, &early::configured_on(s, user), ip).mid().map(str::to_string)
        });
        evidence
    });
    let account = user_by_name(s, user);
    let rows = match &s.login_history {
        LoginHistory::Rows(rows) => Some(rows),
        LoginHistory::Absent | LoginHistory::Unreadable(_) => None,
    };
    let login_history = rows.and_then(|rows| {
        rows.iter()
            .filter(|h| window.contains(h.created_on))
            .filter(|h| account.is_some_and(|a| a.sys_id == h.user))
            .max_by_key(|h| h.created_on)
            .map(|h| LoginHistoryEvidence {
                status: h.status.clone(),
                failure_reason: h.failure_reason.clone(),
                ip_address: h.ip_address.clone(),
                at: h.created_on,
            })
    });
    Evidence { event, login_history }
}

fn id_map(pop: &Population<'_>) -> Option<IdMap> {
    if pop.down_mid_servers.is_empty() {
        return None;
    }
    Some(IdMap {
        unassociated_users: pop
            .unassociated
            .iter()
            .filter_map(|k| pop.role_users.get(k))
            .map(|u| u.name.to_string())
            .collect(),
        users_on_down_mid_servers: pop
            .down_mid_users
            .values()
            .map(|u| (u.name.to_string(), u.mid_servers.iter().map(|m| m.sys_id.to_string()).collect()))
            .collect(),
        down_mid_servers: pop.down_mid_servers.iter().map(|m| (m.sys_id.to_string(), m.name.clone())).collect(),
    })
}

fn notes(s: &Snapshot, pop: &Population<'_>) -> Vec<String> {
    let mut notes = Vec::new();
    if s.mid_server_role.is_none() {
        notes.push(
            "The instance has no mid_server role (sys_user_role name=mid_server): no user was checked for holding \
             it; only users of down MID Servers were checked."
                .to_string(),
        );
    }
    if pop.down_mid_servers.is_empty() {
        notes.push("No MID Server is down.".to_string());
    }
    if s.early_warnings && s.up_users_uncounted > 0 {
        notes.push(format!(
            "{} user(s) of Up MID Servers were not judged for refused logins: the instance's Aggregate API (stats) \
             is not available to this account, and reading every login event of theirs would cost more than the \
             early warning is worth. Locked-out accounts and observations are still reported.",
            s.up_users_uncounted
        ));
    }
    if let Some(sel) = &s.selected {
        notes.push(format!(
            "A selected check ({}): it read and judged only {}; no other user was checked, and only {} \
             ecc_agent_issue records are written.",
            sel.requested.describe(),
            sel.users.iter().map(String::as_str).collect::<Vec<_>>().join(", "),
            if sel.users.len() == 1 { "that user's" } else { "their" }
        ));
    }
    match &s.login_history {
        LoginHistory::Rows(_) => {}
        LoginHistory::Absent => notes.push(
            "The table sys_user_login_history does not exist (Identity Center is not installed): findings carry no \
             login failure reason."
                .to_string(),
        ),
        LoginHistory::Unreadable(reason) => notes.push(format!(
            "sys_user_login_history could not be read, so findings carry no login failure reason: {reason}"
        )),
    }
    notes
}

#[cfg(test)]
mod tests;
