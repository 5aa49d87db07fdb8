//! Write-back against the stateful simulated instance: what the tests read back is what the
//! program wrote.

use std::time::Duration;

use chrono::{DateTime, Utc};
use midwatch::config::Config;
use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::writeback::WriteBack;
use midwatch_sim::{BATCH_FAULT_TABLE, Dataset, FakeInstance, Fault};
use serde_json::{Map, Value};

use crate::support::*;

const TABLE: &str = "ecc_agent_issue";

struct Site {
    instance: FakeInstance,
    config: Config,
    client: midwatch::snow::Client,
}

async fn site(batch: bool) -> Site {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    let mut config = config_for(&instance.url());
    config.instance.batch = batch;
    config.instance.timeout = Duration::from_secs(1);
    let client = client(&config);
    Site { instance, config, client }
}

impl Site {
    async fn cycle(&self, now: DateTime<Utc>) -> Outcome {
        self.instance.set_clock(now);
        let opts = CheckOptions::from_config(&self.config);
        Cycle::new(&self.config, &self.client, &opts).check(now).await.expect("cycle")
    }

    fn records(&self, source: &str) -> Vec<Map<String, Value>> {
        self.instance
            .rows(TABLE)
            .into_iter()
            .filter(|r| r.get("source").and_then(Value::as_str) == Some(source))
            .collect()
    }

    fn open_records(&self) -> Vec<(String, String)> {
        let mut open: Vec<(String, String)> = self
            .records("midwatch")
            .iter()
            .filter(|r| text(r, "state") != "resolved")
            .map(|r| (text(r, "message"), text(r, "count")))
            .collect();
        open.sort();
        open
    }

    fn writes(&self) -> usize {
        self.instance.requests().iter().filter(|r| r.method != "GET").count()
    }
}

fn text(r: &Map<String, Value>, f: &str) -> String {
    match r.get(f) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("value").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

/// midserver2 is unlocked and its MID Server logs in at `at` (the demo's own fix).
fn fix_midserver2(site: &Site, at: DateTime<Utc>) {
    site.instance.edit(|tables| midwatch_sim::edits::fix_midserver2(tables, at));
}

async fn detect_persist_fix(batch: bool) {
    let site = site(batch).await;
    let clone_before = site.records("InstanceClone");

    // Cycle 1: detect — five records, count 1, no mid_server, our source, the user's domain.
    let first = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &first.write_back else { panic!("{:?}", first.write_back) };
    assert_eq!((applied.created.len(), applied.counted.len(), applied.resolved.len()), (5, 0, 0));
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    assert_eq!(applied.batch, batch);
    let records = site.records("midwatch");
    assert_eq!(records.len(), 5);
    for r in &records {
        assert_eq!(text(r, "count"), "1");
        assert_eq!(text(r, "state"), "new");
        assert_eq!(text(r, "mid_server"), "");
        assert_eq!(text(r, "sys_domain"), "global");
        assert_eq!(text(r, "last_detected"), "2026-11-22 12:00:00");
    }
    let messages: Vec<String> = first.report.findings.iter().map(|f| f.message.clone()).collect();
    assert!(records.iter().all(|r| messages.contains(&text(r, "message"))));

    // Cycle 2: persist — the same five, counted to 2, no new record.
    let later = reference_now() + minutes(5);
    let second = site.cycle(later).await;
    let WriteBack::Applied { applied, .. } = &second.write_back else { panic!() };
    assert_eq!((applied.created.len(), applied.counted.len(), applied.resolved.len()), (0, 5, 0));
    assert_eq!(site.records("midwatch").len(), 5);
    assert!(site.open_records().iter().all(|(_, count)| count == "2"), "{:?}", site.open_records());
    assert!(site.records("midwatch").iter().all(|r| text(r, "last_detected") == "2026-11-22 12:05:00"));

    // An administrator acknowledges one record: it is still counted.
    site.instance.edit(|t| {
        if let Some(r) = t.get_mut(TABLE).and_then(|rows| {
            rows.iter_mut().find(|r| text(r, "source") == "midwatch" && text(r, "message").contains("mid.paris"))
        }) {
            r.insert("state".into(), Value::String("acknowledged".into()));
        }
    });

    // Cycle 3: fix — midserver2 logs in; its record is resolved, the others count 3.
    let last = later + minutes(5);
    fix_midserver2(&site, last - minutes(2));
    let third = site.cycle(last).await;
    let WriteBack::Applied { applied, .. } = &third.write_back else { panic!() };
    assert_eq!((applied.created.len(), applied.counted.len(), applied.resolved.len()), (0, 4, 1));
    let all = site.records("midwatch");
    assert_eq!(all.len(), 5, "no record created or deleted");
    let resolved: Vec<String> =
        all.iter().filter(|r| text(r, "state") == "resolved").map(|r| text(r, "message")).collect();
    assert_eq!(resolved.len(), 1);
    assert!(resolved[0].contains("User midserver2 "), "{resolved:?}");
    assert!(site.open_records().iter().all(|(_, count)| count == "3"));
    assert!(all.iter().any(|r| text(r, "state") == "acknowledged" && text(r, "count") == "3"));

    // Cycle 4: midserver2 fails again — a new record; the resolved one is never reopened.
    site.instance.edit(|t| {
        if let Some(events) = t.get_mut("sysevent") {
            events.retain(|e| text(e, "sys_id") != midwatch_sim::edits::FIX_EVENT_SYS_ID);
        }
    });
    let fourth = site.cycle(last + minutes(5)).await;
    let WriteBack::Applied { applied, .. } = &fourth.write_back else { panic!() };
    assert_eq!(applied.created.len(), 1);
    assert_eq!(site.records("midwatch").iter().filter(|r| text(r, "state") == "resolved").count(), 1);

    assert_eq!(site.records("InstanceClone"), clone_before, "another source's record is untouched");
}

#[tokio::test]
async fn detect_persist_fix_through_the_batch_api() {
    detect_persist_fix(true).await;
}

#[tokio::test]
async fn detect_persist_fix_one_request_per_record() {
    detect_persist_fix(false).await;
}

#[tokio::test]
async fn batch_api_uses_one_request_for_all_writes() {
    let site = site(true).await;
    site.cycle(reference_now()).await;
    let writes: Vec<String> = site
        .instance
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, ["POST /api/now/v1/batch"]);
}

