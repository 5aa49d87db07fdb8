//! The latest login event of each checked user, read at a cost bounded by the users, not the events.
//!
//! Only a user's latest `login*` event in the window decides its finding (docs/servicenow.md §1 item 5),
//! so midwatch reads that one event and folds every page as it arrives, keeping one event per user:
//!
//! 1. **Count.** The Aggregate API counts each checked user's events in the window per event name, and is
//!    asked for the latest `sys_created_on` too (MAX of a date-time over REST is unconfirmed: used where
//!    the answer carries it). A user with no event needs no read at all.
//! 2. **Latest second known** (the answer had the MAX): the rows of exactly that second are read, up to
//!    [`EXACT_CHUNK`] users per request as `^NQ` queries — all rows of the second, so a tie is broken by
//!    `sys_id` as before.
//! 3. **Otherwise** users with at most [`LIGHT`] events are read whole, many per request (`parm1IN…` sized
//!    to fit one page); users with more get their latest row only (`ORDERBYDESC`, limit 1), up to
//!    [`BATCH_READS`] per round trip through the Batch API, or one request each where it is not offered.
//! 4. A name that can only be queried through a `STARTSWITH` superset (docs/servicenow.md §3) is read at
//!    its latest second: known from the MAX, or else found by halving the window with counts of that
//!    user's events (about 14 small Aggregate API calls), so that what is read is the superset's rows of
//!    one second, not the superset.
//! 5. **Without the Aggregate API** every login event of the checked users is read by keyset, as the plan
//!    before this one did, but folded page by page.
//!
//! Rows read from `sysevent` are therefore at most [`LIGHT`] per checked user plus ties (steps 2–3),
//! whatever the event volume. Every read has the window's fixed upper bound, is paged so that no page
//! holds more than `page_size` rows (the 60 s quota), and every row is matched exactly on our side.
//! An event inserted in the window's last second after the counts were taken may be missed, as it could
//! be by a read that had already passed that second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures::future::try_join_all;

use crate::domain::{EventActivity, LoginEvent, LoginEventKind, SSO_EVENTS, Window, sn_time};
use crate::snow::query::{IN_CHUNK, ValueLookup, is_safe_value, safe_prefix};
use crate::snow::{ApiError, ApiErrorKind, Client, Group, PageRequest, Row, join_query};

/// Users with at most this many events in the window are read whole; above it, only their latest.
pub const LIGHT: u64 = 10;
/// Users whose latest second is known, read per request (`^NQ` parts).
pub const EXACT_CHUNK: usize = 40;
/// Latest-row reads per Batch API call.
pub const BATCH_READS: usize = 50;
/// Rows per page of a direct latest-row read (a page the ACLs emptied is stepped over).
const LATEST_PAGE: u32 = 5;

const TABLE: &str = "sysevent";
const FIELDS: &[&str] = &["name", "parm1", "parm2", "sys_created_on", "sys_id"];
const NEWEST_FIRST: &str = "ORDERBYDESCsys_created_on^ORDERBYDESCsys_id";

/// How the users of one query condition are selected.
#[derive(Debug, Clone)]
struct Part {
    /// `parm1IN…` or `parm1STARTSWITH…`.
    condition: String,
    /// The checked users this condition stands for.
    users: Vec<String>,
    /// The safe prefix when the condition is a superset.
    prefix: Option<String>,
}

/// What the counts say about one user.
#[derive(Debug, Clone, Default)]
struct Count {
    /// Events in the window; `None` when a count could not be read.
    total: Option<u64>,
    /// The latest `sys_created_on`, when every group of the user carried it.
    latest: Option<DateTime<Utc>>,
    latest_missing: bool,
}

/// The latest event per user, folded from whatever rows the reads return.
struct Latest<'a> {
    window: &'a Window,
    wanted: &'a BTreeSet<&'a str>,
    events: Mutex<BTreeMap<String, LoginEvent>>,
    rows_read: Mutex<u64>,
    /// Per user and event name, what the reads that see all of a user's events (no counts) tallied.
    tallied: Mutex<BTreeMap<String, BTreeMap<String, EventActivity>>>,
}

/// Each checked user's login events and what was counted of its events by name (`login*` and SSO).
#[derive(Debug, Default)]
pub(super) struct LoginActivity {
    pub events: Vec<LoginEvent>,
    pub activity: BTreeMap<String, Vec<EventActivity>>,
}

