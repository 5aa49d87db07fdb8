//! The latest login event of each checked user, read at a cost bounded by the users, not the events.
//!
//! Only a user's latest `login*` event in the window decides its finding (docs/servicenow.md §1 item 5),
//! so midwatch reads that one event and folds every page as it arrives, keeping one event per user:
//!
//! 1. **Count.** The Aggregate API counts each checked user's events in the window per event name, and is
//!    asked for the latest `sys_created_on` too (MAX of a date-time over REST is unconfirmed: used where
//!    the answer carries it). A user with no event needs no read at all.
//! 2. **Latest second known** (the answer had the MAX): the rows of exactly that second are read, up to
//!    [`EXACT_CHUNK`] users per query as `^NQ` parts, the queries sent together through the Batch API — all
//!    rows of the second, so a tie is broken by `sys_id` exactly as a read of every row would.
//! 3. **Otherwise** users with at most [`LIGHT`] events are read whole, many per request (`parm1IN…` sized
//!    to fit one page); users with more get their latest row only (`ORDERBYDESC`, limit 1), up to
//!    [`BATCH_READS`] per round trip through the Batch API, or one request each where it is not offered.
//! 4. A name that can only be queried through a `STARTSWITH` superset (docs/servicenow.md §3) is read at
//!    its latest second: known from the MAX, or else found by halving the window with counts of that
//!    user's events (about 14 small Aggregate API calls), so that what is read is the superset's rows of
//!    one second, not the superset.
//! 5. **Without the Aggregate API** every login event of the checked users is read by keyset, folded page
//!    by page.
//!
//! Which of these reads each user gets is decided from the counts alone (`plan`, no I/O); the reads follow.
//!
//! Rows read from `sysevent` are therefore at most [`LIGHT`] per checked user plus ties (steps 2–3),
//! whatever the event volume. Every read has the window's fixed upper bound, is paged so that no page
//! holds more than `page_size` rows (the 60 s quota), and every row is matched on our side to the whole name
//! of a checked user, in any case (`UserKey`: the instance's queries ignore case, so they return every
//! spelling of a name, and the counts of two spellings add up to one user's).
//! An event inserted in the window's last second after the counts were taken may be missed, as it could
//! be by a read that had already passed that second.

mod count;
mod fold;
mod reads;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures::future::try_join_all;

use super::Read;
use crate::domain::{EventActivity, LoginEvent, LoginEventKind, SSO_EVENTS, UserKey, Window};
use crate::snow::query::{Field, IN_CHUNK, QueryValue, SYS_CREATED_ON, SYS_ID, ValueLookup, safe_prefix};
use crate::snow::{ApiError, Client, Query};
use count::{Asking, Count, count};
use fold::Latest;
use reads::{last_sso_events, read_exact, read_heavy, read_superset};

/// Users with at most this many events in the window are read whole; above it, only their latest.
pub const LIGHT: u64 = 10;
/// Users whose latest second is known, read per request (`^NQ` parts).
pub(crate) const EXACT_CHUNK: usize = 40;
/// Latest-row reads per Batch API call.
pub(crate) const BATCH_READS: usize = 50;
/// Rows per page of a direct latest-row read (a page the ACLs emptied is stepped over).
pub(super) const LATEST_PAGE: u32 = 5;

/// The login (and SSO) events of `sysevent`.
pub(crate) const EVENTS: Read =
    Read { table: "sysevent", fields: &["name", "parm1", "parm2", "sys_created_on", "sys_id"] };
pub(super) const TABLE: &str = EVENTS.table;
pub(super) const FIELDS: &[&str] = EVENTS.fields;
const NAME: Field = Field::new("name");
pub(super) const PARM1: Field = Field::new("parm1");

pub(super) fn newest_first(q: Query) -> Query {
    q.order_by_desc(SYS_CREATED_ON).order_by_desc(SYS_ID)
}

/// `nameIN…` of these event names (constants of the code, so always query-safe).
pub(super) fn names_in(names: &[&'static str]) -> Query {
    let values: Vec<QueryValue> = names.iter().map(|n| QueryValue::fixed(n)).collect();
    Query::new().one_of(NAME, &values)
}

/// The checked users one `parm1` condition selects: the unit the counts and the reads are asked for.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cohort {
    /// `parm1IN…` or `parm1STARTSWITH…`.
    pub(super) condition: Query,
    /// The checked users this condition stands for.
    pub(super) users: Vec<String>,
    /// The safe prefix when the condition is a superset.
    pub(super) prefix: Option<QueryValue>,
}

