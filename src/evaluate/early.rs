//! Early warnings and observations (beyond the built-in job): pure, from what `evaluate` already has — the
//! snapshot, the population (E: the users of Up MID Servers) and each user's latest login event.
//!
//! - `failing_on_up_mid`: a user of Up MID Servers only, whose latest login event in the window is a failure;
//! - `locked_out_on_up_mid`: a user of Up MID Servers whose account is locked out or inactive;
//! - `down_not_user`: a Down MID Server all of whose users logged in successfully;
//! - `user_mismatch`: a MID Server logged in as another user than it is configured with;
//! - `user_name_case`: a configured user name that matches its record only without regard to case.
//!
//! And where a login came from: the MID Server whose `ip_address` or `host_name` is an event's source.

use std::collections::{BTreeMap, BTreeSet};

use super::{event_evidence, user_by_name};
use crate::domain::{
    LoginEvent, LoginEventKind, MidServer, Observation, Population, Snapshot, SysId, UserKey, Warning, same_name,
    sn_time, users_on,
};

/// What the early rules found.
#[derive(Debug, Default)]
pub(super) struct Early {
    pub(super) warnings: Vec<Warning>,
    pub(super) observations: Vec<Observation>,
}

/// The MID Servers a login from `source` came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// No MID Server has that address: another client.
    Elsewhere,
    /// Exactly one MID Server (or one of several sharing the address is configured with the user).
    Mid(String),
    /// Several MID Servers share that address (one host), none of them singled out by the user.
    Several(Vec<String>),
}

impl Source {
    /// Which of `mids` a login from `source` came from; of several sharing that address, the one of `configured`
    /// (the MID Servers of the login's user), when exactly one is.
    pub(crate) fn of(mids: &[MidServer], configured: &[&MidServer], source: &str) -> Source {
        let from: Vec<&MidServer> = mids.iter().filter(|m| m.is_source(source)).collect();
        let own: Vec<&MidServer> =
            from.iter().copied().filter(|m| configured.iter().any(|c| c.sys_id == m.sys_id)).collect();
        match (from.as_slice(), own.as_slice()) {
            ([], _) => Source::Elsewhere,
            ([one], _) | (_, [one]) => Source::Mid(one.name.clone()),
            (several, _) => {
                let mut names: Vec<String> = several.iter().map(|m| m.name.clone()).collect();
                names.sort();
                names.dedup();
                Source::Several(names)
            }
        }
    }

    /// The one MID Server, when there is one.
    pub(crate) fn mid(&self) -> Option<&str> {
        match self {
            Source::Mid(name) => Some(name),
            Source::Elsewhere | Source::Several(_) => None,
        }
    }

    /// `(mid-london-01)`, `(no MID Server has this address)`, `(shared by MID Servers a, b)`.
    fn describe(&self) -> String {
        match self {
            Source::Elsewhere => "(no MID Server has this address: another client uses the account)".to_string(),
            Source::Mid(name) => format!("(MID Server {name})"),
            Source::Several(names) => format!("(shared by MID Servers {})", names.join(", ")),
        }
    }
}

/// The MID Servers `user` is configured on (any status).
pub(crate) fn configured_on<'s>(s: &'s Snapshot, user: &str) -> Vec<&'s MidServer> {
    let ids: BTreeSet<_> = s
        .mid_user_configs
        .iter()
        .filter(|c| same_name(&c.user_name, user))
        .filter_map(|c| c.mid_server.as_ref())
        .collect();
    s.mid_servers.iter().filter(|m| ids.contains(&m.sys_id)).collect()
}

