use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::domain::{AccountState, Category, Condition, Evidence, MissingRoles};
use crate::domain::{IssueState, MessageStyle};
use crate::domain::{LoginEventKind, sn_time};
use crate::evaluate::messages::issue_message;

const SOURCE: &str = "midwatch";

fn now() -> DateTime<Utc> {
    sn_time::parse("2026-11-22 12:00:00").expect("time")
}

/// A finding of `user` on `down` down MID Servers (also the history tests' finding).
pub(crate) fn finding(user: &str, down: usize) -> Finding {
    Finding {
        category: Category::Authentication,
        condition: Condition::LoginFailedOnDownMid,
        user: user.into(),
        message: issue_message(MessageStyle::Documented, user, Some(LoginEventKind::Failed), down),
        down_mid_servers: Vec::new(),
        missing_roles: MissingRoles::default(),
        account: AccountState::Active,
        last_login_time: None,
        failed_attempts: None,
        activity: Vec::new(),
        likely_cause: None,
        evidence: Evidence { event: None, login_history: None },
        sys_domain: "global".into(),
        history: None,
    }
}

/// An unresolved-or-not record of our source, created four hours ago.
pub(crate) fn record(id: &str, message: &str, state: &str, count: u64) -> IssueRecord {
    IssueRecord {
        sys_id: id.into(),
        message: message.into(),
        source: SOURCE.into(),
        state: IssueState::parse(state),
        count,
        mid_server: None,
        sys_domain: Some("global".into()),
        created_on: Some(now() - Duration::hours(4)),
    }
}

#[test]
fn new_finding_creates_a_record_without_mid_server() {
    let plan = reconcile(&[finding("u", 1)], &[], SOURCE, now());
    assert_eq!(plan.create.len(), 1);
    let c = &plan.create[0];
    assert_eq!((c.source.as_str(), c.sys_domain.as_str(), c.last_detected), (SOURCE, "global", now()));
    assert!(plan.count.is_empty() && plan.resolve.is_empty());
}

#[test]
fn same_message_on_two_cycles_is_one_record_with_count_two() {
    let f = finding("u", 1);
    let first = reconcile(std::slice::from_ref(&f), &[], SOURCE, now());
    assert_eq!(first.create.len(), 1);
    // The record the first cycle created, as the instance stores it (count defaults to 1).
    let open = [record("r1", &f.message, "new", 1)];
    let second = reconcile(&[f], &open, SOURCE, now() + Duration::hours(4));
    assert!(second.create.is_empty());
    assert_eq!(second.count.len(), 1);
    assert_eq!((second.count[0].sys_id.as_str(), second.count[0].count), ("r1", 2));
    assert_eq!(second.count[0].last_detected, now() + Duration::hours(4));
    assert!(second.resolve.is_empty());
}

#[test]
fn n_changing_from_one_to_two_resolves_the_old_record_and_creates_a_new_one() {
    let old = finding("u", 1);
    let new = finding("u", 2);
    let plan = reconcile(std::slice::from_ref(&new), &[record("r1", &old.message, "new", 3)], SOURCE, now());
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.create[0].message, new.message);
    assert_eq!(plan.resolve.len(), 1);
    assert_eq!((plan.resolve[0].sys_id.as_str(), plan.resolve[0].reason), ("r1", ResolveReason::NoLongerDetected));
}

#[test]
fn records_of_other_sources_are_never_touched() {
    let f = finding("u", 1);
    let mut builtin = record("b1", &f.message, "new", 5);
    builtin.source = "MIDUserConnectivity".into();
    let mut clone = record("c1", "MID Server not operational (status: Down)…", "new", 1);
    clone.source = "InstanceClone".into();
    let plan = reconcile(&[f], &[builtin, clone], SOURCE, now());
    assert_eq!(plan.create.len(), 1, "a record of another source does not count as ours");
    assert!(plan.count.is_empty());
    assert!(plan.resolve.is_empty(), "nor is it ever resolved");
}

#[test]
fn acknowledged_record_is_counted_like_a_new_one() {
    let f = finding("u", 1);
    let plan = reconcile(std::slice::from_ref(&f), &[record("r1", &f.message, "acknowledged", 7)], SOURCE, now());
    assert_eq!(plan.count.len(), 1);
    assert_eq!(plan.count[0].count, 8);
}