/// Adds one event to a user's activity by name: the count, and the last one (its `parm2` when known).
fn tally(
    into: &mut BTreeMap<String, EventActivity>,
    name: &str,
    count: u64,
    last: Option<DateTime<Utc>>,
    detail: Option<String>,
) {
    let a = into.entry(name.to_string()).or_insert_with(|| EventActivity {
        name: name.to_string(),
        count: 0,
        last: None,
        last_detail: None,
    });
    a.count += count;
    if last > a.last {
        a.last = last;
        a.last_detail = detail;
    }
}

impl Latest<'_> {
    /// As [`Latest::fold`], and tallies every event of a wanted user in the window by name (login and SSO):
    /// for reads that see all of a user's events because the Aggregate API could not count them.
    fn fold_tallying(&self, rows: &[Row]) {
        if let Ok(mut tallied) = self.tallied.lock() {
            for r in rows {
                let (user, at) = (r.text("parm1"), r.time("sys_created_on"));
                if !self.wanted.contains(user.as_str()) || !at.is_some_and(|at| self.window.contains(at)) {
                    continue;
                }
                let detail = Some(r.text("parm2")).filter(|d| !d.is_empty());
                tally(tallied.entry(user).or_default(), &r.text("name"), 1, at, detail);
            }
        }
        self.fold(rows);
    }

    /// Offers rows; keeps, per wanted user, the event with the greatest `(sys_created_on, sys_id)`.
    fn fold(&self, rows: &[Row]) {
        if let Ok(mut n) = self.rows_read.lock() {
            *n += rows.len() as u64;
        }
        let Ok(mut events) = self.events.lock() else { return };
        for r in rows {
            let Some(e) = self.event(r) else { continue };
            match events.get(&e.user_name) {
                Some(kept) if (kept.created_on, &kept.sys_id) >= (e.created_on, &e.sys_id) => {}
                _ => {
                    events.insert(e.user_name.clone(), e);
                }
            }
        }
    }

    /// A row as a login event of a wanted user inside the window; the exact, case-sensitive match
    /// happens here, whatever the query selected.
    fn event(&self, r: &Row) -> Option<LoginEvent> {
        let e = LoginEvent {
            sys_id: r.reference("sys_id")?,
            kind: LoginEventKind::from_event_name(&r.text("name"))?,
            user_name: r.text("parm1"),
            parm2: r.text("parm2"),
            created_on: r.time("sys_created_on")?,
        };
        (self.wanted.contains(e.user_name.as_str()) && self.window.contains(e.created_on)).then_some(e)
    }

    fn latest_of(&self, user: &str) -> Option<DateTime<Utc>> {
        self.events.lock().ok()?.get(user).map(|e| e.created_on)
    }
}

