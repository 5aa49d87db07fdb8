//! Whom the built-in job checks (docs/servicenow.md §1 items 2–4): the sets derived from a snapshot's roles,
//! users, MID Servers and configuration, shared by `collect` (whose events to read) and `evaluate` (whom to
//! judge).

use std::collections::{BTreeMap, BTreeSet};

use super::{MidServer, Snapshot, SysId};

/// The sets of the built-in job (docs/servicenow.md §1 items 2–4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Population<'a> {
    /// A: active users holding `mid_server`, by user name → sys_domain.
    pub(crate) role_users: BTreeMap<&'a str, Option<&'a str>>,
    /// B: users configured on down MID Servers → those MID Servers (each once).
    pub(crate) down_mid_users: BTreeMap<&'a str, Vec<&'a MidServer>>,
    /// C: every configured MID user, whatever the MID Server's status.
    pub(crate) configured: BTreeSet<&'a str>,
    /// D = A − C.
    pub(crate) unassociated: BTreeSet<&'a str>,
    pub(crate) down_mid_servers: Vec<&'a MidServer>,
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
                    role_users.insert(u.user_name.as_str(), u.sys_domain.as_deref());
                }
            }
        }
        let down_mid_servers: Vec<&MidServer> =
            s.mid_servers.iter().filter(|m| m.is_down() && !held_back.contains(&m.sys_id)).collect();
        let mut down_mid_users: BTreeMap<&str, Vec<&MidServer>> = BTreeMap::new();
        for cfg in &s.mid_user_configs {
            if let Some(mid) = down_mid_servers.iter().find(|m| cfg.mid_server.as_ref() == Some(&m.sys_id)) {
                let mids = down_mid_users.entry(cfg.user_name.as_str()).or_default();
                if !mids.iter().any(|m| m.sys_id == mid.sys_id) {
                    mids.push(mid);
                }
            }
        }
        let configured: BTreeSet<&str> = s.mid_user_configs.iter().map(|c| c.user_name.as_str()).collect();
        let unassociated = role_users.keys().copied().filter(|u| !configured.contains(u)).collect();
        Population { role_users, down_mid_users, configured, unassociated, down_mid_servers }
    }

    /// U = B ∪ D: the users whose login events decide a finding. Users configured only on Up MID
    /// Servers are never examined.
    pub(crate) fn to_check(&self) -> BTreeSet<&'a str> {
        self.down_mid_users.keys().chain(self.unassociated.iter()).copied().collect()
    }
}
