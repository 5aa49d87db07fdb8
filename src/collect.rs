//! Reads one window's data from the instance into a [`Snapshot`].
//!
//! Three rounds, each read concurrently: (1) the `mid_server` role, the MID Servers and their
//! configured users; (2) who holds the role (with their `sys_user` fields, dot-walked) and what it
//! contains; then the pure [`Population`] decides whom to check, and (3) reads only those users'
//! roles, latest login event (`collect/latest.rs`) and (optional) login history.

mod latest;

use std::collections::{BTreeMap, BTreeSet};

use futures::future::try_join_all;

use crate::domain::{
    LoginHistory, LoginHistoryEntry, MidServer, MidServerRole, MidServerStatus, MidUserConfig, Snapshot, SysId,
    UserAccount, Window, sn_time,
};
use crate::evaluate::Population;
use crate::snow::query::{ValueLookup, in_list};
use crate::snow::{ApiError, ApiErrorKind, Client, Row, join_query};

pub use latest::{BATCH_READS, EXACT_CHUNK, LIGHT};

/// The `param_name` of the `ecc_agent_config` row that holds a MID Server's user.
pub const MID_USER_PARAM: &str = "mid.instance.username";
/// The optional Identity Center table.
pub const LOGIN_HISTORY_TABLE: &str = "sys_user_login_history";

const USER_FIELDS: &[&str] =
    &["sys_id", "user_name", "active", "locked_out", "sys_domain", "last_login_time", "failed_attempts"];
/// The role rows with their user's fields, dot-walked (docs/servicenow.md §3), saving a `sys_user` read
/// per 100 holders.
const HOLDER_FIELDS: &[&str] = &[
    "user",
    "role",
    "user.user_name",
    "user.active",
    "user.locked_out",
    "user.sys_domain",
    "user.last_login_time",
    "user.failed_attempts",
];
/// Role containment is shallow in practice (mid_server → soap → soap_*); this bounds a cyclic graph.
const MAX_ROLE_DEPTH: usize = 10;

/// Reads everything the rules need for `window`.
pub async fn collect(client: &Client, window: &Window) -> Result<Snapshot, ApiError> {
    let (role_id, mid_servers, mid_user_configs) =
        tokio::try_join!(mid_server_role_id(client), mid_servers(client), mid_user_configs(client))?;

    let (mid_server_role, (role_holders, holder_accounts)) = match &role_id {
        Some(id) => {
            let (contains, holders) = tokio::try_join!(role_containment(client, id), role_holders(client, id))?;
            (Some(MidServerRole { sys_id: id.clone(), contains }), holders)
        }
        None => {
            tracing::warn!("MIDUserConnectivity: mid_server role NOT defined");
            (None, (BTreeSet::new(), BTreeMap::new()))
        }
    };

    let mut snapshot = Snapshot { mid_server_role, role_holders, mid_servers, mid_user_configs, ..Snapshot::default() };
    snapshot.users = users(client, &snapshot, holder_accounts).await?;

    let to_check: Vec<String> = Population::of(&snapshot).to_check().into_iter().map(str::to_string).collect();
    let checked_ids: BTreeSet<String> =
        snapshot.users.values().filter(|u| to_check.contains(&u.user_name)).map(|u| u.sys_id.clone()).collect();
    let events_lookup = ValueLookup::plan(to_check.iter().map(String::as_str));
    let (roles, login_events, login_history) = tokio::try_join!(
        user_roles(client, &checked_ids),
        latest::latest_login_events(client, window, &events_lookup, &to_check),
        login_history(client, window, &checked_ids),
    )?;
    let mut roles = roles;
    for id in &checked_ids {
        if let Some(u) = snapshot.users.get_mut(id) {
            // A checked user with no row in sys_user_has_role holds no role at all.
            u.roles = Some(roles.remove(id).unwrap_or_default());
        }
    }
    snapshot.login_events = login_events.events;
    snapshot.event_activity = login_events.activity;
    snapshot.login_history = login_history;
    snapshot.skipped_users = events_lookup.refused;
    Ok(snapshot)
}

async fn mid_server_role_id(client: &Client) -> Result<Option<String>, ApiError> {
    let rows = client.read_all("sys_user_role", "name=mid_server", &["sys_id", "name"]).await?;
    Ok(rows.iter().find(|r| r.text("name") == "mid_server").and_then(|r| r.reference("sys_id")))
}

async fn mid_servers(client: &Client) -> Result<Vec<MidServer>, ApiError> {
    let rows = client.read_all("ecc_agent", "", &["sys_id", "name", "status", "last_refreshed"]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(MidServer {
                sys_id: r.reference("sys_id")?,
                name: r.text("name"),
                status: MidServerStatus::parse(&r.text("status")),
                last_refreshed: r.time("last_refreshed"),
            })
        })
        .collect())
}

async fn mid_user_configs(client: &Client) -> Result<Vec<MidUserConfig>, ApiError> {
    let query = format!("param_name={MID_USER_PARAM}");
    let rows = client.read_all("ecc_agent_config", &query, &["ecc_agent", "param_name", "value", "sys_domain"]).await?;
    Ok(rows
        .iter()
        .filter(|r| r.text("param_name") == MID_USER_PARAM)
        .filter_map(|r| {
            let user_name = r.text("value");
            (!user_name.is_empty()).then(|| MidUserConfig {
                mid_server: r.reference("ecc_agent").unwrap_or_default(),
                user_name,
                sys_domain: r.reference("sys_domain"),
            })
        })
        .collect())
}