/// Every early warning and observation of the snapshot, for the users `covers` admits (a selection's).
pub(super) fn early(
    s: &Snapshot,
    pop: &Population<'_>,
    latest: &BTreeMap<UserKey, &LoginEvent>,
    covers: &dyn Fn(&UserKey) -> bool,
) -> Early {
    if !s.early_warnings {
        return Early::default();
    }
    let skipped: BTreeSet<UserKey> = s.skipped_users.iter().map(|u| UserKey::of(&u.user)).collect();
    let judged = |k: &UserKey| covers(k) && !skipped.contains(k);
    let mut warnings = Vec::new();
    for (key, on) in pop.up_mid_users.iter().filter(|(k, _)| judged(k)) {
        let mut mids: Vec<String> = on.mid_servers.iter().map(|m| m.name.clone()).collect();
        mids.sort();
        mids.dedup();
        if let Some(e) = latest.get(key).filter(|e| e.kind != LoginEventKind::Succeeded) {
            warnings.push(failing(s, key, on.name, mids.clone(), e));
        }
        if let Some(w) = locked_out(s, on.name, mids) {
            warnings.push(w);
        }
    }
    warnings.sort_by(|a, b| (a.kind(), a.user()).cmp(&(b.kind(), b.user())));

    let mut observations = down_not_user(s, latest, &judged);
    observations.extend(user_mismatches(s, covers));
    observations.extend(user_name_cases(s, covers));
    Early { warnings, observations }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 { one.to_string() } else { many.to_string() }
}

/// `MID Server a` or `MID Servers a, b`.
fn mid_servers(names: &[String]) -> String {
    format!("{} {}", plural(names.len(), "MID Server", "MID Servers"), names.join(", "))
}

fn failing(s: &Snapshot, key: &UserKey, user: &str, mids: Vec<String>, e: &LoginEvent) -> Warning {
    let failures: u64 = s
        .event_activity
        .get(key)
        .map(|a| {
            a.iter()
                .filter(|a| LoginEventKind::from_event_name(&a.name).is_some_and(|k| k != LoginEventKind::Succeeded))
                .map(|a| a.count)
                .sum()
        })
        .unwrap_or(0)
        .max(1);
    let source_ip = event_evidence(e).ip;
    let source = source_ip.as_deref().map(|ip| Source::of(&s.mid_servers, &configured_on(s, user), ip));
    let failed_attempts = user_by_name(s, user).and_then(|u| u.failed_attempts);
    let from = match (&source_ip, &source) {
        (Some(ip), Some(source)) => format!(" from {ip} {}", source.describe()),
        _ => String::new(),
    };
    let attempts = failed_attempts.map(|n| format!("; sys_user.failed_attempts is {n}")).unwrap_or_default();
    let text = format!(
        "User {user} of Up {} is being refused: {failures} login {} in the window, the last {} at {} UTC{from}{attempts}. \
         A client with an old password (a second MID Server, a script) brings the account nearer to lockout, and \
         then every MID Server of the user goes Down: set the current password there.",
        mid_servers(&mids),
        plural(failures as usize, "failure", "failures"),
        e.kind.event_name(),
        sn_time::format(e.created_on),
    );
    Warning::FailingOnUpMid {
        user: user.to_string(),
        mid_servers: mids,
        failures,
        last_failure: e.created_on,
        source_ip,
        source_mid: source.as_ref().and_then(Source::mid).map(str::to_string),
        failed_attempts,
        text,
    }
}

fn locked_out(s: &Snapshot, user: &str, mids: Vec<String>) -> Option<Warning> {
    let account = user_by_name(s, user)?;
    let state = match (account.active, account.locked_out) {
        (true, false) => return None,
        (true, true) => "locked out",
        (false, false) => "inactive",
        (false, true) => "inactive and locked out",
    };
    let fix = if account.locked_out { "Unlock the account" } else { "Activate the account" };
    let text = format!(
        "User {user} of Up {} is {state} (sys_user): {} Down at {} next login. {fix}, then check the \
         password {} uses.",
        mid_servers(&mids),
        plural(mids.len(), "it goes", "they go"),
        plural(mids.len(), "its", "their"),
        plural(mids.len(), "the MID Server", "the MID Servers"),
    );
    Some(Warning::LockedOutOnUpMid {
        user: user.to_string(),
        mid_servers: mids,
        locked_out: account.locked_out,
        active: account.active,
        text,
    })
}

