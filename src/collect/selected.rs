//! The first rounds of a selected check (`check --user`, `--mid-server`): only what the selected users need.
//!
//! Instead of every holder of `mid_server`, every MID Server and every configuration, it reads (1) the
//! `mid_server` role, the named MID Servers and the named users; (2) the users configured on those MID
//! Servers; (3) every MID Server configuration of all those users, so that a user's down MID Servers are
//! counted as the built-in job counts them; (4) those MID Servers, which of the users hold `mid_server`,
//! and what the role contains. The third round of [`collect`](super::collect) is then the same as for
//! a check of everyone. Names match as the instance's queries match them, without regard to case.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    MID_SERVERS, MID_USER_CONFIGS, MID_USER_PARAM_VALUE, NAME, PARAM_NAME, ROLE_FIELD, USER_FIELD, USER_NAME,
    USER_ROLES, USERS, mid_server, mid_server_role_id, mid_user_config, read_each, user_account, with_role,
};
use crate::domain::{
    KnownNames, MidServer, MidUserConfig, ResolvedSelection, Selection, Snapshot, SysId, UserAccount, UserKey,
    same_name,
};
use crate::snow::query::{Field, SYS_ID, ValueLookup, sys_ids_in};
use crate::snow::{ApiError, Client, Query};

const ECC_AGENT: Field = Field::new("ecc_agent");
const VALUE: Field = Field::new("value");

/// The snapshot's roles, users, MID Servers and configurations, for the selected users only, with the
/// selection as resolved (names that matched nothing included).
pub(super) async fn base(client: &Client, selection: &Selection) -> Result<Snapshot, ApiError> {
    let named_mids = ValueLookup::plan(selection.mid_servers.iter().map(String::as_str));
    let (role_id, mids, named_users) = tokio::try_join!(
        mid_server_role_id(client),
        mid_servers_where(client, named_mids.conditions(NAME)),
        users_named(client, &selection.users),
    )?;
    let named = |m: &MidServer| selection.mid_servers.iter().any(|n| same_name(n, &m.name));
    let mut mids: Vec<MidServer> = mids.into_iter().filter(named).collect();

    let mid_ids: BTreeSet<SysId> = mids.iter().map(|m| m.sys_id.clone()).collect();
    let on_mids = configs_where(client, sys_ids_in(ECC_AGENT, &mid_ids)).await?;
    // Each user once, as `--user` spelled it, else as its MID Server's configuration does.
    let mut names: BTreeMap<UserKey, String> = selection.users.iter().map(|u| (UserKey::of(u), u.clone())).collect();
    for c in on_mids.iter().filter(|c| c.mid_server.as_ref().is_some_and(|id| mid_ids.contains(id))) {
        names.entry(UserKey::of(&c.user_name)).or_insert_with(|| c.user_name.to_string());
    }

    let more: BTreeSet<String> =
        names.values().filter(|n| !selection.users.iter().any(|u| same_name(u, n))).cloned().collect();
    let lookup = ValueLookup::plan(names.values().map(String::as_str));
    let (configs, more_users) =
        tokio::try_join!(configs_where(client, lookup.conditions(VALUE)), users_named(client, &more))?;
    let configs: Vec<MidUserConfig> =
        configs.into_iter().filter(|c| names.contains_key(&UserKey::of(&c.user_name))).collect();
    let users: BTreeMap<SysId, UserAccount> =
        named_users.into_iter().chain(more_users).map(|u| (u.sys_id.clone(), u)).collect();

    let unread: BTreeSet<SysId> = configs
        .iter()
        .filter_map(|c| c.mid_server.clone())
        .filter(|id| !mids.iter().any(|m| &m.sys_id == id))
        .collect();
    let user_ids: BTreeSet<SysId> = users.keys().cloned().collect();
    let role = with_role(client, role_id.as_ref(), |id| holders_among(client, id, &user_ids));
    let (more_mids, (mid_server_role, role_holders)) =
        tokio::try_join!(mid_servers_where(client, sys_ids_in(SYS_ID, &unread)), role)?;
    mids.extend(more_mids.into_iter().filter(|m| unread.contains(&m.sys_id)));

    let holders: BTreeSet<UserKey> =
        role_holders.iter().filter_map(|id| users.get(id)).map(|u| UserKey::of(&u.user_name)).collect();
    let configured: BTreeSet<UserKey> = configs.iter().map(|c| UserKey::of(&c.user_name)).collect();
    let unknown_users = selection
        .users
        .iter()
        .filter(|u| !holders.contains(&UserKey::of(u)) && !configured.contains(&UserKey::of(u)))
        .cloned()
        .collect();
    let unknown_mid_servers =
        selection.mid_servers.iter().filter(|n| !mids.iter().any(|m| same_name(&m.name, n))).cloned().collect();
    let selected = ResolvedSelection {
        requested: selection.clone(),
        users: names.into_values().collect(),
        unknown_users,
        unknown_mid_servers,
        known: KnownNames::default(),
    };
    Ok(Snapshot {
        mid_server_role,
        role_holders,
        users,
        mid_servers: mids,
        mid_user_configs: configs,
        selected: Some(selected),
        ..Snapshot::default()
    })
}

