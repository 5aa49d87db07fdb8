//! The reads of the plan: each user's latest second, heavy users' latest row, supersets, and the last SSO
//! events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::future::try_join_all;

use super::count::unavailable;
use super::fold::Latest;
use super::{
    BATCH_READS, Cohort, EXACT_CHUNK, EventQueries, FIELDS, LATEST_PAGE, PARM1, TABLE, names_in, newest_first,
};
use crate::domain::{EventActivity, SSO_EVENTS, UserKey, Window, same_name};
use crate::snow::query::{IN_CHUNK, QueryValue, SYS_CREATED_ON};
use crate::snow::{ApiError, Client, PageRequest, Query, Row};

/// The last SSO event of each user the counts found some for, with its reason (`parm2`): one newest-first
/// read per `IN` chunk of such users (none when no checked user has an SSO event, the usual case). Evidence
/// only; a name that is not query-safe keeps its count without the reason. A user is asked for by its key
/// (its name lower-cased), which the instance's query matches in any case.
pub(super) async fn last_sso_events(
    client: &Client,
    window: &Window,
    activity: &mut BTreeMap<UserKey, BTreeMap<String, EventActivity>>,
) -> Result<(), ApiError> {
    let unread = |a: &EventActivity| SSO_EVENTS.contains(&a.name.as_str()) && a.last_detail.is_none();
    let users: Vec<(&UserKey, QueryValue)> = activity
        .iter()
        .filter(|(_, by_name)| by_name.values().any(unread))
        .filter_map(|(user, _)| Some((user, QueryValue::new(user.as_str())?)))
        .collect();
    let mut found: Vec<Row> = Vec::new();
    for chunk in users.chunks(IN_CHUNK) {
        let expected: u64 = chunk
            .iter()
            .flat_map(|(u, _)| activity.get(*u).into_iter().flat_map(|m| m.values()))
            .filter(|a| unread(a))
            .map(|a| a.count)
            .sum();
        let limit = u32::try_from(expected).unwrap_or(u32::MAX).clamp(1, client.page_size());
        let values: Vec<QueryValue> = chunk.iter().map(|(_, v)| v.clone()).collect();
        let query = names_in(&SSO_EVENTS).one_of(PARM1, &values).within(SYS_CREATED_ON, window.start, window.end);
        // Newest first: the first row of each (user, name) is its last one; one page is enough for that.
        found.extend(client.read_page(TABLE, &newest_first(query), FIELDS, limit).await?.0);
    }
    for r in found {
        let (user, name, at) = (UserKey::of(&r.text("parm1")), r.text("name"), r.time("sys_created_on"));
        let Some(a) = activity.get_mut(&user).and_then(|m| m.get_mut(&name)) else { continue };
        if a.last_detail.is_none() && (a.last.is_none() || at >= a.last) {
            a.last = at.or(a.last);
            a.last_detail = Some(r.text("parm2")).filter(|d| !d.is_empty());
        }
    }
    Ok(())
}

/// Reads the rows of each user's latest second, [`EXACT_CHUNK`] users per query, the queries through the Batch
/// API (spread over `[instance] concurrency` calls) where it answers them, else one request each; returns the users whose latest
/// was not found that way (the answer was cut, or the instance did not take the query).
pub(super) async fn read_exact<'u>(
    client: &Client,
    base: &Query,
    exact: &[(&'u str, Option<&QueryValue>, DateTime<Utc>)],
    latest: &Latest<'_>,
) -> Result<Vec<&'u str>, ApiError> {
    let chunks: Vec<_> = exact.chunks(EXACT_CHUNK).collect();
    let limit = client.page_size();
    let request = |chunk: &[(&str, Option<&QueryValue>, DateTime<Utc>)]| PageRequest {
        table: TABLE.into(),
        query: exact_query(base, chunk),
        fields: FIELDS.iter().map(|f| f.to_string()).collect(),
        limit,
    };
    let per_call = client.batch_share(chunks.len(), BATCH_READS);
    let answers = client
        .in_batches(&chunks, per_call, |group| {
            let requests: Vec<PageRequest> = group.iter().map(|c| request(c)).collect();
            async move { client.batch_get_pages(&requests).await }
        })
        .await?;
    let direct = chunks.iter().zip(answers).map(|(chunk, answer)| async move {
        let (rows, more) = match answer {
            Some(page) => (page.rows, page.more),
            None => client.read_page(TABLE, &exact_query(base, chunk), FIELDS, limit).await?,
        };
        if more {
            return Ok::<_, ApiError>(chunk.iter().map(|(u, ..)| *u).collect::<Vec<_>>());
        }
        latest.fold(&rows);
        Ok(chunk.iter().filter(|(u, _, at)| latest.latest_of(u) != Some(*at)).map(|(u, ..)| *u).collect())
    });
    Ok(try_join_all(direct).await?.into_iter().flatten().collect())
}