/// Each checked user's login events and what was counted of its events by name (`login*` and SSO).
#[derive(Debug, Default)]
pub(super) struct LoginActivity {
    pub(crate) events: Vec<LoginEvent>,
    pub(crate) activity: BTreeMap<UserKey, Vec<EventActivity>>,
}

/// The queries of one window every read starts from.
pub(super) struct EventQueries<'w> {
    pub(super) window: &'w Window,
    /// `nameIN…` of the login events.
    pub(super) names: Query,
    /// The login events after the window's start.
    base: Query,
    /// The login events inside the window.
    bounded: Query,
    /// The login and SSO events after the window's start: counted, and read where they could not be.
    counted_base: Query,
}

impl<'w> EventQueries<'w> {
    fn of(window: &'w Window) -> EventQueries<'w> {
        let logins: Vec<&'static str> = LoginEventKind::ALL.iter().map(|k| k.event_name()).collect();
        let names = names_in(&logins);
        // Counted (and, without counts, read) with the SSO events, which are evidence only: the same requests.
        let counted_names = names_in(&[logins.as_slice(), SSO_EVENTS.as_slice()].concat());
        let base = names.clone().after(SYS_CREATED_ON, window.start);
        let bounded = base.clone().at_or_before(SYS_CREATED_ON, window.end);
        let counted_base = counted_names.after(SYS_CREATED_ON, window.start);
        EventQueries { window, names, base, bounded, counted_base }
    }
}

/// Which of `users` (the users of Up MID Servers, for the early warnings) had a login refused in `window`:
/// only their latest event can be a refusal, so only they need the read plan of [`latest_login_events`]. The
/// question is one count of `login.failed` and `login.authorization.failed` per cohort, so a user's successful
/// logins, however many, cost nothing. Names no query can hold are returned as they are (the plan reports them
/// as not checked). `Err` only for a failed request; where the Aggregate API cannot count, the cohort's users
/// are in `uncounted`: reading all their login events would cost what the warnings are not worth.
pub(crate) async fn refused_among(client: &Client, window: &Window, users: &[String]) -> Result<Refused, ApiError> {
    let lookup = ValueLookup::plan(users.iter().map(String::as_str));
    let cohorts = cohorts(&lookup, users);
    let refusals = names_in(&[LoginEventKind::Failed.event_name(), LoginEventKind::AuthorizationFailed.event_name()])
        .after(SYS_CREATED_ON, window.start)
        .at_or_before(SYS_CREATED_ON, window.end);
    let mut found = Refused { users: lookup.refused.iter().map(|s| s.user.clone()).collect(), uncounted: 0 };
    for (cohort, counted) in cohorts.iter().zip(count(client, &refusals, &cohorts, Asking::CountsOnly).await?) {
        let Some((counts, _)) = counted else {
            found.uncounted += cohort.users.len();
            continue;
        };
        let refused = |u: &&String| counts.get(&UserKey::of(u)).is_some_and(|c| c.total != Some(0));
        found.users.extend(cohort.users.iter().filter(refused).cloned());
    }
    Ok(found)
}

/// What [`refused_among`] found.
#[derive(Debug, Default)]
pub(crate) struct Refused {
    /// The users with a refused login in the window (and those no query can name).
    pub(crate) users: Vec<String>,
    /// How many users could not be asked about: the Aggregate API is not available.
    pub(crate) uncounted: usize,
}

/// The counts of one cohort by user, or `None` where the Aggregate API could not count it.
type CohortCounts = Option<BTreeMap<UserKey, Count>>;

/// The reads the counts call for, decided without I/O (steps 2–5 of the module doc).
#[derive(Debug, Default, PartialEq)]
struct ReadPlan<'c> {
    /// Cohorts the Aggregate API could not count: every event read and tallied, SSO events included.
    fold_all: Vec<&'c Cohort>,
    /// Users whose latest second is known: the user, its cohort's prefix (for a superset), that second.
    exact: Vec<(&'c str, Option<&'c QueryValue>, DateTime<Utc>)>,
    /// Users with at most [`LIGHT`] events, read whole, and their counts.
    light: Vec<(QueryValue, u64)>,
    /// Users with more, read for their latest row only.
    heavy: Vec<QueryValue>,
    /// Users reachable only through their cohort's superset, their latest second unknown.
    superset: Vec<(&'c Cohort, Vec<&'c str>)>,
}