/// The latest login event inside `window` of each of `users` (the ones `lookup` can query).
pub(super) async fn latest_login_events(
    client: &Client,
    window: &Window,
    lookup: &ValueLookup,
    users: &[String],
) -> Result<LoginActivity, ApiError> {
    let wanted: BTreeSet<&str> = users.iter().map(String::as_str).collect();
    let latest = Latest {
        window,
        wanted: &wanted,
        events: Mutex::default(),
        rows_read: Mutex::default(),
        tallied: Mutex::default(),
    };
    let logins: Vec<&str> = LoginEventKind::ALL.iter().map(|k| k.event_name()).collect();
    let names = format!("nameIN{}", logins.join(","));
    // Counted (and, without counts, read) with the SSO events, which are evidence only: the same requests.
    let counted_names = format!("nameIN{},{}", logins.join(","), SSO_EVENTS.join(","));
    let since = format!("sys_created_on>{}", sn_time::format(window.start));
    let until = format!("sys_created_on<={}", sn_time::format(window.end));
    let base = join_query(&[&names, &since]);
    let bounded = join_query(&[&base, &until]);
    let counted_base = join_query(&[&counted_names, &since]);
    let parts = parts(lookup, users);
    if parts.is_empty() {
        return Ok(LoginActivity::default());
    }

    let counted = count(client, &join_query(&[&counted_base, &until]), &parts).await?;
    let mut activity: BTreeMap<String, BTreeMap<String, EventActivity>> = BTreeMap::new();
    let counts: Vec<Option<BTreeMap<String, Count>>> = counted
        .into_iter()
        .map(|c| {
            c.map(|(counts, by_name)| {
                activity.extend(by_name);
                counts
            })
        })
        .collect();
    let mut fold_all: Vec<&Part> = Vec::new();
    let mut exact: Vec<(&str, Option<&str>, DateTime<Utc>)> = Vec::new();
    let mut light: Vec<(&str, u64)> = Vec::new();
    let mut heavy: Vec<&str> = Vec::new();
    let mut superset: Vec<(&Part, Vec<&str>)> = Vec::new();
    for (part, counts) in parts.iter().zip(&counts) {
        let Some(counts) = counts else {
            fold_all.push(part);
            continue;
        };
        let mut unsafe_users = Vec::new();
        for user in &part.users {
            let Some(c) = counts.get(user) else { continue };
            match (c.total, c.latest) {
                (Some(0), _) => {}
                (_, Some(at)) if !c.latest_missing => exact.push((user, part.prefix.as_deref(), at)),
                _ if part.prefix.is_some() => unsafe_users.push(user.as_str()),
                (Some(n), _) if n <= LIGHT => light.push((user, n)),
                _ => heavy.push(user),
            }
        }
        if !unsafe_users.is_empty() {
            superset.push((part, unsafe_users));
        }
    }
    tracing::debug!(
        fold_all = fold_all.len(),
        exact = exact.len(),
        light = light.len(),
        heavy = heavy.len(),
        superset = superset.len(),
        "sysevent read plan"
    );

    let page = client.page_size();
    // Parts the Aggregate API could not count are read whole, SSO events included, and tallied; light users
    // are read whole too, but their counts came from the Aggregate API.
    let whole = fold_all.iter().map(|p| (join_query(&[&counted_base, &p.condition]), true)).chain(
        light_batches(&light, page)
            .into_iter()
            .map(|b| (join_query(&[&base, &format!("parm1IN{}", b.join(","))]), false)),
    );
    let whole = try_join_all(whole.map(|(q, tallying)| {
        let latest = &latest;
        async move {
            client
                .fold_keyset(TABLE, &q, FIELDS, window.end, |rows| {
                    if tallying { latest.fold_tallying(&rows) } else { latest.fold(&rows) }
                })
                .await
        }
    }));
    let exact_reads = try_join_all(exact.chunks(EXACT_CHUNK).map(|chunk| read_exact(client, &base, chunk, &latest)));
    let supersets = try_join_all(
        superset
            .iter()
            .flat_map(|(part, users)| users.iter().map(move |u| (*part, *u)))
            .map(|(part, user)| read_superset(client, &names, window, part, user, &latest)),
    );
    let heavy_reads = read_heavy(client, &bounded, &heavy, &latest);
    let (_, leftovers, _, ()) = tokio::try_join!(whole, exact_reads, supersets, heavy_reads)?;

    // Users whose latest second was not found as counted: read like heavy users.
    let (mut again, mut unsafe_again): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for user in leftovers.into_iter().flatten() {
        if is_safe_value(user) { again.push(user) } else { unsafe_again.push(user) }
    }
    read_heavy(client, &bounded, &again, &latest).await?;
    for user in unsafe_again {
        if let Some(part) = parts.iter().find(|p| p.users.iter().any(|u| u == user)) {
            read_superset(client, &names, window, part, user, &latest).await?;
        }
    }
    if let Ok(n) = latest.rows_read.lock() {
        tracing::debug!(rows = *n, "sysevent rows read");
    }
    for (user, by_name) in latest.tallied.into_inner().unwrap_or_default() {
        activity.entry(user).or_default().extend(by_name);
    }
    last_sso_events(client, &since, &until, &mut activity).await?;
    let events = latest.events.into_inner().map(|m| m.into_values().collect()).unwrap_or_default();
    let activity = activity.into_iter().map(|(user, by_name)| (user, by_name.into_values().collect())).collect();
    Ok(LoginActivity { events, activity })
}

