//! Whom the built-in job checks (docs/servicenow.md §1 items 2–4): the sets derived from a snapshot's roles,
//! users, MID Servers and configuration, shared by `collect` (whose events to read) and `evaluate` (whom to
//! judge).
//!
//! Users are keyed by [`UserKey`]: the instance compares names without regard to case, so a MID Server
//! configured with `MidServer2` for the record `midserver2` is that user, configured — not a second user, nor
//! a role holder that no MID Server uses.

use std::collections::{BTreeMap, BTreeSet};

use super::{MidServer, Snapshot, SysId, UserKey};

/// An active holder of `mid_server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleUser<'a> {
    /// `sys_user.user_name`, as the record spells it.
    pub(crate) name: &'a str,
    pub(crate) sys_domain: Option<&'a str>,
}

/// A user configured on down MID Servers (or, for the early warnings, on Up ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OnMids<'a> {
    /// The configured `mid.instance.username`, the name the built-in job reports such a user by; of two
    /// spellings on those MID Servers, the first in byte order, so that the name does not depend on the
    /// order the instance returned rows in.
    pub(crate) name: &'a str,
    /// Those MID Servers, each once.
    pub(crate) mid_servers: Vec<&'a MidServer>,
}

/// The sets of the built-in job (docs/servicenow.md §1 items 2–4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Population<'a> {
    /// A: active users holding `mid_server`.
    pub(crate) role_users: BTreeMap<UserKey, RoleUser<'a>>,
    /// B: users configured on down MID Servers.
    pub(crate) down_mid_users: BTreeMap<UserKey, OnMids<'a>>,
    /// C: every configured MID user, whatever the MID Server's status.
    pub(crate) configured: BTreeSet<UserKey>,
    /// D = A − C.
    pub(crate) unassociated: BTreeSet<UserKey>,
    pub(crate) down_mid_servers: Vec<&'a MidServer>,
    /// E (beyond the built-in job): users configured on Up MID Servers and not in B, with those MID Servers.
    pub(crate) up_mid_users: BTreeMap<UserKey, OnMids<'a>>,
}

impl<'a> Population<'a> {
    /// Derives the sets from the snapshot's roles, users, MID Servers and configuration (not its events).
    pub(crate) fn of(s: &'a Snapshot) -> Population<'a> {
        Population::holding_back(s, &BTreeSet::new())
    }

    /// As [`Population::of`], with the down MID Servers in `held_back` (sys_ids) counted as not down.
    pub(crate) fn holding_back(s: &'a Snapshot, held_back: &BTreeSet<&SysId>) -> Population<'a> {
        let mut role_users = BTreeMap::new();
        if s.mid_server_role.is_some() {
            for id in &s.role_holders {
                if let Some(u) = s.users.get(id).filter(|u| u.active) {
                    let user = RoleUser { name: u.user_name.as_str(), sys_domain: u.sys_domain.as_deref() };
                    role_users.entry(UserKey::of(&u.user_name)).or_insert(user);
                }
            }
        }
        let down_mid_servers: Vec<&MidServer> =
            s.mid_servers.iter().filter(|m| m.is_down() && !held_back.contains(&m.sys_id)).collect();
        let down_mid_users = users_on(s, &down_mid_servers);
        let up: Vec<&MidServer> = s.mid_servers.iter().filter(|m| m.is_up()).collect();
        let mut up_mid_users = users_on(s, &up);
        up_mid_users.retain(|k, _| !down_mid_users.contains_key(k));
        let configured: BTreeSet<UserKey> = s.mid_user_configs.iter().map(|c| UserKey::of(&c.user_name)).collect();
        let unassociated = role_users.keys().filter(|u| !configured.contains(*u)).cloned().collect();
        Population { role_users, down_mid_users, configured, unassociated, down_mid_servers, up_mid_users }
    }

    /// U = B ∪ D: the users whose login events decide a finding, each with the name its finding carries (the
    /// configured name for a user of down MID Servers, the record's for the others, as the built-in job names
    /// them). Users configured only on Up MID Servers are never examined.
    pub(crate) fn to_check(&self) -> BTreeMap<UserKey, &'a str> {
        let on_down = self.down_mid_users.iter().map(|(k, u)| (k.clone(), u.name));
        let unassociated = self.unassociated.iter().filter_map(|k| Some((k.clone(), self.role_users.get(k)?.name)));
        on_down.chain(unassociated).collect()
    }
}

/// The users configured on `mids`, each with those of `mids` it is configured on.
pub(crate) fn users_on<'a>(s: &'a Snapshot, mids: &[&'a MidServer]) -> BTreeMap<UserKey, OnMids<'a>> {
    let mut users: BTreeMap<UserKey, OnMids<'a>> = BTreeMap::new();
    for cfg in &s.mid_user_configs {
        if let Some(mid) = mids.iter().find(|m| cfg.mid_server.as_ref() == Some(&m.sys_id)) {
            let name = cfg.user_name.as_str();
            let user = users.entry(UserKey::of(name)).or_insert_with(|| OnMids { name, mid_servers: Vec::new() });
            user.name = user.name.min(name);
            if !user.mid_servers.iter().any(|m| m.sys_id == mid.sys_id) {
                user.mid_servers.push(mid);
            }
        }
    }
    users
}