/// The latest login event inside `window` of each of `users` (the ones `lookup` can query).
pub(super) async fn latest_login_events(
    client: &Client,
    window: &Window,
    lookup: &ValueLookup,
    users: &[String],
) -> Result<LoginActivity, ApiError> {
    let wanted: BTreeSet<UserKey> = users.iter().map(|u| UserKey::of(u)).collect();
    let latest = Latest {
        window,
        wanted: &wanted,
        events: Mutex::default(),
        rows_read: Mutex::default(),
        tallied: Mutex::default(),
    };
    let queries = EventQueries::of(window);
    let cohorts = cohorts(lookup, users);
    if cohorts.is_empty() {
        return Ok(LoginActivity::default());
    }

    let counted =
        count(client, &queries.counted_base.clone().at_or_before(SYS_CREATED_ON, window.end), &cohorts, Asking::Latest)
            .await?;
    let mut activity: BTreeMap<UserKey, BTreeMap<String, EventActivity>> = BTreeMap::new();
    let counts: Vec<CohortCounts> = counted
        .into_iter()
        .map(|c| {
            c.map(|(counts, by_name)| {
                activity.extend(by_name);
                counts
            })
        })
        .collect();
    let plan = plan(&cohorts, &counts);
    tracing::debug!(
        fold_all = plan.fold_all.len(),
        exact = plan.exact.len(),
        light = plan.light.len(),
        heavy = plan.heavy.len(),
        superset = plan.superset.len(),
        "sysevent read plan"
    );

    let leftovers = read_planned(client, &queries, &plan, &latest).await?;
    read_leftovers(client, &queries, &cohorts, leftovers, &latest).await?;
    if let Ok(n) = latest.rows_read.lock() {
        tracing::debug!(rows = *n, "sysevent rows read");
    }
    conclude(client, window, latest, activity).await
}

/// The latest events kept, and the activity counted beside what the whole reads tallied, with the last SSO
/// events' reasons read.
async fn conclude(
    client: &Client,
    window: &Window,
    latest: Latest<'_>,
    mut activity: BTreeMap<UserKey, BTreeMap<String, EventActivity>>,
) -> Result<LoginActivity, ApiError> {
    for (user, by_name) in latest.tallied.into_inner().unwrap_or_default() {
        activity.entry(user).or_default().extend(by_name);
    }
    last_sso_events(client, window, &mut activity).await?;
    let events = latest.events.into_inner().map(|m| m.into_values().collect()).unwrap_or_default();
    let activity = activity.into_iter().map(|(user, by_name)| (user, by_name.into_values().collect())).collect();
    Ok(LoginActivity { events, activity })
}

/// Which read each user's counts call for; `counts` is per cohort, in the order of `cohorts`. A user the
/// counts do not name, or with no event, needs none.
fn plan<'c>(cohorts: &'c [Cohort], counts: &[CohortCounts]) -> ReadPlan<'c> {
    let mut plan = ReadPlan::default();
    for (cohort, counts) in cohorts.iter().zip(counts) {
        let Some(counts) = counts else {
            plan.fold_all.push(cohort);
            continue;
        };
        let mut unsafe_users = Vec::new();
        for user in &cohort.users {
            let Some(c) = counts.get(&UserKey::of(user)) else { continue };
            match (c.total, c.latest) {
                (Some(0), _) => {}
                (_, Some(at)) if !c.latest_missing => plan.exact.push((user, cohort.prefix.as_ref(), at)),
                _ if cohort.prefix.is_some() => unsafe_users.push(user.as_str()),
                (Some(n), _) if n <= LIGHT => plan.light.extend(QueryValue::new(user).map(|v| (v, n))),
                _ => plan.heavy.extend(QueryValue::new(user)),
            }
        }
        if !unsafe_users.is_empty() {
            plan.superset.push((cohort, unsafe_users));
        }
    }
    plan
}

