//! Requests a cycle spends on write-back for 10, 100 and 1,000 findings, through the Batch API and
//! one request per record, measured against the simulated instance on loopback.
//!
//! Run with `cargo bench --bench writeback`. Prints a table; asserts nothing about time.

use std::time::Instant;

use chrono::{DateTime, Utc};
use midwatch::cycle::{self, CheckOptions, Outcome};
use midwatch::domain::sn_time;
use midwatch_sim::{Dataset, FakeInstance};
use serde_json::{Value, json};

const USER: &str = "bench";
const PASSWORD: &str = "bench";

fn reference(table: &str, id: &str) -> Value {
    json!({"link": format!("https://bench.service-now.com/api/now/table/{table}/{id}"), "value": id})
}

/// `n` users with the mid_server role, each configured on its own down MID Server, none logging in.
fn dataset(n: usize) -> Dataset {
    let role = "a0000000000000000000000000000001";
    let mut tables: Vec<(&str, Vec<Value>)> = vec![
        ("sys_user_role", vec![json!({"sys_id": role, "name": "mid_server"})]),
        ("sys_user_role_contains", vec![]),
        ("sys_user", vec![]),
        ("sys_user_has_role", vec![]),
        ("ecc_agent", vec![]),
        ("ecc_agent_config", vec![]),
        ("sysevent", vec![]),
        ("sys_user_login_history", vec![]),
        ("ecc_agent_issue", vec![]),
    ];
    for i in 0..n {
        let (uid, mid) = (format!("b{i:031}"), format!("c{i:031}"));
        let name = format!("mid.user{i:04}");
        tables[2].1.push(json!({"sys_id": uid, "user_name": name, "active": "true", "locked_out": "false", "sys_domain": reference("sys_user_group", "global")}));
        tables[3].1.push(json!({"sys_id": format!("d{i:031}"), "user": reference("sys_user", &uid), "role": reference("sys_user_role", role), "inherited": "false"}));
        tables[4].1.push(json!({"sys_id": mid, "name": format!("mid-{i:04}"), "status": "Down"}));
        tables[5].1.push(json!({"sys_id": format!("e{i:031}"), "ecc_agent": reference("ecc_agent", &mid), "param_name": "mid.instance.username", "value": name}));
    }
    let mut d = Dataset::default();
    for (table, rows) in tables {
        d.insert_fixture(table, &json!({ "result": rows }).to_string()).expect("bench fixture");
    }
    d
}

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
    let outcome = cycle::check(&config, &client, &CheckOptions::from_config(&config), now).await.expect("cycle");
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
