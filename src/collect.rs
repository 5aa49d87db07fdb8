//! Reads the instance into a [`Snapshot`], in two steps with the cycle's "now" between them.
//!
//! Three rounds, each read concurrently: (1) the `mid_server` role, the MID Servers and their
//! configured users; (2) who holds the role (with their `sys_user` fields, dot-walked) and what it
//! contains — these two are `base`, which needs no window. The cycle then takes "now" from the `Date` header
//! of those answers (`cycle/clock.rs`) and makes the window; `in_window` lets the pure `Population` decide
//! whom to check, and (3) reads only those users' roles, latest login event (`collect/latest/mod.rs`) and
//! (optional) login history — with `early_warnings` set on the snapshot, also the latest login event of the
//! users of Up MID Servers that had a login refused in the window (one count of refusals finds them, so their
//! successful logins cost nothing), by the same bounded plan. A selected check
//! (`--user`, `--mid-server`) replaces the first two rounds with reads of the selected users' rows only
//! (`collect/selected.rs`); the third is the same.

mod latest;
mod selected;

use std::collections::{BTreeMap, BTreeSet};

use futures::future::try_join_all;

use crate::domain::{
    LoginHistory, LoginHistoryEntry, MidServer, MidServerRole, MidServerStatus, MidUserConfig, Population, Scope,
    SkippedUser, Snapshot, SysId, UserAccount, UserKey, UserName, Window,
};
use crate::snow::query::{Field, QueryValue, SYS_CREATED_ON, SYS_ID, ValueLookup, sys_ids_in};
use crate::snow::{ApiError, ApiErrorKind, Client, PageRequest, Query, Row};

pub(crate) use latest::BATCH_READS;
pub use latest::LIGHT;

/// One kind of read a cycle makes: a table and the fields it asks for. Every read of `collect` goes through
/// one of these, and [`READS`] lists them all for `config check` to prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Read {
    pub(crate) table: &'static str,
    pub(crate) fields: &'static [&'static str],
}

/// The `param_name` of the `ecc_agent_config` row that holds a MID Server's user.
pub(crate) const MID_USER_PARAM: &str = "mid.instance.username";
/// The optional Identity Center table.
pub(crate) const LOGIN_HISTORY_TABLE: &str = "sys_user_login_history";

const ROLE: Read = Read { table: "sys_user_role", fields: &["sys_id", "name"] };
const ROLE_CONTAINS: Read = Read { table: "sys_user_role_contains", fields: &["role", "contains"] };
const MID_SERVERS: Read = Read {
    table: "ecc_agent",
    fields: &["sys_id", "name", "status", "last_refreshed", "ip_address", "host_name", "user_name"],
};
const MID_USER_CONFIGS: Read =
    Read { table: "ecc_agent_config", fields: &["ecc_agent", "param_name", "value", "sys_domain"] };
const USERS: Read = Read {
    table: "sys_user",
    fields: &["sys_id", "user_name", "active", "locked_out", "sys_domain", "last_login_time", "failed_attempts"],
};
/// The role rows with their user's fields, dot-walked (docs/servicenow.md §3), saving a `sys_user` read
/// per 100 holders.
const HOLDERS: Read = Read {
    table: "sys_user_has_role",
    fields: &[
        "user",
        "role",
        "user.user_name",
        "user.active",
        "user.locked_out",
        "user.sys_domain",
        "user.last_login_time",
        "user.failed_attempts",
    ],
};
const USER_ROLES: Read = Read { table: "sys_user_has_role", fields: &["user", "role"] };
/// Read only where Identity Center is installed; its absence is not an error.
pub(crate) const LOGIN_HISTORY: Read = Read {
    table: LOGIN_HISTORY_TABLE,
    fields: &["user", "status", "login_failure_reason", "ip_address", "sys_created_on"],
};

