//! The `sysevent` read plan (bounded by users, not events) gives the same findings as reading every event, whatever the
//! instance offers: the Aggregate API with MAX of a date-time, without it, or no Aggregate API at all.

use midwatch::collect::LIGHT;
use midwatch::cycle::Outcome;
use midwatch_sim::generate::{Scenario, generate};
use midwatch_sim::{AggregateSupport, Dataset, FakeInstance};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::support::*;

const SUPPORTS: [AggregateSupport; 3] =
    [AggregateSupport::Full, AggregateSupport::NoDateMax, AggregateSupport::Unavailable];

/// Each finding as one comparable line: user, condition, message and the deciding event.
fn lines(outcome: &Outcome) -> Vec<String> {
    let mut out: Vec<String> = outcome
        .report
        .findings
        .iter()
        .map(|f| {
            let event = f.evidence.event.as_ref().map(|e| format!("{} {:?} {:?}", e.sys_id, e.name, e.ip));
            format!("{} | {:?} | {} | {:?} | {:?}", f.user, f.condition, f.message, event, f.missing_roles)
        })
        .collect();
    out.sort();
    out
}

async fn check_with(dataset: Dataset, support: AggregateSupport) -> (Outcome, FakeInstance) {
    let instance = FakeInstance::start(dataset, USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    instance.set_aggregate(support);
    let outcome = check(&instance.url()).await.expect("check completes");
    (outcome, instance)
}

#[tokio::test]
async fn demo_data_gives_the_same_findings_in_every_plan() {
    let mut seen = Vec::new();
    for support in SUPPORTS {
        let (outcome, instance) = check_with(Dataset::demo(reference_now()), support).await;
        let stats = instance.requests().iter().filter(|r| r.path.starts_with("/api/now/stats/")).count();
        match support {
            AggregateSupport::Unavailable => assert_eq!(
                stats, 3,
                "the refusals of the Up MID Servers' users asked once; the checked users' counts probed with and \
                 without MAX, then everything read"
            ),
            _ => assert_eq!(
                stats, 3,
                "one count for the one IN list; beside it one of the Up MID Servers' users' refusals, then one of \
                 the refused user's (mid.healthy) events"
            ),
        }
        seen.push(lines(&outcome));
    }
    assert_eq!(seen[0].len(), 5, "{:#?}", seen[0]);
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
}

#[tokio::test]
async fn a_generated_instance_gives_the_same_findings_in_every_plan_and_reads_few_events() {
    let scenario = Scenario::small(20_000, reference_now());
    let generated = generate(&scenario);
    let mut seen = Vec::new();
    for support in SUPPORTS {
        let (outcome, instance) = check_with(generated.dataset.clone(), support).await;
        assert_eq!(outcome.report.findings.len(), generated.expected_findings, "{support:?}");
        let rows = instance.tally().rows_returned.get("sysevent").copied().unwrap_or(0);
        if support == AggregateSupport::Unavailable {
            assert!(rows >= generated.checked_login_events as u64, "reads every login event: {rows}");
        } else {
            // At most LIGHT rows per user read without MAX; about one per user with it (a tie, or
            // another user's row in a hostile name's superset second, adds one). The users read are the
            // checked ones and, for the early warnings, the users of Up MID Servers.
            let users = (generated.checked_users + generated.up_mid_users) as u64;
            let bound = if support == AggregateSupport::Full { 2 * users } else { LIGHT * users };
            assert!(rows <= bound, "{support:?}: {rows} sysevent rows for {users} users");
        }
        // Nothing hostile reached a query verbatim.
        for r in instance.requests() {
            for (k, v) in &r.query {
                if k == "sysparm_query" {
                    assert!(!v.contains("mid.user 7") && !v.contains("mid,user"), "{v}");
                }
            }
        }
        seen.push(lines(&outcome));
    }
    assert_eq!(seen[0], seen[1], "MAX and no MAX");
    assert_eq!(seen[0], seen[2], "MAX and every event read");
    for hostile in ["mid.user 7", "mid,user^ORparm1ISNOTEMPTY"] {
        assert!(seen[0].iter().any(|l| l.starts_with(&format!("{hostile} |"))), "{hostile} has its finding");
    }
}

#[tokio::test]
async fn events_after_the_window_end_change_nothing() {
    let scenario = Scenario::small(15_000, reference_now());
    let generated = generate(&scenario);
    let (before, _) = check_with(generated.dataset.clone(), AggregateSupport::Full).await;
    for support in SUPPORTS {
        let mut dataset = generated.dataset.clone();
        // Every checked user logs in successfully one second after the window: it must not count.
        let later = reference_now() + chrono::TimeDelta::seconds(1);
        for (i, f) in before.report.findings.iter().enumerate() {
            dataset.events.push(later, "login", &f.user, "10.9.9.9", 10_000_000 + i as u64);
        }
        let (after, _) = check_with(dataset, support).await;
        assert_eq!(lines(&after), lines(&before), "{support:?}");
    }
}

#[tokio::test]
async fn aggregate_answers_are_read_leniently() {
    // Counts as numbers and strings, a group value as a reference object, an empty MAX, a group of a
    // user not checked, and one name missing: the demo scenario's findings all the same.
    let stats = r#"{"result":[
        {"stats":{"count":1,"max":{"sys_created_on":""}},"groupby_fields":[{"field":"parm1","value":"midserver2"},{"field":"name","value":"login"}]},
        {"stats":{"count":"2"},"groupby_fields":[{"field":"parm1","value":{"value":"midserver2","display_value":"midserver2"}},{"field":"name","value":"login.failed"}]},
        {"stats":{"count":"1"},"groupby_fields":[{"field":"parm1","value":"local-midserver"},{"field":"name","value":"login"}]},
        {"stats":{"count":"1"},"groupby_fields":[{"field":"parm1","value":"local-midserver"},{"field":"name","value":"login.failed"}]},
        {"stats":{"count":"1"},"groupby_fields":[{"field":"parm1","value":"local-midserver"},{"field":"name","value":"login.authorization.failed"}]},
        {"stats":{"count":"2"},"groupby_fields":[{"field":"parm1","value":"ardis.maison"},{"field":"name","value":"login"}]},
        {"stats":{"count":"4"},"groupby_fields":[{"field":"parm1","value":"jane.doe"},{"field":"name","value":"login"}]}
    ]}"#;
    let reference = MockServer::start().await;
    mount_demo_tables(&reference, &[]).await;
    let want = lines(&check(&reference.uri()).await.expect("check"));

    for answer in [
        stats.to_string(),
        format!(
            "{{\"result\":{},\"error\":{{\"message\":\"Transaction cancelled: maximum execution time exceeded\",\"detail\":null}},\"status\":\"failure\"}}",
            "[]"
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/now/stats/sysevent"))
            .respond_with(json_response(200, &answer))
            .mount(&server)
            .await;
        mount_demo_tables(&server, &[]).await;
        let outcome = check(&server.uri()).await.expect("check");
        assert_eq!(lines(&outcome), want, "{answer}");
    }
}