/// For a selection with a name the instance does not know: the names it knows, for "did you mean" (every
/// user that holds `mid_server` or is configured on a MID Server, every MID Server), read as a check of
/// everyone reads them — only on this way to a usage error. Without them (a read failed) the error stands.
pub(super) async fn known_names(client: &Client, snapshot: &mut Snapshot) {
    let Some(selected) = snapshot.selected.as_mut().filter(|s| s.unknown().is_some()) else { return };
    let Ok(everyone) = super::everyone(client).await else { return };
    let holders = everyone.role_holders.iter().filter_map(|id| everyone.users.get(id)).map(|u| u.user_name.to_string());
    let configured = everyone.mid_user_configs.iter().map(|c| c.user_name.to_string());
    selected.known = KnownNames {
        users: holders.chain(configured).collect(),
        mid_servers: everyone.mid_servers.iter().map(|m| m.name.clone()).collect(),
    };
}

/// `ecc_agent` rows matching any of `conditions` (the caller keeps the exact matches).
async fn mid_servers_where(client: &Client, conditions: Vec<Query>) -> Result<Vec<MidServer>, ApiError> {
    Ok(read_each(client, MID_SERVERS, conditions).await?.iter().filter_map(mid_server).collect())
}

/// The MID Server user configurations matching any of `conditions`.
async fn configs_where(client: &Client, conditions: Vec<Query>) -> Result<Vec<MidUserConfig>, ApiError> {
    let param = Query::new().eq(PARAM_NAME, &MID_USER_PARAM_VALUE);
    let conditions = conditions.into_iter().map(|c| c.and(&param)).collect();
    Ok(read_each(client, MID_USER_CONFIGS, conditions).await?.iter().filter_map(mid_user_config).collect())
}

/// The `sys_user` rows named `names`, in any case.
async fn users_named(client: &Client, names: &BTreeSet<String>) -> Result<Vec<UserAccount>, ApiError> {
    let lookup = ValueLookup::plan(names.iter().map(String::as_str));
    let rows = read_each(client, USERS, lookup.conditions(USER_NAME)).await?;
    let keys: BTreeSet<UserKey> = names.iter().map(|n| UserKey::of(n)).collect();
    Ok(rows.iter().filter_map(user_account).filter(|u| keys.contains(&UserKey::of(&u.user_name))).collect())
}

/// Which of `user_ids` hold the role `role_id` (inherited rows included).
async fn holders_among(
    client: &Client,
    role_id: &SysId,
    user_ids: &BTreeSet<SysId>,
) -> Result<BTreeSet<SysId>, ApiError> {
    let role = Query::new().eq(ROLE_FIELD, &role_id.into());
    let conditions = sys_ids_in(USER_FIELD, user_ids).into_iter().map(|c| c.and(&role)).collect();
    let rows = read_each(client, USER_ROLES, conditions).await?;
    Ok(rows
        .iter()
        .filter(|r| r.text("role") == role_id.as_str())
        .filter_map(|r| r.sys_id("user"))
        .filter(|u| user_ids.contains(u))
        .collect())
}