/// Every read a cycle makes of the instance's tables (the optional [`LOGIN_HISTORY`] aside, and
/// `ecc_agent_issue`, which `writeback` reads).
pub(crate) const READS: &[Read] =
    &[ROLE, ROLE_CONTAINS, HOLDERS, USER_ROLES, USERS, MID_SERVERS, MID_USER_CONFIGS, latest::EVENTS];

const NAME: Field = Field::new("name");
const PARAM_NAME: Field = Field::new("param_name");
const ROLE_FIELD: Field = Field::new("role");
const USER_FIELD: Field = Field::new("user");
const USER_NAME: Field = Field::new("user_name");
const MID_SERVER_ROLE: QueryValue = QueryValue::fixed("mid_server");
const MID_USER_PARAM_VALUE: QueryValue = QueryValue::fixed(MID_USER_PARAM);

/// Role containment is shallow in practice (mid_server → soap → soap_*); this bounds a cyclic graph.
const MAX_ROLE_DEPTH: usize = 10;

/// Everything the rules need for a `window` already chosen: `base`, then `in_window` (a cycle takes its
/// window's end from the instance between the two), for every user the built-in job checks or for a selection,
/// and for the early warnings (a cycle reads for them as `[check] early_warnings` says).
pub async fn collect(client: &Client, window: &Window, scope: &Scope) -> Result<Snapshot, ApiError> {
    let mut snapshot = base(client, scope).await?;
    snapshot.early_warnings = true;
    if snapshot.selected.as_ref().is_some_and(|s| s.unknown().is_some()) {
        // A name matched nothing: the check stops there, with a usage error.
        return Ok(snapshot);
    }
    in_window(client, snapshot, window).await
}

/// The first two rounds, which need no window: the role, the MID Servers and their users, who holds the role
/// (everyone the built-in job checks), or the selected users' rows. A selection that names nobody on the
/// instance says so in `selected` (`ResolvedSelection::unknown`, with the names the instance knows for "did
/// you mean"); nothing more should be read then.
pub(crate) async fn base(client: &Client, scope: &Scope) -> Result<Snapshot, ApiError> {
    match scope {
        Scope::All => everyone(client).await,
        Scope::Only(selection) => {
            let mut snapshot = selected::base(client, selection).await?;
            selected::known_names(client, &mut snapshot).await;
            Ok(snapshot)
        }
    }
}

/// The third round on `base`'s snapshot: what the rules need of `window` for the users to check.
pub(crate) async fn in_window(client: &Client, mut snapshot: Snapshot, window: &Window) -> Result<Snapshot, ApiError> {
    snapshot.read_from = Some(window.start);
    snapshot.read_until = Some(window.end);

    let selected = snapshot.selected.as_ref();
    let covered = |users: BTreeMap<UserKey, &str>| -> BTreeMap<UserKey, String> {
        users
            .into_iter()
            .filter(|(key, _)| selected.is_none_or(|s| s.covers(key)))
            .map(|(key, name)| (key, name.to_string()))
            .collect()
    };
    let population = Population::of(&snapshot);
    // Roles and login history are evidence of findings: read for the users judged for findings only. The
    // latest events are read for the users of Up MID Servers too when early warnings are on, those with a
    // refused login in the window only.
    let to_check = covered(population.to_check());
    let up_only: Vec<String> = if snapshot.early_warnings {
        covered(population.up_mid_users.iter().map(|(k, u)| (k.clone(), u.name)).collect()).into_values().collect()
    } else {
        Vec::new()
    };
    let checked_ids: BTreeSet<SysId> = snapshot
        .users
        .values()
        .filter(|u| to_check.contains_key(&UserKey::of(&u.user_name)))
        .map(|u| u.sys_id.clone())
        .collect();
    // A selected check (and a watch, whose later rounds read only the newer events) reads its few users of Up MID
    // Servers whole: a successful login after a refusal must be seen.
    let whole = snapshot.selected.is_some();
    let (roles, events, login_history) = tokio::try_join!(
        user_roles(client, &checked_ids),
        events(client, window, to_check.into_values().collect(), up_only, whole),
        login_history(client, window, &checked_ids),
    )?;
    let mut roles = roles;
    for id in &checked_ids {
        if let Some(u) = snapshot.users.get_mut(id) {
            // A checked user with no row in sys_user_has_role holds no role at all.
            u.roles = Some(roles.remove(id).unwrap_or_default());
        }
    }
    snapshot.login_events = events.read.events;
    snapshot.event_activity = events.read.activity;
    snapshot.login_history = login_history;
    snapshot.skipped_users = events.skipped;
    snapshot.up_users_uncounted = events.uncounted;
    Ok(snapshot)
}