#[tokio::test]
async fn unavailable_batch_api_falls_back_to_one_request_per_record() {
    let site = site(true).await;
    let body =
        r#"{"error":{"message":"Requested URI does not represent any resource","detail":null},"status":"failure"}"#;
    site.instance.inject(Fault::Respond {
        table: BATCH_FAULT_TABLE.into(),
        status: 400,
        body: body.into(),
        headers: vec![],
    });
    let outcome = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &outcome.write_back else { panic!() };
    assert!(!applied.batch);
    assert_eq!(applied.created.len(), 5);
    assert_eq!(site.records("midwatch").len(), 5);
}

async fn lost_create_leaves_no_duplicate(batch: bool, fault: Fault) {
    let site = site(batch).await;
    site.instance.inject(fault);
    let first = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &first.write_back else { panic!() };
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    assert!(applied.adopted >= 1, "the lost create was found by looking, not re-sent");
    assert_eq!(site.records("midwatch").len(), 5, "no duplicate after the lost answer");

    // The next cycle converges: every record counted once, still no duplicate.
    site.cycle(reference_now() + minutes(5)).await;
    let open = site.open_records();
    assert_eq!(open.len(), 5);
    assert!(open.iter().all(|(_, c)| c == "2"), "{open:?}");
}

#[tokio::test]
async fn dropped_connection_on_a_post_leaves_no_duplicate() {
    lost_create_leaves_no_duplicate(false, Fault::ApplyThenHang { table: TABLE.into() }).await;
}

#[tokio::test]
async fn server_error_after_a_post_leaves_no_duplicate() {
    lost_create_leaves_no_duplicate(false, Fault::ApplyThen503 { table: TABLE.into() }).await;
}

#[tokio::test]
async fn lost_batch_answer_leaves_no_duplicate() {
    lost_create_leaves_no_duplicate(true, Fault::ApplyThenHang { table: BATCH_FAULT_TABLE.into() }).await;
}