/// The holders of `role_id` (sys_ids), and the `sys_user` fields of those the instance dot-walked.
async fn role_holders(
    client: &Client,
    role_id: &str,
) -> Result<(BTreeSet<String>, BTreeMap<String, UserAccount>), ApiError> {
    let rows = client.read_all("sys_user_has_role", &format!("role={role_id}"), HOLDER_FIELDS).await?;
    let mut holders = BTreeSet::new();
    let mut accounts = BTreeMap::new();
    for r in rows.iter().filter(|r| r.text("role") == role_id) {
        let Some(user) = r.reference("user") else { continue };
        // A dot-walked field the account may not read, or a dangling reference, is absent or empty:
        // that user is read from sys_user by sys_id instead.
        let user_name = r.text("user.user_name");
        if !user_name.is_empty() && r.0.contains_key("user.active") {
            let account = UserAccount {
                sys_id: user.clone(),
                user_name,
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
async fn role_containment(client: &Client, role_id: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut seen: BTreeSet<String> = BTreeSet::from([role_id.to_string()]);
    let mut frontier = vec![role_id.to_string()];
    for _ in 0..MAX_ROLE_DEPTH {
        if frontier.is_empty() {
            break;
        }
        let rows =
            read_each(client, "sys_user_role_contains", in_list("role", &frontier), &["role", "contains"]).await?;
        let parents: BTreeSet<&String> = frontier.iter().collect();
        frontier = rows
            .iter()
            .filter(|r| r.reference("role").is_some_and(|p| parents.contains(&p)))
            .filter_map(|r| r.reference("contains"))
            .filter(|c| seen.insert(c.clone()))
            .collect();
    }
    seen.remove(role_id);
    let rows = read_each(client, "sys_user_role", in_list("sys_id", &seen), &["sys_id", "name"]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.reference("sys_id")?, r.text("name"))))
        .filter(|(id, _)| seen.contains(id))
        .collect())
}

/// `sys_user` rows of the role holders (by sys_id, unless `known` from the dot-walk) and of the
/// configured MID users (by name).
async fn users(
    client: &Client,
    s: &Snapshot,
    known: BTreeMap<String, UserAccount>,
) -> Result<BTreeMap<String, UserAccount>, ApiError> {
    let unknown: BTreeSet<&String> = s.role_holders.iter().filter(|id| !known.contains_key(*id)).collect();
    let by_id = read_each(client, "sys_user", in_list("sys_id", unknown.iter().copied()), USER_FIELDS).await?;
    let mut users = known;
    users.extend(
        by_id.iter().filter_map(user_account).filter(|u| unknown.contains(&u.sys_id)).map(|u| (u.sys_id.clone(), u)),
    );

    let known: BTreeSet<&str> = users.values().map(|u| u.user_name.as_str()).collect();
    let wanted: BTreeSet<&str> =
        s.mid_user_configs.iter().map(|c| c.user_name.as_str()).filter(|n| !known.contains(n)).collect();
    let lookup = ValueLookup::plan(wanted.iter().copied());
    let by_name = read_each(client, "sys_user", lookup.conditions("user_name"), USER_FIELDS).await?;
    // The name conditions may select a superset (prefix queries): keep exact matches only.
    for u in by_name.iter().filter_map(user_account).filter(|u| wanted.contains(u.user_name.as_str())) {
        users.insert(u.sys_id.clone(), u);
    }
    Ok(users)
}

fn user_account(r: &Row) -> Option<UserAccount> {
    Some(UserAccount {
        sys_id: r.reference("sys_id")?,
        user_name: r.text("user_name"),
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

/// The roles (sys_ids) each of `user_ids` holds, inherited rows included.
async fn user_roles(
    client: &Client,
    user_ids: &BTreeSet<String>,
) -> Result<BTreeMap<String, BTreeSet<String>>, ApiError> {
    let rows = read_each(client, "sys_user_has_role", in_list("user", user_ids), &["user", "role"]).await?;
    let mut roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &rows {
        if let (Some(user), Some(role)) = (r.reference("user"), r.reference("role"))
            && user_ids.contains(&user)
        {
            roles.entry(user).or_default().insert(role);
        }
    }
    Ok(roles)
}

/// Identity Center's login history of `user_ids` inside the window; its absence is not an error.
async fn login_history(
    client: &Client,
    window: &Window,
    user_ids: &BTreeSet<String>,
) -> Result<LoginHistory, ApiError> {
    let range =
        format!("sys_created_on>{}^sys_created_on<={}", sn_time::format(window.start), sn_time::format(window.end));
    let conditions: Vec<String> = in_list("user", user_ids).iter().map(|c| join_query(&[c, &range])).collect();
    let fields = &["user", "status", "login_failure_reason", "ip_address", "sys_created_on"];
    match read_each(client, LOGIN_HISTORY_TABLE, conditions, fields).await {
        Ok(rows) => Ok(LoginHistory::Rows(
            rows.iter()
                .filter_map(|r| {
                    Some(LoginHistoryEntry {
                        user: SysId(r.reference("user")?),
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

/// Runs one `read_all` per condition (each an IN-list chunk or a prefix) and concatenates the rows.
async fn read_each(
    client: &Client,
    table: &str,
    conditions: Vec<String>,
    fields: &[&str],
) -> Result<Vec<Row>, ApiError> {
    let reads = conditions.iter().map(|c| client.read_all(table, c, fields));
    Ok(try_join_all(reads).await?.into_iter().flatten().collect())
}
