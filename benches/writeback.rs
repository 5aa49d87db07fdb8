//! Requests a cycle spends on write-back for 10, 100 and 1,000 findings, through the Batch API and
//! one request per record, measured against the simulated instance on loopback.
//!
//! Run with `cargo bench --bench writeback`. Prints a table; asserts nothing about time.

use std::time::Instant;

use chrono::{DateTime, Utc};
use midwatch::cycle::{self, CheckOptions, Cycle, Outcome};
use midwatch::domain::sn_time;
use midwatch_sim::FakeInstance;
use midwatch_sim::generate::down_users as dataset;
use serde_json::Value;

const USER: &str = "bench";
const PASSWORD: &str = "bench";

struct Measure {
    writes: usize,
    total_requests: u64,
    ms: u128,
}

async fn cycle_at(instance: &FakeInstance, batch: bool, now: DateTime<Utc>) -> (Outcome, Measure) {
    let mut config = midwatch::demo::demo_config(&instance.url()).expect("config");
    config.instance.auth =
        midwatch::snow::auth::Credentials::Basic { user: USER.into(), password: PASSWORD.to_string().into() };
    config.instance.batch = batch;
    let client = cycle::client(&config, Default::default()).expect("client");
    let before = instance.requests().len();
    instance.set_clock(now);
    let started = Instant::now();
    let outcome = Cycle::new(&config, &client, &CheckOptions::from_config(&config)).check(now).await.expect("cycle");
    let ms = started.elapsed().as_millis();
    let writes =
        instance.requests()[before..].iter().filter(|r| r.method != "GET").count() + count_look_reads(instance, before);
    (outcome, Measure { writes, total_requests: (instance.requests().len() - before) as u64, ms })
}

/// Reads of ecc_agent_issue belong to write-back too (the open records, and any look after a lost create).
fn count_look_reads(instance: &FakeInstance, from: usize) -> usize {
    instance.requests()[from..].iter().filter(|r| r.method == "GET" && r.path.ends_with("/ecc_agent_issue")).count()
}

#[tokio::main]
async fn main() {
    let now = sn_time::parse("2026-11-22 12:00:00").expect("time");
    println!("write-back requests per cycle (including the read of open ecc_agent_issue records)");
    println!(
        "{:>8} {:>10} | {:>10} {:>10} {:>10} | {:>14} {:>12}",
        "findings", "mode", "create", "count", "resolve", "cycle requests", "cycle ms"
    );
    for n in [10usize, 100, 1000] {
        for batch in [true, false] {
            let instance = FakeInstance::start(dataset(n), USER, PASSWORD).await.expect("start");
            let (first, create) = cycle_at(&instance, batch, now).await;
            assert_eq!(first.report.findings.len(), n);
            let (_, count) = cycle_at(&instance, batch, now + chrono::Duration::minutes(5)).await;
            // Every MID Server comes back Up: every record is resolved.
            instance.edit(|t| {
                for m in t.get_mut("ecc_agent").into_iter().flatten() {
                    m.insert("status".into(), Value::String("Up".into()));
                }
            });
            let (_, resolve) = cycle_at(&instance, batch, now + chrono::Duration::minutes(10)).await;
            println!(
                "{n:>8} {:>10} | {:>10} {:>10} {:>10} | {:>14} {:>12}",
                if batch { "batch" } else { "per record" },
                create.writes,
                count.writes,
                resolve.writes,
                create.total_requests,
                create.ms
            );
        }
    }
}