fn gateway_page(table: &str, status: u16) -> Fault {
    Fault::ApplyThenRespond {
        table: table.into(),
        status,
        body: fixture("answers/gateway_200.html"),
        headers: vec![("Content-Type".into(), "text/html;charset=UTF-8".into())],
    }
}

/// The writes the instance received, in order.
fn write_log(site: &Site) -> Vec<String> {
    site.instance.requests().iter().filter(|r| r.method != "GET").map(|r| format!("{} {}", r.method, r.path)).collect()
}

#[tokio::test]
async fn batch_answer_replaced_by_a_gateway_html_page_leaves_no_duplicate() {
    let site = site(true).await;
    site.instance.inject(gateway_page(BATCH_FAULT_TABLE, 200));
    let first = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &first.write_back else { panic!("{:?}", first.write_back) };
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    assert_eq!((applied.created.len(), applied.adopted), (5, 5), "all five found by looking, none re-sent");
    assert!(applied.batch, "the Batch API was used: no fallback");
    assert_eq!(site.records("midwatch").len(), 5, "no duplicate after the lost answer");
    assert_eq!(write_log(&site), ["POST /api/now/v1/batch"], "nothing sent again");
    let reads_of_issues =
        site.instance.requests().iter().filter(|r| r.method == "GET" && r.path.ends_with(TABLE)).count();
    assert_eq!(reads_of_issues, 2, "the plan's read, and the look after the lost answer");
    assert_eq!(
        site.instance.requests().len(),
        19,
        "the cycle's 17 reads (one of them the SSO evidence's; one counts the Up MID Servers' users' refusals, two \
         read the refused user's latest event), 1 batch, 1 look"
    );

    // The next cycle counts the five once; still no duplicate.
    site.cycle(reference_now() + minutes(5)).await;
    let open = site.open_records();
    assert_eq!(open.len(), 5);
    assert!(open.iter().all(|(_, c)| c == "2"), "{open:?}");
    assert_eq!(site.records("midwatch").len(), 5);
}

#[tokio::test]
async fn batch_answer_cut_off_leaves_no_duplicate() {
    lost_create_leaves_no_duplicate(true, Fault::CutOff { table: BATCH_FAULT_TABLE.into(), bytes: 40 }).await;
}

/// A write's answer whose body was cut short (a complete HTTP answer): the write may have happened, so it is
/// looked up, never sent again blindly.
#[tokio::test]
async fn batch_answer_truncated_is_looked_up_not_sent_again() {
    let site = site(true).await;
    site.instance.inject(Fault::Truncated { table: BATCH_FAULT_TABLE.into(), bytes: 40 });
    let first = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &first.write_back else { panic!("{:?}", first.write_back) };
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    assert_eq!((applied.created.len(), applied.adopted), (5, 5), "all five found by looking, none re-sent");
    assert_eq!(write_log(&site), ["POST /api/now/v1/batch"], "nothing sent again");
    assert_eq!(site.records("midwatch").len(), 5, "no duplicate");
}

#[tokio::test]
async fn post_answer_truncated_is_looked_up_not_sent_again() {
    // The first create is stored, and its 201 comes with a body cut short (or none) in a complete HTTP answer.
    for body in [r#"{"result":{"sys_id":"0a"#, ""] {
        let site = site(false).await;
        let headers = vec![("Content-Type".into(), "application/json;charset=UTF-8".into())];
        site.instance.inject(Fault::ApplyThenRespond { table: TABLE.into(), status: 201, body: body.into(), headers });
        let first = site.cycle(reference_now()).await;
        let WriteBack::Applied { applied, .. } = &first.write_back else { panic!("{:?}", first.write_back) };
        assert!(applied.failed.is_empty(), "{:?}", applied.failed);
        assert_eq!((applied.created.len(), applied.adopted), (5, 1), "{body:?}: the cut create was found by looking");
        assert_eq!(write_log(&site).len(), 5, "one POST per finding, none sent again: {:?}", write_log(&site));
        assert_eq!(site.records("midwatch").len(), 5, "no duplicate");
    }
}

