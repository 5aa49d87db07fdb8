//! Write-back in several Batch API calls at once (`[instance] concurrency`): the guarantees of one call hold
//! for each of several in flight together — a lost answer is looked up, not re-created; the quota's cut
//! halves the batch.

use std::time::Duration;

use chrono::{DateTime, Utc};
use midwatch::config::Config;
use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::writeback::WriteBack;
use midwatch_sim::generate::down_users;
use midwatch_sim::{BATCH_FAULT_TABLE, CostModel, FakeInstance, Fault, RecordedRequest};
use serde_json::Value;

use crate::support::*;

/// 100 findings: two batches of 50. (No more: with more than 100 users, reads go through the Batch API too,
/// and the injected faults apply to the next Batch API call, whatever it carries.)
const USERS: usize = 100;

struct Site {
    instance: FakeInstance,
    config: Config,
}

async fn site() -> Site {
    let instance = FakeInstance::start(down_users(USERS), USER, PASSWORD).await.expect("start");
    // Each batch takes a while on the instance, so that batches sent together are in flight together.
    instance.set_cost(CostModel {
        per_request: Duration::from_millis(5),
        per_row: Duration::ZERO,
        per_batch_item: Duration::from_millis(2),
    });
    let mut config = config_for(&instance.url());
    config.instance.timeout = Duration::from_secs(2);
    Site { instance, config }
}

impl Site {
    async fn cycle(&self, now: DateTime<Utc>) -> Outcome {
        self.instance.set_clock(now);
        let client = client(&self.config);
        Cycle::new(&self.config, &client, &CheckOptions::from_config(&self.config)).check(now).await.expect("cycle")
    }

    /// The Batch API calls that carried writes.
    fn batches(&self) -> Vec<RecordedRequest> {
        self.instance
            .requests()
            .into_iter()
            .filter(|r| r.path == "/api/now/v1/batch" && !r.body.contains("\"GET\""))
            .collect()
    }

    /// The messages of the records written, one entry per record.
    fn messages(&self) -> Vec<String> {
        let mut m: Vec<String> = self
            .instance
            .rows("ecc_agent_issue")
            .iter()
            .filter_map(|r| r.get("message").and_then(Value::as_str).map(str::to_string))
            .collect();
        m.sort();
        m
    }
}

/// Sub-requests of a recorded Batch API call.
fn items(r: &RecordedRequest) -> usize {
    serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|v| v.get("rest_requests").and_then(Value::as_array).map(Vec::len))
        .unwrap_or(0)
}

fn assert_one_record_per_finding(site: &Site) {
    let messages = site.messages();
    let mut unique = messages.clone();
    unique.dedup();
    assert_eq!(messages.len(), USERS, "one record per finding");
    assert_eq!(unique.len(), USERS, "no duplicate");
}

#[tokio::test]
async fn the_batches_of_a_cycle_are_in_flight_together_and_each_write_lands_once() {
    let site = site().await;
    let outcome = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &outcome.write_back else { panic!("{:?}", outcome.write_back) };
    assert_eq!((applied.created.len(), applied.failed.len(), applied.adopted), (USERS, 0, 0));
    assert_one_record_per_finding(&site);
    let batches = site.batches();
    let mut sizes: Vec<usize> = batches.iter().map(items).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 50]);
    // Every batch arrived before the first one was answered: none waited for another.
    let first_done = batches.iter().map(|b| b.received + b.took).min().expect("batches");
    assert!(batches.iter().all(|b| b.received < first_done), "the batches were sent one after another");
}

#[tokio::test]
async fn a_lost_answer_in_one_of_several_concurrent_batches_is_adopted_not_duplicated() {
    let site = site().await;
    // One of the two batches runs, then its answer never comes.
    site.instance.inject(Fault::ApplyThenHang { table: BATCH_FAULT_TABLE.into() });
    let outcome = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &outcome.write_back else { panic!("{:?}", outcome.write_back) };
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    assert_eq!(applied.created.len(), USERS);
    assert_eq!(applied.adopted, 50, "the lost batch's creates were found by looking");
    assert_one_record_per_finding(&site);
    assert_eq!(site.batches().len(), 2, "nothing was sent again");

    // The next cycle counts every record once.
    site.instance.reset_counters();
    let next = site.cycle(reference_now() + chrono::Duration::minutes(5)).await;
    let WriteBack::Applied { applied, .. } = &next.write_back else { panic!("{:?}", next.write_back) };
    assert_eq!((applied.counted.len(), applied.created.len()), (USERS, 0));
    assert_one_record_per_finding(&site);
}

#[tokio::test]
async fn a_quota_cut_in_one_of_several_concurrent_batches_halves_it() {
    let site = site().await;
    // The quota stops one batch after 20 of its items; the others are left unserviced.
    site.instance.inject(Fault::BatchQuota { serviced: 20 });
    let outcome = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &outcome.write_back else { panic!("{:?}", outcome.write_back) };
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    assert_eq!((applied.created.len(), applied.adopted), (USERS, 0), "the unserviced creates had not run");
    assert_one_record_per_finding(&site);
    let sizes: Vec<usize> = site.batches().iter().map(items).collect();
    assert_eq!(sizes.len(), 4, "two batches, then the cut one's 30 left items in two: {sizes:?}");
    let mut again = sizes[2..].to_vec();
    again.sort_unstable();
    assert_eq!(again, [5, 25], "sent again in batches of half the size");
    let looks =
        site.instance.requests().iter().filter(|r| r.method == "GET" && r.path.ends_with("/ecc_agent_issue")).count();
    assert_eq!(looks, 2, "the plan's read, and one look before sending the cut creates again");
}

#[tokio::test]
async fn a_batch_call_the_quota_cancelled_has_its_creates_looked_up_not_duplicated() {
    let site = site().await;
    // One batch runs, then the instance answers that the quota cancelled the transaction.
    site.instance.inject(Fault::ApplyThenRespond {
        table: BATCH_FAULT_TABLE.into(),
        status: 200,
        body: r#"{"error":{"message":"Transaction cancelled: maximum execution time exceeded","detail":null},"status":"failure"}"#.into(),
        headers: vec![("Content-Type".into(), "application/json;charset=UTF-8".into())],
    });
    let outcome = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &outcome.write_back else { panic!("{:?}", outcome.write_back) };
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    assert_eq!(applied.created.len(), USERS);
    assert_eq!(applied.adopted, 50, "the cancelled batch's creates were found by looking");
    assert_one_record_per_finding(&site);
    assert_eq!(site.batches().len(), 2, "nothing was sent again: every create of the cut batch had gone through");
}