/// The Batch API sub-requests of every recorded call, by path.
fn sub_requests(instance: &FakeInstance, prefix: &str) -> usize {
    instance
        .requests()
        .iter()
        .filter(|r| r.path == "/api/now/v1/batch")
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
        .flat_map(|b| b["rest_requests"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["method"] == "GET" && i["url"].as_str().is_some_and(|u| u.starts_with(prefix)))
        .count()
}

#[tokio::test]
async fn many_users_counts_and_latest_seconds_go_through_the_batch_api_and_find_the_same() {
    let generated = generate(&Scenario::large(60_000, reference_now()));
    let direct = |instance: &FakeInstance, prefix: &str| {
        instance.requests().iter().filter(|r| r.method == "GET" && r.path.starts_with(prefix)).count()
    };
    let (batched, instance) = check_with(generated.dataset.clone(), AggregateSupport::Full).await;
    assert_eq!(batched.report.findings.len(), generated.expected_findings);
    assert_eq!(
        direct(&instance, "/api/now/stats/sysevent"),
        2,
        "one count probes, the others are batched (and one asks for the Up MID Servers' users' refusals)"
    );
    assert!(sub_requests(&instance, "/api/now/stats/sysevent") >= 2, "several parts' counts in a call");
    assert!(sub_requests(&instance, "/api/now/table/sysevent") >= 2, "the latest seconds' reads in a call");
    assert_eq!(direct(&instance, "/api/now/table/sysevent"), 0);

    // Where the Batch API refuses every read, the same questions go directly, and find the same.
    let (by_hand, instance) = {
        let instance = FakeInstance::start(generated.dataset.clone(), USER, PASSWORD).await.expect("start");
        instance.set_clock(reference_now());
        instance.set_aggregate(AggregateSupport::Full);
        for _ in 0..60 {
            instance.inject(midwatch_sim::Fault::Respond {
                table: midwatch_sim::BATCH_FAULT_TABLE.into(),
                status: 400,
                body: r#"{"error":{"message":"Requested URI does not represent any resource","detail":null},"status":"failure"}"#.into(),
                headers: vec![],
            });
        }
        let outcome = check(&instance.url()).await.expect("check completes");
        (outcome, instance)
    };
    assert!(direct(&instance, "/api/now/stats/sysevent") >= 3, "the counts were asked for directly");
    assert!(direct(&instance, "/api/now/table/sysevent") >= 2, "the latest seconds were read directly");
    assert_eq!(lines(&by_hand), lines(&batched));
}
