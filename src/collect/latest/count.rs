//! Counting each checked user's events per name through the Aggregate API, and what the counts say.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::future::try_join_all;

use super::fold::tally;
use super::{BATCH_READS, Cohort, TABLE};
use crate::domain::{EventActivity, LoginEventKind, UserKey, sn_time};
use crate::snow::{ApiError, ApiErrorKind, Client, Group, Query};

/// What the counts say about one user.
#[derive(Debug, Clone, Default)]
pub(super) struct Count {
    /// Events in the window; `None` when a count could not be read.
    pub(super) total: Option<u64>,
    /// The latest `sys_created_on`, when every group of the user carried it.
    pub(super) latest: Option<DateTime<Utc>>,
    pub(super) latest_missing: bool,
}

/// What a count asks for, and how it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asking {
    /// Counts and each user's latest time, spread over `[instance] concurrency` Batch API calls: the read plan
    /// waits for them.
    Latest,
    /// Counts only, in as few Batch API calls as it takes (a question asked beside the others).
    CountsOnly,
}

/// Per cohort, the counts by user (with the latest time where `asking` says so), or `None` where the
/// Aggregate API could not answer (read everything). The first cohort probes: if the instance refuses MAX, the
/// rest ask for counts only; if it has no Aggregate API for this account, no other cohort asks. The rest go through the Batch API, spread over
/// `[instance] concurrency` calls.
pub(super) async fn count(
    client: &Client,
    bounded: &Query,
    cohorts: &[Cohort],
    asking: Asking,
) -> Result<Vec<Option<Counted>>, ApiError> {
    let Some(first) = cohorts.first() else { return Ok(Vec::new()) };
    let query = |c: &Cohort| bounded.clone().and(&c.condition);
    let mut max: &[&str] = match asking {
        Asking::Latest => &["sys_created_on"],
        Asking::CountsOnly => &[],
    };
    let probe = match client.aggregate(TABLE, &query(first), &["parm1", "name"], max).await {
        Err(e) if unavailable(&e) && !max.is_empty() => {
            max = &[];
            match client.aggregate(TABLE, &query(first), &["parm1", "name"], max).await {
                Err(e) if unavailable(&e) => {
                    tracing::info!(error = %e, "the Aggregate API is not available; reading every login event");
                    return Ok(vec![None; cohorts.len()]);
                }
                other => other?,
            }
        }
        Err(e) if unavailable(&e) => {
            tracing::info!(error = %e, "the Aggregate API is not available");
            return Ok(vec![None; cohorts.len()]);
        }
        other => other?,
    };
    // The other cohorts' counts through the Batch API, in as many calls as may be in flight; any it does not
    // answer are asked for directly, together.
    let queries: Vec<Query> = cohorts[1..].iter().map(query).collect();
    let per_call = match asking {
        Asking::Latest => client.batch_share(queries.len(), BATCH_READS),
        Asking::CountsOnly => (queries.len() >= 2).then_some(BATCH_READS),
    };
    let batched = client
        .in_batches(&queries, per_call, |group| client.aggregate_many(TABLE, group, &["parm1", "name"], max))
        .await?;
    let rest = try_join_all(queries.iter().zip(batched).map(|(q, answer)| async move {
        if let Some(groups) = answer {
            return Ok(Some(groups));
        }
        match client.aggregate(TABLE, q, &["parm1", "name"], max).await {
            Ok(groups) => Ok(Some(groups)),
            Err(e) if unavailable(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }))
    .await?;
    Ok(std::iter::once(Some(probe)).chain(rest).map(|g| g.map(|g| by_user(&g))).collect())
}

/// One cohort's counts: per user the login events (which plan the reads), and per user and name every counted
/// event (login and SSO, the evidence). Groups of two spellings of one `parm1` add up to that user's.
pub(super) type Counted = (BTreeMap<UserKey, Count>, BTreeMap<UserKey, BTreeMap<String, EventActivity>>);

/// True when the Aggregate API cannot answer this question for this account, so another plan must.
pub(super) fn unavailable(e: &ApiError) -> bool {
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
    let mut counts: BTreeMap<UserKey, Count> = BTreeMap::new();
    let mut activity: BTreeMap<UserKey, BTreeMap<String, EventActivity>> = BTreeMap::new();
    for g in groups {
        let Some(user) = g.fields.get("parm1").map(|p| UserKey::of(p)) else { continue };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sn_time;

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
        assert_eq!(counts[&UserKey::of("a")].total, Some(3));
        assert_eq!(counts[&UserKey::of("a")].latest.map(sn_time::format).as_deref(), Some("2026-11-22 11:00:00"));
        assert!(!counts[&UserKey::of("a")].latest_missing);
        assert!(counts[&UserKey::of("b")].latest_missing);
        assert_eq!(counts[&UserKey::of("c")].total, None, "an unreadable count is unknown");
        // The SSO events are evidence only: counted by name, never in the login total or latest.
        let sso = &activity[&UserKey::of("a")]["external.authentication.failed"];
        assert_eq!((sso.count, sso.last.map(sn_time::format).as_deref()), (4, Some("2026-11-22 11:30:00")));
        assert_eq!(activity[&UserKey::of("a")]["login.failed"].count, 1);
        assert_eq!(activity[&UserKey::of("b")]["login"].last, None);
    }
}