#[test]
fn resolved_record_is_never_reopened() {
    let f = finding("u", 1);
    // Even if a resolved record is passed in, it is neither counted nor resolved again.
    let plan = reconcile(std::slice::from_ref(&f), &[record("r1", &f.message, "resolved", 2)], SOURCE, now());
    assert_eq!(plan.create.len(), 1, "a recurrence is a new record");
    assert!(plan.count.is_empty() && plan.resolve.is_empty());
}

#[test]
fn domain_is_refreshed_on_count() {
    let mut f = finding("u", 1);
    f.sys_domain = "d_emea".into();
    let plan = reconcile(std::slice::from_ref(&f), &[record("r1", &f.message, "new", 1)], SOURCE, now());
    assert_eq!(plan.count[0].sys_domain, "d_emea");
}

#[test]
fn fixed_user_record_is_resolved() {
    let fixed = finding("fixed", 1);
    let still = finding("still", 1);
    let open = [record("r1", &fixed.message, "new", 2), record("r2", &still.message, "new", 2)];
    let plan = reconcile(&[still], &open, SOURCE, now());
    assert_eq!(plan.count.len(), 1);
    assert_eq!(plan.resolve.iter().map(|r| r.sys_id.as_str()).collect::<Vec<_>>(), ["r1"]);
}

#[test]
fn duplicates_left_by_an_interrupted_cycle_converge_to_one_record() {
    let f = finding("u", 1);
    let mut newer = record("r2", &f.message, "new", 1);
    newer.created_on = Some(now() - Duration::minutes(5));
    let open = [newer, record("r1", &f.message, "new", 4)];
    let plan = reconcile(std::slice::from_ref(&f), &open, SOURCE, now());
    assert_eq!(plan.count.len(), 1);
    assert_eq!((plan.count[0].sys_id.as_str(), plan.count[0].count), ("r1", 5), "the oldest record is kept");
    assert_eq!(plan.resolve.len(), 1);
    assert_eq!((plan.resolve[0].sys_id.as_str(), plan.resolve[0].reason), ("r2", ResolveReason::Duplicate));
}

#[test]
fn record_with_a_mid_server_is_not_the_match_but_is_not_resolved_while_produced() {
    let f = finding("u", 1);
    let mut with_mid = record("r1", &f.message, "new", 1);
    with_mid.mid_server = Some("m1".into());
    let plan = reconcile(std::slice::from_ref(&f), &[with_mid], SOURCE, now());
    assert_eq!(plan.create.len(), 1, "the built-in match requires mid_server to be empty");
    assert!(plan.resolve.is_empty(), "its message is still produced");
}

#[test]
fn no_findings_resolves_everything_of_our_source() {
    let open = [record("r1", "a", "new", 1), record("r2", "b", "acknowledged", 9)];
    let plan = reconcile(&[], &open, SOURCE, now());
    assert_eq!(plan.resolve.len(), 2);
    assert!(plan.create.is_empty() && plan.count.is_empty());
}

#[test]
fn a_record_spelling_its_user_in_another_case_is_that_findings_record() {
    // The built-in job's `message=` lookup and its `message NOT IN` resolve ignore case, as every GlideRecord
    // query does: the record is counted, neither resolved nor written twice.
    let f = finding("MidServer.Case", 1);
    let open = [record("r1", &finding("midserver.case", 1).message, "new", 3)];
    let plan = reconcile(std::slice::from_ref(&f), &open, SOURCE, now());
    assert!(plan.create.is_empty() && plan.resolve.is_empty(), "{plan:?}");
    assert_eq!((plan.count[0].sys_id.as_str(), plan.count[0].count), ("r1", 4));
}

#[test]
fn a_selected_check_finds_its_users_records_in_any_case() {
    let open = vec![
        record("r1", &finding("MidServer.Case", 1).message, "new", 1),
        record("r2", &finding("midserver.other", 1).message, "new", 1),
        record("r3", &finding("midserver.case", 2).message.to_uppercase(), "new", 1),
    ];
    let mine: Vec<String> =
        records_of(open, &["MIDSERVER.CASE".to_string()]).iter().map(|r| r.sys_id.to_string()).collect();
    assert_eq!(mine, ["r1", "r3"]);
}