/// The last SSO event of each user the counts found some for, with its reason (`parm2`): one newest-first
/// read per `IN` chunk of such users (none when no checked user has an SSO event, the usual case). Evidence
/// only; a name that is not query-safe keeps its count without the reason.
async fn last_sso_events(
    client: &Client,
    since: &str,
    until: &str,
    activity: &mut BTreeMap<String, BTreeMap<String, EventActivity>>,
) -> Result<(), ApiError> {
    let unread = |a: &EventActivity| SSO_EVENTS.contains(&a.name.as_str()) && a.last_detail.is_none();
    let users: Vec<&str> = activity
        .iter()
        .filter(|(user, by_name)| is_safe_value(user) && by_name.values().any(unread))
        .map(|(user, _)| user.as_str())
        .collect();
    let mut found: Vec<Row> = Vec::new();
    for chunk in users.chunks(IN_CHUNK) {
        let expected: u64 = chunk
            .iter()
            .flat_map(|u| activity.get(*u).into_iter().flat_map(|m| m.values()))
            .filter(|a| unread(a))
            .map(|a| a.count)
            .sum();
        let limit = u32::try_from(expected).unwrap_or(u32::MAX).clamp(1, client.page_size());
        let query = join_query(&[
            &format!("nameIN{}", SSO_EVENTS.join(",")),
            &format!("parm1IN{}", chunk.join(",")),
            since,
            until,
            NEWEST_FIRST,
        ]);
        // Newest first: the first row of each (user, name) is its last one; one page is enough for that.
        found.extend(client.read_page(TABLE, &query, FIELDS, limit).await?.0);
    }
    for r in found {
        let (user, name, at) = (r.text("parm1"), r.text("name"), r.time("sys_created_on"));
        let Some(a) = activity.get_mut(&user).and_then(|m| m.get_mut(&name)) else { continue };
        if a.last_detail.is_none() && (a.last.is_none() || at >= a.last) {
            a.last = at.or(a.last);
            a.last_detail = Some(r.text("parm2")).filter(|d| !d.is_empty());
        }
    }
    Ok(())
}

/// One condition per `IN` chunk of safe names and per safe prefix, with the users each stands for.
fn parts(lookup: &ValueLookup, users: &[String]) -> Vec<Part> {
    let exact = lookup.exact.iter().map(|chunk| Part {
        condition: format!("parm1IN{}", chunk.join(",")),
        users: chunk.clone(),
        prefix: None,
    });
    let prefixed = lookup.prefixes.iter().map(|p| Part {
        condition: format!("parm1STARTSWITH{p}"),
        users: users.iter().filter(|u| !is_safe_value(u) && safe_prefix(u) == Some(p.as_str())).cloned().collect(),
        prefix: Some(p.clone()),
    });
    exact.chain(prefixed).collect()
}

/// Per part, the counts by user, or `None` where the Aggregate API could not answer (read everything).
/// The first part probes: if the instance refuses MAX, the rest ask for counts only; if it has no
/// Aggregate API for this account, no other part asks.
async fn count(client: &Client, bounded: &str, parts: &[Part]) -> Result<Vec<Option<Counted>>, ApiError> {
    let Some(first) = parts.first() else { return Ok(Vec::new()) };
    let query = |p: &Part| join_query(&[bounded, &p.condition]);
    let mut max: &[&str] = &["sys_created_on"];
    let probe = match client.aggregate(TABLE, &query(first), &["parm1", "name"], max).await {
        Err(e) if unavailable(&e) => {
            max = &[];
            match client.aggregate(TABLE, &query(first), &["parm1", "name"], max).await {
                Err(e) if unavailable(&e) => {
                    tracing::info!(error = %e, "the Aggregate API is not available; reading every login event");
                    return Ok(vec![None; parts.len()]);
                }
                other => other?,
            }
        }
        other => other?,
    };
    let rest = try_join_all(parts[1..].iter().map(|p| {
        let q = query(p);
        async move {
            match client.aggregate(TABLE, &q, &["parm1", "name"], max).await {
                Ok(groups) => Ok(Some(groups)),
                Err(e) if unavailable(&e) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }))
    .await?;
    Ok(std::iter::once(Some(probe)).chain(rest).map(|g| g.map(|g| by_user(&g))).collect())
}

/// One part's counts: per user the login events (which plan the reads), and per user and name every counted
/// event (login and SSO, the evidence).
type Counted = (BTreeMap<String, Count>, BTreeMap<String, BTreeMap<String, EventActivity>>);

/// True when the Aggregate API cannot answer this question for this account, so another plan must.
fn unavailable(e: &ApiError) -> bool {
    matches!(
        e.kind(),
        ApiErrorKind::Forbidden { .. }
            | ApiErrorKind::InvalidTable
            | ApiErrorKind::NotJson { .. }
            | ApiErrorKind::Malformed { .. }
            | ApiErrorKind::QuotaExceeded { .. }
    ) || matches!(e.kind(), ApiErrorKind::Status { status, .. } if matches!(status, 400 | 404 | 405 | 500 | 501))
}

fn by_user(groups: &[Group]) -> Counted {
    let mut counts: BTreeMap<String, Count> = BTreeMap::new();
    let mut activity: BTreeMap<String, BTreeMap<String, EventActivity>> = BTreeMap::new();
    for g in groups {
        let Some(user) = g.fields.get("parm1") else { continue };
        let name = g.fields.get("name").map(String::as_str).unwrap_or_default();
        let last = g.max.get("sys_created_on").and_then(|m| sn_time::parse(m));
        if let Some(n) = g.count.filter(|n| *n > 0) {
            tally(activity.entry(user.clone()).or_default(), name, n, last, None);
        }
        // Only login events plan the reads; an SSO event never decides a finding.
        if LoginEventKind::from_event_name(name).is_none() && g.fields.contains_key("name") {
            continue;
        }
        let c = counts.entry(user.clone()).or_insert(Count { total: Some(0), ..Count::default() });
        c.total = c.total.zip(g.count).map(|(a, b)| a + b);
        if g.count == Some(0) {
            continue;
        }
        match g.max.get("sys_created_on").and_then(|m| sn_time::parse(m)) {
            Some(at) => c.latest = c.latest.max(Some(at)),
            None => c.latest_missing = true,
        }
    }
    (counts, activity)
}

/// Light users packed so that a batch's events fit one page and its names one `IN` list.
fn light_batches<'a>(light: &[(&'a str, u64)], page: u32) -> Vec<Vec<&'a str>> {
    let mut batches: Vec<Vec<&str>> = Vec::new();
    let mut rows = 0u64;
    for (user, n) in light {
        match batches.last_mut() {
            Some(b) if b.len() < IN_CHUNK && rows + n <= u64::from(page) => {
                b.push(user);
                rows += n;
            }
            _ => {
                batches.push(vec![user]);
                rows = *n;
            }
        }
    }
    batches
}