#[tokio::test]
async fn batch_answered_by_a_load_balancers_503_page_leaves_no_duplicate() {
    lost_create_leaves_no_duplicate(true, gateway_page(BATCH_FAULT_TABLE, 503)).await;
}

#[tokio::test]
async fn post_answered_by_a_gateway_html_page_leaves_no_duplicate() {
    lost_create_leaves_no_duplicate(false, gateway_page(TABLE, 200)).await;
}

#[tokio::test]
async fn batch_api_not_found_falls_back_before_anything_is_written() {
    let site = site(true).await;
    site.instance.inject(Fault::Respond {
        table: BATCH_FAULT_TABLE.into(),
        status: 404,
        body: "<html><head><title>404 Not Found</title></head></html>".into(),
        headers: vec![("Content-Type".into(), "text/html".into())],
    });
    let outcome = site.cycle(reference_now()).await;
    let WriteBack::Applied { applied, .. } = &outcome.write_back else { panic!() };
    assert!(!applied.batch);
    assert_eq!((applied.created.len(), applied.adopted), (5, 0));
    assert_eq!(site.records("midwatch").len(), 5);
    let log = write_log(&site);
    assert_eq!(log.len(), 6, "{log:?}");
    assert_eq!(log[0], "POST /api/now/v1/batch");
}

#[tokio::test]
async fn interrupted_cycle_duplicates_converge_to_one_record() {
    let site = site(false).await;
    site.cycle(reference_now()).await;
    // A crash between a create and its answer, followed by a blind retry, left a second record.
    let dup = site.records("midwatch")[0].clone();
    site.instance.edit(|t| {
        let mut copy = dup.clone();
        copy.insert("sys_id".into(), Value::String("dddd0000000000000000000000000001".into()));
        copy.insert("sys_created_on".into(), Value::String("2026-11-22 12:00:05".into()));
        t.entry(TABLE.into()).or_default().push(copy);
    });
    site.cycle(reference_now() + minutes(5)).await;
    let open = site.open_records();
    assert_eq!(open.len(), 5, "{open:?}");
    let resolved = site.records("midwatch").into_iter().filter(|r| text(r, "state") == "resolved").collect::<Vec<_>>();
    assert_eq!(resolved.len(), 1);
    assert_eq!(text(&resolved[0], "sys_id"), "dddd0000000000000000000000000001", "the newer duplicate is resolved");
}

#[tokio::test]
async fn dry_run_sends_no_write_at_all() {
    let site = site(true).await;
    let mut opts = CheckOptions::from_config(&site.config);
    opts.dry_run = true;
    let outcome = Cycle::new(&site.config, &site.client, &opts).check(reference_now()).await.expect("cycle");
    let WriteBack::DryRun { plan, .. } = &outcome.write_back else { panic!("{:?}", outcome.write_back) };
    assert_eq!(plan.create.len(), 5);
    assert_eq!(site.writes(), 0, "no POST, PATCH or batch");
    assert!(site.records("midwatch").is_empty());
    let text = outcome.view(None).render(midwatch::present::Format::Text, midwatch::present::Detail::Detailed);
    assert!(text.contains("dry run, nothing written: would create 5, count 0, resolve 0"), "{text}");
    assert!(!text.contains(PASSWORD));
}

#[tokio::test]
async fn dry_run_through_the_binary_writes_nothing() {
    let instance = FakeInstance::start(Dataset::demo(Utc::now()), USER, PASSWORD).await.expect("start");
    let (_dir, file) = config_file(&instance.url());
    let url = instance.url();
    let (code, stdout, _) = tokio::task::spawn_blocking(move || {
        let _ = url;
        run_binary(&["check", "--dry-run", "--config", file.to_str().expect("utf-8")])
    })
    .await
    .expect("join");
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("would create:   Login authentication failure for User midserver2"), "{stdout}");
    let writes: Vec<_> = instance.requests().into_iter().filter(|r| r.method != "GET").collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[tokio::test]