/// The latest login events `events` read, and of whom it could not.
struct Events {
    read: latest::LoginActivity,
    /// The names no query can hold.
    skipped: Vec<SkippedUser>,
    /// Users of Up MID Servers not asked about refusals (no Aggregate API).
    uncounted: usize,
}

/// The latest login events of the `checked` users and, for the early warnings, of the users of Up MID Servers
/// `up`: all of them when `whole`, else only those with a refused login in the window, found by one count beside
/// the checked users' reads (their successful logins, however many, cost nothing).
async fn events(
    client: &Client,
    window: &Window,
    checked: Vec<String>,
    up: Vec<String>,
    whole: bool,
) -> Result<Events, ApiError> {
    let read = |users: Vec<String>| async move {
        let lookup = ValueLookup::plan(users.iter().map(String::as_str));
        let read = latest::latest_login_events(client, window, &lookup, &users).await?;
        Ok::<_, ApiError>(Events { read, skipped: lookup.refused, uncounted: 0 })
    };
    if whole {
        return read(checked.into_iter().chain(up).collect()).await;
    }
    let (mut events, refused) = tokio::try_join!(read(checked), latest::refused_among(client, window, &up))?;
    events.uncounted = refused.uncounted;
    if !refused.users.is_empty() {
        let more = read(refused.users).await?;
        events.read.events.extend(more.read.events);
        events.read.activity.extend(more.read.activity);
        events.skipped.extend(more.skipped);
    }
    Ok(events)
}

/// The first two rounds for everyone: the role, every MID Server and configuration, who holds the role.
async fn everyone(client: &Client) -> Result<Snapshot, ApiError> {
    let (role_id, mid_servers, mid_user_configs) =
        tokio::try_join!(mid_server_role_id(client), mid_servers(client), mid_user_configs(client))?;

    let (mid_server_role, (role_holders, holder_accounts)) =
        with_role(client, role_id.as_ref(), |id| role_holders(client, id)).await?;

    let mut snapshot = Snapshot { mid_server_role, role_holders, mid_servers, mid_user_configs, ..Snapshot::default() };
    snapshot.users = users(client, &snapshot, holder_accounts).await?;
    Ok(snapshot)
}

/// The `mid_server` role (`role_id`) with what it contains, read beside its `holders`; without the role,
/// none and no holders, as the built-in job logs it.
async fn with_role<'a, H: Default, F: Future<Output = Result<H, ApiError>>>(
    client: &Client,
    role_id: Option<&'a SysId>,
    holders: impl FnOnce(&'a SysId) -> F,
) -> Result<(Option<MidServerRole>, H), ApiError> {
    match role_id {
        Some(id) => {
            let (contains, holders) = tokio::try_join!(role_containment(client, id), holders(id))?;
            Ok((Some(MidServerRole { sys_id: id.clone(), contains }), holders))
        }
        None => {
            tracing::warn!("MIDUserConnectivity: mid_server role NOT defined");
            Ok((None, H::default()))
        }
    }
}

async fn read(client: &Client, read: Read, query: &Query) -> Result<Vec<Row>, ApiError> {
    client.read_all(read.table, query, read.fields).await
}

async fn mid_server_role_id(client: &Client) -> Result<Option<SysId>, ApiError> {
    let rows = read(client, ROLE, &Query::new().eq(NAME, &MID_SERVER_ROLE)).await?;
    Ok(rows.iter().find(|r| r.text("name") == MID_SERVER_ROLE.as_str()).and_then(|r| r.sys_id("sys_id")))
}