/// Reads the rows of each user's latest second, several users per request; returns the users whose
/// latest was not found that way (the answer was cut, or the instance did not take the query).
async fn read_exact<'u>(
    client: &Client,
    base: &str,
    chunk: &[(&'u str, Option<&str>, DateTime<Utc>)],
    latest: &Latest<'_>,
) -> Result<Vec<&'u str>, ApiError> {
    let parts: Vec<String> = chunk
        .iter()
        .map(|(user, prefix, at)| {
            let who = match prefix {
                Some(p) => format!("parm1STARTSWITH{p}"),
                None => format!("parm1={user}"),
            };
            join_query(&[base, &who, &format!("sys_created_on={}", sn_time::format(*at))])
        })
        .collect();
    let query = parts.join("^NQ");
    let (rows, more) = client.read_page(TABLE, &query, FIELDS, client.page_size()).await?;
    if more {
        return Ok(chunk.iter().map(|(u, ..)| *u).collect());
    }
    latest.fold(&rows);
    Ok(chunk.iter().filter(|(u, _, at)| latest.latest_of(u) != Some(*at)).map(|(u, ..)| *u).collect())
}

/// The latest row of each heavy user: limit-1 reads, batched through the Batch API where offered.
async fn read_heavy(client: &Client, bounded: &str, users: &[&str], latest: &Latest<'_>) -> Result<(), ApiError> {
    let request = |user: &str| PageRequest {
        table: TABLE.into(),
        query: join_query(&[bounded, &format!("parm1={user}"), NEWEST_FIRST]),
        fields: FIELDS.iter().map(|f| f.to_string()).collect(),
        limit: 1,
    };
    let batches = try_join_all(users.chunks(BATCH_READS).map(|chunk| async move {
        let requests: Vec<PageRequest> = chunk.iter().map(|u| request(u)).collect();
        let answers = match client.batch_get(&requests).await {
            Ok(answers) => answers,
            Err(e) if matches!(e.kind(), ApiErrorKind::Unauthorized | ApiErrorKind::RateLimited { .. }) => {
                return Err(e);
            }
            Err(e) => {
                tracing::info!(error = %e, "a Batch API read failed; reading those users one by one");
                vec![None; chunk.len()]
            }
        };
        let mut misses = Vec::new();
        for (user, answer) in chunk.iter().zip(answers) {
            match answer {
                Some(rows) if !rows.is_empty() => latest.fold(&rows),
                _ => misses.push(*user),
            }
        }
        Ok(misses)
    }))
    .await?;
    let direct = batches.into_iter().flatten().map(|user| {
        let q = join_query(&[bounded, &format!("parm1={user}"), NEWEST_FIRST]);
        async move {
            client
                .read_until(TABLE, &q, FIELDS, LATEST_PAGE, |r| {
                    latest.fold(std::slice::from_ref(r));
                    r.text("parm1") == user && latest.latest_of(user).is_some()
                })
                .await
        }
    });
    try_join_all(direct).await.map(|_| ())
}