/// The Down MID Servers every one of whose users logged in successfully in the window (those down for less than
/// `[check] down_for` too: their users' events are read, and say the same).
fn down_not_user(
    s: &Snapshot,
    latest: &BTreeMap<UserKey, &LoginEvent>,
    judged: &dyn Fn(&UserKey) -> bool,
) -> Vec<Observation> {
    let mut out = Vec::new();
    for mid in s.mid_servers.iter().filter(|m| m.is_down()) {
        let users = users_on(s, &[mid]);
        let logins: Option<Vec<&LoginEvent>> = users
            .keys()
            .map(|k| latest.get(k).copied().filter(|e| judged(k) && e.kind == LoginEventKind::Succeeded))
            .collect();
        let (Some(logins), false) = (logins, users.is_empty()) else { continue };
        let Some(last) = logins.iter().map(|e| e.created_on).max() else { continue };
        let names: Vec<String> = users.values().map(|u| u.name.to_string()).collect();
        let text = format!(
            "MID Server {} is Down, but {} {} logged in successfully in the window (the last at {} UTC): the user \
             is not the cause. Look at the MID Server's host and service: is it running, and can it reach the \
             instance?",
            mid.name,
            plural(names.len(), "its user", "all its users"),
            names.join(", "),
            sn_time::format(last)
        );
        out.push(Observation::DownNotUser { mid_server: mid.name.clone(), users: names, last_login: last, text });
    }
    out.sort_by(|a, b| a.text().cmp(b.text()));
    out
}

/// The MID Servers logged in as another user than the one they are configured with.
fn user_mismatches(s: &Snapshot, covers: &dyn Fn(&UserKey) -> bool) -> Vec<Observation> {
    let mut configured: BTreeMap<&SysId, BTreeSet<&str>> = BTreeMap::new();
    for c in &s.mid_user_configs {
        if let Some(mid) = &c.mid_server {
            configured.entry(mid).or_default().insert(c.user_name.as_str());
        }
    }
    let mut out = Vec::new();
    for mid in &s.mid_servers {
        let (Some(logged_in), Some(configured)) = (&mid.logged_in_user, configured.get(&mid.sys_id)) else {
            continue;
        };
        for c in configured.iter().filter(|c| !same_name(c, logged_in)) {
            if !covers(&UserKey::of(c)) && !covers(&UserKey::of(logged_in)) {
                continue;
            }
            let text = format!(
                "MID Server {} logged in as {logged_in} but is configured with {c} (mid.instance.username): its \
                 config.xml changed without a restart, or the installation was copied from another MID Server. \
                 Restart it after correcting config.xml.",
                mid.name
            );
            out.push(Observation::UserMismatch {
                mid_server: mid.name.clone(),
                logged_in_user: logged_in.to_string(),
                configured_user: c.to_string(),
                text,
            });
        }
    }
    out.sort_by(|a, b| a.text().cmp(b.text()));
    out
}

/// The configured user names that match their record only when case is ignored.
fn user_name_cases(s: &Snapshot, covers: &dyn Fn(&UserKey) -> bool) -> Vec<Observation> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let exact: BTreeSet<&str> = s.users.values().map(|u| u.user_name.as_str()).collect();
    let mut by_key: BTreeMap<UserKey, &str> = BTreeMap::new();
    for u in s.users.values() {
        by_key.entry(UserKey::of(&u.user_name)).or_insert(u.user_name.as_str());
    }
    let mids: BTreeMap<&SysId, &MidServer> = s.mid_servers.iter().map(|m| (&m.sys_id, m)).collect();
    for c in s.mid_user_configs.iter().filter(|c| covers(&UserKey::of(&c.user_name))) {
        let Some(mid) = c.mid_server.as_ref().and_then(|id| mids.get(id)) else { continue };
        if exact.contains(c.user_name.as_str()) {
            continue;
        }
        let Some(record) = by_key.get(&UserKey::of(&c.user_name)) else { continue };
        if !seen.insert((mid.sys_id.clone(), c.user_name.clone())) {
            continue;
        }
        let text = format!(
            "MID Server {} is configured with user {}, whose record is spelled {}: the instance matches it (names \
             compare without regard to case), but a script or integration that compares exactly does not. Spell it \
             as the record does in config.xml.",
            mid.name, c.user_name, record
        );
        out.push(Observation::UserNameCase {
            mid_server: mid.name.clone(),
            configured_user: c.user_name.to_string(),
            user: record.to_string(),
            text,
        });
    }
    out.sort_by(|a, b| a.text().cmp(b.text()));
    out
}