async fn mid_servers(client: &Client) -> Result<Vec<MidServer>, ApiError> {
    let rows = read(client, MID_SERVERS, &Query::new()).await?;
    Ok(rows.iter().filter_map(mid_server).collect())
}

fn mid_server(r: &Row) -> Option<MidServer> {
    Some(MidServer {
        sys_id: r.sys_id("sys_id")?,
        name: r.text("name"),
        status: MidServerStatus::parse(&r.text("status")),
        last_refreshed: r.time("last_refreshed"),
        ip_address: r.text("ip_address"),
        host_name: r.text("host_name"),
        logged_in_user: Some(r.text("user_name")).filter(|u| !u.is_empty()).map(UserName::new),
    })
}

async fn mid_user_configs(client: &Client) -> Result<Vec<MidUserConfig>, ApiError> {
    let rows = read(client, MID_USER_CONFIGS, &Query::new().eq(PARAM_NAME, &MID_USER_PARAM_VALUE)).await?;
    Ok(rows.iter().filter_map(mid_user_config).collect())
}

/// A MID Server's configured user; `None` for another parameter or an empty value.
fn mid_user_config(r: &Row) -> Option<MidUserConfig> {
    if r.text("param_name") != MID_USER_PARAM {
        return None;
    }
    let user_name = r.text("value");
    (!user_name.is_empty()).then(|| MidUserConfig {
        mid_server: r.sys_id("ecc_agent"),
        user_name: UserName::new(user_name),
        sys_domain: r.reference("sys_domain"),
    })
}

/// The holders of `role_id`, and the `sys_user` fields of those the instance dot-walked.
async fn role_holders(
    client: &Client,
    role_id: &SysId,
) -> Result<(BTreeSet<SysId>, BTreeMap<SysId, UserAccount>), ApiError> {
    let rows = read(client, HOLDERS, &Query::new().eq(ROLE_FIELD, &role_id.into())).await?;
    let mut holders = BTreeSet::new();
    let mut accounts = BTreeMap::new();
    for r in rows.iter().filter(|r| r.text("role") == role_id.as_str()) {
        let Some(user) = r.sys_id("user") else { continue };
        // A dot-walked field the account may not read, or a dangling reference, is absent or empty:
        // that user is read from sys_user by sys_id instead.
        let user_name = r.text("user.user_name");
        if !user_name.is_empty() && r.0.contains_key("user.active") {
            let account = UserAccount {
                sys_id: user.clone(),
                user_name: UserName::new(user_name),
                active: r.flag("user.active"),
                locked_out: r.flag("user.locked_out"),
                sys_domain: r.reference("user.sys_domain"),
                last_login_time: r.time("user.last_login_time"),
                failed_attempts: attempts(r, "user.failed_attempts"),
                roles: None,
            };
            accounts.insert(user.clone(), account);
        }
        holders.insert(user);
    }
    Ok((holders, accounts))
}

/// Every role `mid_server` contains, transitively, by sys_id → name.
async fn role_containment(client: &Client, role_id: &SysId) -> Result<BTreeMap<SysId, String>, ApiError> {
    let mut seen: BTreeSet<SysId> = BTreeSet::from([role_id.clone()]);
    let mut frontier = vec![role_id.clone()];
    for _ in 0..MAX_ROLE_DEPTH {
        if frontier.is_empty() {
            break;
        }
        let rows = read_each(client, ROLE_CONTAINS, sys_ids_in(ROLE_FIELD, &frontier)).await?;
        let parents: BTreeSet<&SysId> = frontier.iter().collect();
        frontier = rows
            .iter()
            .filter(|r| r.sys_id("role").is_some_and(|p| parents.contains(&p)))
            .filter_map(|r| r.sys_id("contains"))
            .filter(|c| seen.insert(c.clone()))
            .collect();
    }
    seen.remove(role_id);
    let rows = read_each(client, ROLE, sys_ids_in(SYS_ID, &seen)).await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.sys_id("sys_id")?, r.text("name"))))
        .filter(|(id, _)| seen.contains(id))
        .collect())
}