/// Sends the plan's reads together, each folding into `latest`; returns the users whose latest second was
/// not found as counted.
async fn read_planned<'c>(
    client: &Client,
    queries: &EventQueries<'_>,
    plan: &ReadPlan<'c>,
    latest: &Latest<'_>,
) -> Result<Vec<&'c str>, ApiError> {
    let page = client.page_size();
    // Cohorts the Aggregate API could not count are read whole, SSO events included, and tallied; light users
    // are read whole too, but their counts came from the Aggregate API.
    let whole =
        plan.fold_all.iter().map(|c| (queries.counted_base.clone().and(&c.condition), true)).chain(
            light_batches(&plan.light, page).into_iter().map(|b| (queries.base.clone().one_of(PARM1, &b), false)),
        );
    let whole = try_join_all(whole.map(|(q, tallying)| async move {
        client
            .fold_keyset(TABLE, &q, FIELDS, queries.window.end, |rows| {
                if tallying { latest.fold_tallying(&rows) } else { latest.fold(&rows) }
            })
            .await
    }));
    let exact_reads = read_exact(client, &queries.base, &plan.exact, latest);
    let supersets = try_join_all(
        plan.superset
            .iter()
            .flat_map(|(cohort, users)| users.iter().map(move |u| (*cohort, *u)))
            .map(|(cohort, user)| read_superset(client, queries, cohort, user, latest)),
    );
    let heavy_reads = read_heavy(client, &queries.bounded, &plan.heavy, latest);
    let (_, leftovers, _, ()) = tokio::try_join!(whole, exact_reads, supersets, heavy_reads)?;
    Ok(leftovers)
}

/// Users whose latest second was not found as counted: read like heavy users (through their cohort's
/// superset where the name is not query-safe).
async fn read_leftovers(
    client: &Client,
    queries: &EventQueries<'_>,
    cohorts: &[Cohort],
    leftovers: Vec<&str>,
    latest: &Latest<'_>,
) -> Result<(), ApiError> {
    let (mut again, mut unsafe_again): (Vec<QueryValue>, Vec<&str>) = (Vec::new(), Vec::new());
    for user in leftovers {
        match QueryValue::new(user) {
            Some(v) => again.push(v),
            None => unsafe_again.push(user),
        }
    }
    read_heavy(client, &queries.bounded, &again, latest).await?;
    for user in unsafe_again {
        if let Some(cohort) = cohorts.iter().find(|c| c.users.iter().any(|u| u == user)) {
            read_superset(client, queries, cohort, user, latest).await?;
        }
    }
    Ok(())
}

/// One condition per `IN` chunk of safe names and per safe prefix, with the users each stands for.
fn cohorts(lookup: &ValueLookup, users: &[String]) -> Vec<Cohort> {
    let exact = lookup.exact.iter().map(|chunk| Cohort {
        condition: Query::new().one_of(PARM1, chunk),
        users: chunk.iter().map(|v| v.as_str().to_string()).collect(),
        prefix: None,
    });
    let prefixed = lookup.prefixes.iter().map(|p| Cohort {
        condition: Query::new().starts_with(PARM1, p),
        users: users
            .iter()
            .filter(|u| QueryValue::new(u).is_none() && safe_prefix(u).as_ref() == Some(p))
            .cloned()
            .collect(),
        prefix: Some(p.clone()),
    });
    exact.chain(prefixed).collect()
}