/// A user reachable only through a `STARTSWITH` superset: finds the second of its latest event by
/// halving the window with counts of its own events (the Aggregate API groups by the exact `parm1`),
/// then reads the superset's rows of that second. Without counts, reads the superset newest first
/// until the user's first (latest) row.
async fn read_superset(
    client: &Client,
    names: &str,
    window: &Window,
    part: &Part,
    user: &str,
    latest: &Latest<'_>,
) -> Result<(), ApiError> {
    let range = |lo: i64, hi: i64| {
        let at = |t: i64| DateTime::from_timestamp(t, 0).map(sn_time::format).unwrap_or_default();
        format!("sys_created_on>{}^sys_created_on<={}", at(lo), at(hi))
    };
    // Invariant: the user's latest event is in (lo, hi].
    let (mut lo, mut hi) = (window.start.timestamp(), window.end.timestamp());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let q = join_query(&[names, &part.condition, &range(mid, hi)]);
        match client.aggregate(TABLE, &q, &["parm1"], &[]).await {
            Ok(groups) => {
                let counts: Option<Vec<u64>> = groups
                    .iter()
                    .filter(|g| g.fields.get("parm1").is_some_and(|p| p == user))
                    .map(|g| g.count)
                    .collect();
                match counts.map(|c| c.iter().sum::<u64>()) {
                    Some(0) => hi = mid,
                    Some(_) => lo = mid,
                    // A count that cannot be read: search no further, read the whole superset instead.
                    None => {
                        (lo, hi) = (window.start.timestamp(), window.end.timestamp());
                        break;
                    }
                }
            }
            Err(e) if unavailable(&e) => {
                lo = window.start.timestamp();
                hi = window.end.timestamp();
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let q = join_query(&[names, &part.condition, &range(lo, hi), NEWEST_FIRST]);
    client
        .read_until(TABLE, &q, FIELDS, client.page_size(), |r| {
            latest.fold(std::slice::from_ref(r));
            r.text("parm1") == user
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_users_are_packed_to_fit_a_page() {
        let light: Vec<(&str, u64)> = vec![("a", 4), ("b", 4), ("c", 3), ("d", 10), ("e", 1)];
        assert_eq!(light_batches(&light, 10), [vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
        let many: Vec<(&str, u64)> = (0..250).map(|_| ("u", 1)).collect();
        assert_eq!(light_batches(&many, 1000).iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
    }

    #[test]
    fn counts_add_up_per_user_and_a_missing_max_is_noted() {
        let g = |user: &str, name: &str, count: Option<u64>, max: Option<&str>| Group {
            fields: [("parm1".to_string(), user.to_string()), ("name".to_string(), name.to_string())].into(),
            count,
            max: max.map(|m| [("sys_created_on".to_string(), m.to_string())].into()).unwrap_or_default(),
        };
        let (counts, activity) = by_user(&[
            g("a", "login", Some(2), Some("2026-11-22 10:00:00")),
            g("a", "login.failed", Some(1), Some("2026-11-22 11:00:00")),
            g("a", "external.authentication.failed", Some(4), Some("2026-11-22 11:30:00")),
            g("b", "login", Some(3), None),
            g("c", "login", None, Some("2026-11-22 09:00:00")),
        ]);
        assert_eq!(counts["a"].total, Some(3));
        assert_eq!(counts["a"].latest.map(sn_time::format).as_deref(), Some("2026-11-22 11:00:00"));
        assert!(!counts["a"].latest_missing);
        assert!(counts["b"].latest_missing);
        assert_eq!(counts["c"].total, None, "an unreadable count is unknown");
        // The SSO events are evidence only: counted by name, never in the login total or latest.
        let sso = &activity["a"]["external.authentication.failed"];
        assert_eq!((sso.count, sso.last.map(sn_time::format).as_deref()), (4, Some("2026-11-22 11:30:00")));
        assert_eq!(activity["a"]["login.failed"].count, 1);
        assert_eq!(activity["b"]["login"].last, None);
    }
}