/// `sys_user` rows of the role holders (by sys_id, unless `known` from the dot-walk) and of the
/// configured MID users (by name).
async fn users(
    client: &Client,
    s: &Snapshot,
    known: BTreeMap<SysId, UserAccount>,
) -> Result<BTreeMap<SysId, UserAccount>, ApiError> {
    let unknown: BTreeSet<&SysId> = s.role_holders.iter().filter(|id| !known.contains_key(*id)).collect();
    let by_id = read_each(client, USERS, sys_ids_in(SYS_ID, unknown.iter().copied())).await?;
    let mut users = known;
    users.extend(
        by_id.iter().filter_map(user_account).filter(|u| unknown.contains(&u.sys_id)).map(|u| (u.sys_id.clone(), u)),
    );

    // A configured name is its user's whatever its case (the instance's query on it ignores case): one read each.
    let known: BTreeSet<UserKey> = users.values().map(|u| UserKey::of(&u.user_name)).collect();
    let mut wanted: BTreeMap<UserKey, &str> = BTreeMap::new();
    for name in s.mid_user_configs.iter().map(|c| c.user_name.as_str()) {
        let key = UserKey::of(name);
        if !known.contains(&key) {
            wanted.entry(key).or_insert(name);
        }
    }
    let lookup = ValueLookup::plan(wanted.values().copied());
    let by_name = read_each(client, USERS, lookup.conditions(USER_NAME)).await?;
    // The name conditions may select a superset (prefix queries): keep the wanted names only.
    for u in by_name.iter().filter_map(user_account).filter(|u| wanted.contains_key(&UserKey::of(&u.user_name))) {
        users.insert(u.sys_id.clone(), u);
    }
    Ok(users)
}

fn user_account(r: &Row) -> Option<UserAccount> {
    Some(UserAccount {
        sys_id: r.sys_id("sys_id")?,
        user_name: UserName::new(r.text("user_name")),
        active: r.flag("active"),
        locked_out: r.flag("locked_out"),
        sys_domain: r.reference("sys_domain"),
        last_login_time: r.time("last_login_time"),
        failed_attempts: attempts(r, "failed_attempts"),
        roles: None,
    })
}

/// `failed_attempts`: absent, empty or not a number (an older release, an ACL) is `None`, never 0.
fn attempts(r: &Row, field: &str) -> Option<u32> {
    r.text(field).trim().parse().ok()
}

/// The roles each of `user_ids` holds, inherited rows included.
async fn user_roles(client: &Client, user_ids: &BTreeSet<SysId>) -> Result<BTreeMap<SysId, BTreeSet<SysId>>, ApiError> {
    let rows = read_each(client, USER_ROLES, sys_ids_in(USER_FIELD, user_ids)).await?;
    let mut roles: BTreeMap<SysId, BTreeSet<SysId>> = BTreeMap::new();
    for r in &rows {
        if let (Some(user), Some(role)) = (r.sys_id("user"), r.sys_id("role"))
            && user_ids.contains(&user)
        {
            roles.entry(user).or_default().insert(role);
        }
    }
    Ok(roles)
}