async fn no_write_skips_write_back_and_keeps_the_exit_status() {
    let site = site(true).await;
    let mut opts = CheckOptions::from_config(&site.config);
    opts.no_write = true;
    let outcome = Cycle::new(&site.config, &site.client, &opts).check(reference_now()).await.expect("cycle");
    assert!(matches!(outcome.write_back, WriteBack::Disabled));
    assert_eq!(outcome.report.status.exit_code(), 2);
    // Read once, for the findings' history (since when); never written.
    let touched: Vec<String> =
        site.instance.requests().iter().filter(|r| r.path.ends_with(TABLE)).map(|r| r.method.clone()).collect();
    assert_eq!(touched, ["GET"], "one read, no write");
    assert!(outcome.report.findings.iter().all(|f| f.history.is_some()));
}

#[tokio::test]
async fn unreadable_issue_table_is_reported_without_changing_the_status() {
    let site = site(true).await;
    let body = r#"{"error":{"message":"Insufficient rights to query records","detail":null},"status":"failure"}"#;
    site.instance.inject(Fault::Respond { table: TABLE.into(), status: 403, body: body.into(), headers: vec![] });
    let outcome = site.cycle(reference_now()).await;
    let WriteBack::Failed { error, .. } = &outcome.write_back else { panic!("{:?}", outcome.write_back) };
    let error = error.to_string();
    assert!(error.contains("may not read table ecc_agent_issue"), "{error}");
    assert_eq!(outcome.report.status.exit_code(), 2);
    assert_eq!(site.writes(), 0);
}

#[tokio::test]
async fn since_when_grows_over_cycles_and_a_finding_back_after_resolve_says_so() {
    let site = site(true).await;
    let t0 = reference_now();
    let first = site.cycle(t0).await;
    for f in &first.report.findings {
        let h = f.history.expect("history from the read of ecc_agent_issue");
        assert_eq!((h.first_detected, h.times_detected, h.resolved_before), (t0, 1, None), "{}", f.message);
    }

    // Five minutes later the same findings: their records' age and count.
    let t1 = t0 + chrono::Duration::minutes(5);
    let second = site.cycle(t1).await;
    for f in &second.report.findings {
        let h = f.history.expect("history");
        assert_eq!((h.first_detected, h.times_detected), (t0, 2), "{}", f.message);
    }
    let text = second.view(None).render(midwatch::present::Format::Text, midwatch::present::Detail::Detailed);
    assert!(text.contains("open for 5m, detected by 2 checks since "), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&second.view(None).render(midwatch::present::Format::Json, Default::default()))
            .expect("json");
    assert_eq!(json["findings"][0]["times_detected"], 2);
    assert_eq!(json["findings"][0]["first_detected"], midwatch::domain::sn_time::format(t0));

    // midserver2 is fixed: its record is resolved; then it fails again and is back.
    let t2 = t1 + chrono::Duration::minutes(5);
    site.instance.edit(|tables| midwatch_sim::edits::fix_midserver2(tables, t2 - chrono::Duration::minutes(2)));
    let third = site.cycle(t2).await;
    assert!(third.report.findings.iter().all(|f| f.user != "midserver2"));
    let t3 = t2 + chrono::Duration::minutes(5);
    site.instance.edit(|tables| {
        if let Some(events) = tables.get_mut("sysevent") {
            let mut again = serde_json::Map::new();
            for (k, v) in [
                ("sys_id", "e7e7ffff000000000000000000000099"),
                ("name", "login.failed"),
                ("parm1", "midserver2"),
                ("parm2", "10.20.30.41"),
            ] {
                again.insert(k.into(), Value::String(v.into()));
            }
            let at = midwatch::domain::sn_time::format(t3 - chrono::Duration::minutes(1));
            again.insert("sys_created_on".into(), Value::String(at));
            events.push(again);
        }
    });
    let fourth = site.cycle(t3).await;
    let back = fourth.report.findings.iter().find(|f| f.user == "midserver2").expect("midserver2 again");
    let h = back.history.expect("history");
    assert_eq!((h.times_detected, h.resolved_before), (1, Some(t2)), "resolved by the third cycle, at t2");
    let text = fourth.view(None).render(midwatch::present::Format::Text, midwatch::present::Detail::Detailed);
    assert!(text.contains("new: back after 5m (midwatch resolved it"), "{text}");
}