/// Light users packed so that a batch's events fit one page and its names one `IN` list.
fn light_batches<T: Clone>(light: &[(T, u64)], page: u32) -> Vec<Vec<T>> {
    let mut batches: Vec<Vec<T>> = Vec::new();
    let mut rows = 0u64;
    for (user, n) in light {
        match batches.last_mut() {
            Some(b) if b.len() < IN_CHUNK && rows + n <= u64::from(page) => {
                b.push(user.clone());
                rows += n;
            }
            _ => {
                batches.push(vec![user.clone()]);
                rows = *n;
            }
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sn_time;

    fn counted(total: Option<u64>, latest: Option<&str>) -> Count {
        Count { total, latest: latest.and_then(sn_time::parse), latest_missing: false }
    }

    fn counts(users: &[(&str, Count)]) -> CohortCounts {
        Some(users.iter().map(|(u, c)| (UserKey::of(u), c.clone())).collect())
    }

    fn value(v: &str) -> QueryValue {
        QueryValue::new(v).expect("a safe name")
    }

    fn cohorts_of(users: &[&str]) -> Vec<Cohort> {
        let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        cohorts(&ValueLookup::plan(users.iter().map(String::as_str)), &users)
    }

    #[test]
    fn a_user_with_no_event_or_not_counted_is_not_read() {
        let cohorts = cohorts_of(&["quiet", "unnamed"]);
        let plan = plan(&cohorts, &[counts(&[("quiet", counted(Some(0), None))])]);
        assert_eq!(plan, ReadPlan::default());
    }

    #[test]
    fn a_known_latest_second_is_read_exactly_whatever_the_count() {
        let cohorts = cohorts_of(&["few", "many"]);
        let at = "2026-11-22 10:00:00";
        let plan =
            plan(&cohorts, &[counts(&[("few", counted(Some(2), Some(at))), ("many", counted(Some(5000), Some(at)))])]);
        let second = sn_time::parse(at).expect("a time");
        assert_eq!(plan.exact, [("few", None, second), ("many", None, second)]);
        assert!(plan.light.is_empty() && plan.heavy.is_empty() && plan.fold_all.is_empty());
    }

    #[test]
    fn without_the_latest_second_few_events_are_read_whole_and_a_heavy_user_its_latest_row() {
        let cohorts = cohorts_of(&["few", "edge", "heavy", "unsure"]);
        let missing = Count { latest_missing: true, ..counted(Some(3), Some("2026-11-22 10:00:00")) };
        let plan = plan(
            &cohorts,
            &[counts(&[
                ("few", counted(Some(3), None)),
                ("edge", counted(Some(LIGHT), None)),
                ("heavy", counted(Some(LIGHT + 1), None)),
                ("unsure", missing),
            ])],
        );
        assert_eq!(plan.light, [(value("edge"), LIGHT), (value("few"), 3), (value("unsure"), 3)]);
        assert_eq!(plan.heavy, [value("heavy")]);
        assert!(plan.exact.is_empty());
    }

    #[test]
    fn an_unreadable_count_reads_the_latest_row() {
        let cohorts = cohorts_of(&["a"]);
        let plan = plan(&cohorts, &[counts(&[("a", counted(None, None))])]);
        assert_eq!(plan.heavy, [value("a")]);
    }

    #[test]
    fn a_name_only_a_prefix_selects_is_read_at_its_second_or_through_the_superset() {
        let cohorts = cohorts_of(&["safe", "mid user", "mid ops"]);
        assert_eq!(cohorts.len(), 2, "{cohorts:?}");
        let at = "2026-11-22 10:00:00";
        let plan = plan(
            &cohorts,
            &[
                counts(&[("safe", counted(Some(1), None))]),
                counts(&[("mid user", counted(Some(1), Some(at))), ("mid ops", counted(Some(50), None))]),
            ],
        );
        let second = sn_time::parse(at).expect("a time");
        assert_eq!(plan.exact, [("mid user", Some(&value("mid")), second)]);
        assert_eq!(plan.superset, [(&cohorts[1], vec!["mid ops"])]);
        assert_eq!(plan.light, [(value("safe"), 1)]);
    }

    #[test]
    fn a_cohort_the_aggregate_api_could_not_count_is_read_whole() {
        let cohorts = cohorts_of(&["a", "mid user"]);
        let plan = plan(&cohorts, &[None, counts(&[("mid user", counted(Some(0), None))])]);
        assert_eq!(plan.fold_all, [&cohorts[0]]);
        assert!(plan.superset.is_empty() && plan.exact.is_empty());
    }

    #[test]
    fn light_users_are_packed_to_fit_a_page() {
        let light: Vec<(&str, u64)> = vec![("a", 4), ("b", 4), ("c", 3), ("d", 10), ("e", 1)];
        assert_eq!(light_batches(&light, 10), [vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
        let many: Vec<(&str, u64)> = (0..250).map(|_| ("u", 1)).collect();
        assert_eq!(light_batches(&many, 1000).iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
    }
}