/// Identity Center's login history of `user_ids` inside the window; its absence is not an error.
async fn login_history(client: &Client, window: &Window, user_ids: &BTreeSet<SysId>) -> Result<LoginHistory, ApiError> {
    let range = Query::new().within(SYS_CREATED_ON, window.start, window.end);
    let mut conditions: Vec<Query> = sys_ids_in(USER_FIELD, user_ids).into_iter().map(|c| c.and(&range)).collect();
    // The first read tells whether the table exists (it runs beside the latest events' reads, so waiting for
    // it costs no time): where it does not, one request is spent on it rather than one per chunk.
    let rest = conditions.split_off(conditions.len().min(1));
    let read = async {
        let mut rows = read_each(client, LOGIN_HISTORY, conditions).await?;
        rows.extend(read_each(client, LOGIN_HISTORY, rest).await?);
        Ok::<_, ApiError>(rows)
    };
    match read.await {
        Ok(rows) => Ok(LoginHistory::Rows(
            rows.iter()
                .filter_map(|r| {
                    Some(LoginHistoryEntry {
                        user: r.sys_id("user")?,
                        status: r.text("status"),
                        failure_reason: r.text("login_failure_reason"),
                        ip_address: r.text("ip_address"),
                        created_on: r.time("sys_created_on")?,
                    })
                })
                .collect(),
        )),
        Err(e) if matches!(e.kind(), ApiErrorKind::InvalidTable) => {
            tracing::info!(
                "{LOGIN_HISTORY_TABLE} does not exist (Identity Center not installed); continuing without it"
            );
            Ok(LoginHistory::Absent)
        }
        Err(e) if matches!(e.kind(), ApiErrorKind::Forbidden { .. }) => Ok(LoginHistory::Unreadable(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Runs one read per condition (each an IN-list chunk or a prefix) and concatenates the rows. Many
/// conditions go through the Batch API together (spread over `[instance] concurrency` calls), first pages only; a condition
/// whose sub-request failed, or whose page is not all there is, is read directly.
async fn read_each(client: &Client, r: Read, conditions: Vec<Query>) -> Result<Vec<Row>, ApiError> {
    let limit = client.page_size();
    let request = |c: &Query| PageRequest {
        table: r.table.into(),
        query: c.clone(),
        fields: r.fields.iter().map(|f| f.to_string()).collect(),
        limit,
    };
    let per_call = client.batch_share(conditions.len(), BATCH_READS);
    let first_pages = client
        .in_batches(&conditions, per_call, |group| {
            let requests: Vec<PageRequest> = group.iter().map(request).collect();
            async move { client.batch_get_pages(&requests).await }
        })
        .await?;
    let reads = conditions.iter().zip(first_pages).map(|(c, page)| async move {
        match page {
            Some(page) if !page.more => Ok(page.rows),
            _ => read(client, r, c).await,
        }
    });
    Ok(try_join_all(reads).await?.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `config check` probes [`READS`]: every `Read` collect defines must be in it (or be the optional
    /// login history), so the probe cannot drift from what a cycle reads.
    #[test]
    fn every_read_of_collect_is_one_config_check_probes() {
        let sources = [
            include_str!("collect.rs"),
            include_str!("collect/latest/mod.rs"),
            include_str!("collect/latest/count.rs"),
            include_str!("collect/latest/reads.rs"),
            include_str!("collect/latest/fold.rs"),
        ];
        let defined: Vec<&str> = sources
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| l.trim_start().trim_start_matches("pub(crate) ").strip_prefix("const "))
            .filter_map(|l| l.split_once(": Read ="))
            .map(|(name, _)| name)
            .collect();
        assert!(defined.len() >= READS.len(), "{defined:?}");
        let listed = ["ROLE", "ROLE_CONTAINS", "HOLDERS", "USER_ROLES", "USERS", "MID_SERVERS", "MID_USER_CONFIGS"];
        for name in &defined {
            assert!(
                listed.contains(name) || ["EVENTS", "LOGIN_HISTORY"].contains(name),
                "{name} is read by collect but not probed by config check: add it to READS"
            );
        }
        // The listed names are READS itself, in order (latest::EVENTS last).
        let reads = [ROLE, ROLE_CONTAINS, HOLDERS, USER_ROLES, USERS, MID_SERVERS, MID_USER_CONFIGS, latest::EVENTS];
        assert_eq!(READS, reads);
        assert!(READS.iter().any(|r| r.fields.contains(&"user.failed_attempts")), "dot-walked fields are probed");
    }
}
