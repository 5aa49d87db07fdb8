//! Two midwatch hosts with the same configuration (each its own state directory) against one instance, as the
//! README's "Running on two hosts" sets them up: their write-back converges. Two checks at once may each create
//! the records of the same findings (neither saw the other's); the next cycle of either keeps the oldest record
//! of each finding and resolves the others, so that one record per finding stays open, and its count never goes
//! backwards.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use midwatch::config::Config;
use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch_sim::{Dataset, FakeInstance};
use serde_json::Value;

use crate::support::*;

fn text(r: &serde_json::Map<String, Value>, f: &str) -> String {
    r.get(f).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The open records of midwatch's source: each message with its counts (one per open record).
fn open_records(instance: &FakeInstance) -> BTreeMap<String, Vec<u64>> {
    let mut open: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in instance.rows("ecc_agent_issue") {
        if text(&r, "source") == "midwatch" && text(&r, "state") != "resolved" {
            open.entry(text(&r, "message")).or_default().push(text(&r, "count").parse().unwrap_or(0));
        }
    }
    open
}

async fn cycle(config: &Config, now: DateTime<Utc>) -> Outcome {
    let opts = CheckOptions::from_config(config);
    Cycle::new(config, &client(config), &opts).check(now).await.expect("a completed check")
}

#[tokio::test]
async fn two_hosts_checking_at_once_converge_to_one_open_record_per_finding_whose_count_never_goes_back() {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    let (state_a, state_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let mut a = config_for(&instance.url());
    a.state_directory = state_a.path().to_path_buf();
    let mut b = config_for(&instance.url());
    b.state_directory = state_b.path().to_path_buf();

    // Both at once: each may create every record (it read none of the other's).
    let (first_a, first_b) = tokio::join!(cycle(&a, reference_now()), cycle(&b, reference_now()));
    let findings: Vec<String> = first_a.report.findings.iter().map(|f| f.message.clone()).collect();
    assert_eq!(first_b.report.findings.len(), findings.len(), "both hosts see the same findings");
    let after_first = open_records(&instance);
    assert_eq!(after_first.keys().cloned().collect::<Vec<_>>(), sorted(&findings), "every finding has a record");
    assert!(after_first.values().all(|counts| (1..=2).contains(&counts.len())), "{after_first:?}");

    // One more cycle of each, at once again: one open record per finding, its count not below any before.
    let later = reference_now() + chrono::Duration::minutes(5);
    instance.set_clock(later);
    tokio::join!(cycle(&a, later), cycle(&b, later));
    let after_second = open_records(&instance);
    assert_one_per_finding_not_going_back(&after_first, &after_second, &findings);

    // And one after the other: each cycle counts the one record.
    let last = later + chrono::Duration::minutes(5);
    instance.set_clock(last);
    cycle(&a, last).await;
    cycle(&b, last).await;
    let after_third = open_records(&instance);
    assert_one_per_finding_not_going_back(&after_second, &after_third, &findings);
    for (message, counts) in &after_third {
        assert!(counts[0] >= after_second[message][0] + 2, "{message}: {after_second:?} then {after_third:?}");
    }
}

fn sorted(messages: &[String]) -> Vec<String> {
    let mut v = messages.to_vec();
    v.sort();
    v
}

fn assert_one_per_finding_not_going_back(
    before: &BTreeMap<String, Vec<u64>>,
    after: &BTreeMap<String, Vec<u64>>,
    findings: &[String],
) {
    assert_eq!(after.keys().cloned().collect::<Vec<_>>(), sorted(findings), "no finding lost, none added");
    for (message, counts) in after {
        assert_eq!(counts.len(), 1, "exactly one open record of {message}: {after:?}");
        let highest_before = before[message].iter().max().copied().unwrap_or(0);
        assert!(counts[0] >= highest_before, "{message}: count went back from {highest_before} to {}", counts[0]);
    }
}