/// The rows of each user's latest second (`^NQ` parts, one per user).
fn exact_query(base: &Query, chunk: &[(&str, Option<&QueryValue>, DateTime<Utc>)]) -> Query {
    let parts = chunk.iter().filter_map(|(user, prefix, at)| {
        let who = match prefix {
            Some(p) => base.clone().starts_with(PARM1, p),
            None => base.clone().eq(PARM1, &QueryValue::new(user)?),
        };
        Some(who.at(SYS_CREATED_ON, *at))
    });
    Query::any_of(parts)
}

/// The latest row of each heavy user: limit-1 reads, batched through the Batch API where offered.
pub(super) async fn read_heavy(
    client: &Client,
    bounded: &Query,
    users: &[QueryValue],
    latest: &Latest<'_>,
) -> Result<(), ApiError> {
    let latest_of = |user: &QueryValue| newest_first(bounded.clone().eq(PARM1, user));
    let request = |user: &QueryValue| PageRequest {
        table: TABLE.into(),
        query: latest_of(user),
        fields: FIELDS.iter().map(|f| f.to_string()).collect(),
        limit: 1,
    };
    let answers = client
        .in_batches(users, Some(BATCH_READS), |chunk| {
            let requests: Vec<PageRequest> = chunk.iter().map(&request).collect();
            async move { client.batch_get(&requests).await }
        })
        .await?;
    let mut misses = Vec::new();
    for (user, answer) in users.iter().zip(answers) {
        match answer {
            Some(rows) if !rows.is_empty() => latest.fold(&rows),
            _ => misses.push(user),
        }
    }
    let direct = misses.into_iter().map(|user| {
        let q = latest_of(user);
        async move {
            client
                .read_until(TABLE, &q, FIELDS, LATEST_PAGE, |r| {
                    latest.fold(std::slice::from_ref(r));
                    same_name(&r.text("parm1"), user.as_str()) && latest.latest_of(user.as_str()).is_some()
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
pub(super) async fn read_superset(
    client: &Client,
    queries: &EventQueries<'_>,
    cohort: &Cohort,
    user: &str,
    latest: &Latest<'_>,
) -> Result<(), ApiError> {
    let window = queries.window;
    let range = |lo: i64, hi: i64| {
        let at = |t: i64| DateTime::from_timestamp(t, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
        queries.names.clone().and(&cohort.condition).within(SYS_CREATED_ON, at(lo), at(hi))
    };
    // Invariant: the user's latest event is in (lo, hi].
    let (mut lo, mut hi) = (window.start.timestamp(), window.end.timestamp());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let q = range(mid, hi);
        match client.aggregate(TABLE, &q, &["parm1"], &[]).await {
            Ok(groups) => {
                let counts: Option<Vec<u64>> = groups
                    .iter()
                    .filter(|g| g.fields.get("parm1").is_some_and(|p| same_name(p, user)))
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
    let q = newest_first(range(lo, hi));
    client
        .read_until(TABLE, &q, FIELDS, client.page_size(), |r| {
            latest.fold(std::slice::from_ref(r));
            same_name(&r.text("parm1"), user)
        })
        .await
}
