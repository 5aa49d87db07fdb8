//! Paging never drops or repeats a row.

use std::collections::BTreeSet;
use std::time::Duration;

use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::domain::{Category, Condition, sn_time};
use midwatch::snow::auth::Credentials;
use midwatch::snow::query::Query;
use midwatch::snow::query::{Field, QueryValue};
use midwatch::snow::{Client, ClientOptions};
use midwatch_sim::generate::down_users;
use midwatch_sim::{Dataset, FakeInstance};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer};

use crate::support::*;

fn client_with_page_size(url: &str, page_size: u32) -> Client {
    Client::new(ClientOptions {
        base_url: url.parse().expect("url"),
        auth: Credentials::Basic { user: USER.into(), password: PASSWORD.to_string().into() },
        timeout: Duration::from_secs(5),
        page_size,
        concurrency: 2,
        retry: fast_retry(),
        proxy: None,
        extra_ca: None,
    })
    .expect("client")
}

#[tokio::test]
async fn offset_paging_follows_link_headers_across_pages() {
    let server = MockServer::start().await;
    let base = server.uri();
    let link = |offset: u32, next: bool| {
        let mut parts =
            vec![format!("<{base}/api/now/table/ecc_agent?sysparm_offset=0&sysparm_limit=2>;rel=\"first\"")];
        if next {
            parts.push(format!(
                "<{base}/api/now/table/ecc_agent?sysparm_offset={}&sysparm_limit=2>;rel=\"next\"",
                offset + 2
            ));
        }
        parts.push(format!("<{base}/api/now/table/ecc_agent?sysparm_offset=4&sysparm_limit=2>;rel=\"last\""));
        parts.join(",")
    };
    for (offset, ids, next) in [(0, ["m1", "m2"].as_slice(), true), (2, &["m3", "m4"], true), (4, &["m5"], false)] {
        let rows: Vec<_> = ids.iter().map(|id| json!({"sys_id": id, "name": id, "status": "Up"})).collect();
        Mock::given(method("GET"))
            .and(path("/api/now/table/ecc_agent"))
            .and(query_param("sysparm_offset", offset.to_string()))
            .and(query_param("sysparm_limit", "2"))
            .and(query_param("sysparm_query", "ORDERBYsys_id"))
            .respond_with(
                json_response(200, &json!({"result": rows}).to_string())
                    .insert_header("Link", link(offset, next).as_str())
                    .insert_header("X-Total-Count", "5"),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    let rows = client_with_page_size(&base, 2)
        .read_all("ecc_agent", &Query::default(), &["sys_id", "name", "status"])
        .await
        .expect("read");
    let ids: Vec<String> = rows.iter().map(|r| r.text("sys_id")).collect();
    assert_eq!(ids, ["m1", "m2", "m3", "m4", "m5"]);
}

/// 25 events in three seconds (ties larger than a page) plus events after the upper bound.
fn events_dataset() -> Dataset {
    let mut rows = Vec::new();
    for i in 0..25u32 {
        let second = ["2026-11-22 10:00:00", "2026-11-22 10:00:01", "2026-11-22 10:00:02"][(i % 3) as usize];
        // sys_ids deliberately not in time order.
        rows.push(json!({"sys_id": format!("{:032x}", (i * 7919) % 1000), "name": "login", "parm1": "u", "parm2": "", "sys_created_on": second}));
    }
    for i in 0..3u32 {
        rows.push(json!({"sys_id": format!("f{i:031}"), "name": "login", "parm1": "u", "parm2": "", "sys_created_on": "2026-11-22 12:00:01"}));
    }
    let mut d = Dataset::default();
    d.insert_fixture("sysevent", &json!({"result": rows}).to_string()).expect("fixture");
    d
}

#[tokio::test]
async fn keyset_paging_reads_every_row_once_even_when_a_second_spans_pages() {
    let instance = FakeInstance::start(events_dataset(), USER, PASSWORD).await.expect("start");
    let upper = sn_time::parse("2026-11-22 12:00:00").expect("time");
    for page_size in [1, 2, 3, 7, 100] {
        let client = client_with_page_size(&instance.url(), page_size);
        let mut rows = Vec::new();
        client
            .fold_keyset(
                "sysevent",
                &Query::new().eq(Field::new("name"), &QueryValue::fixed("login")),
                &["name", "parm1"],
                upper,
                |page| rows.extend(page),
            )
            .await
            .expect("read");
        let keys: Vec<(String, String)> = rows.iter().map(|r| (r.text("sys_created_on"), r.text("sys_id"))).collect();
        let unique: BTreeSet<&(String, String)> = keys.iter().collect();
        assert_eq!(keys.len(), 25, "page size {page_size}: every row inside the bound");
        assert_eq!(unique.len(), 25, "page size {page_size}: no row twice");
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "page size {page_size}: in key order");
    }
    let queries: Vec<String> = instance
        .requests()
        .iter()
        .flat_map(|r| r.query.iter().filter(|(k, _)| k == "sysparm_query").map(|(_, v)| v.clone()))
        .collect();
    // Every page is under the fixed upper bound, or pinned to one second (the tie pages).
    assert!(
        queries
            .iter()
            .all(|q| q.contains("sys_created_on<=2026-11-22 12:00:00")
                || q.contains("sys_created_on=2026-11-22 10:00:0")),
        "{queries:#?}"
    );
    assert!(queries.iter().any(|q| q.contains("^sys_id>")), "ties larger than a page were read by sys_id");
}

/// 250 users of 250 Down MID Servers, none logging in; `mid_server` contains `soap_script`, which each user
/// holds (inherited), so each is a network finding whose connectivity the instance can detect. Each user's two
/// role rows are far apart in `sys_id` order, so a page that ends early cannot hold both.
fn down_users_with_soap_script() -> Dataset {
    let mut d = down_users(250);
    let (mid_server, soap_script) = ("a0000000000000000000000000000001", "a0000000000000000000000000000002");
    let row = |v: serde_json::Value| v.as_object().cloned().expect("an object");
    let tables = &mut d.tables;
    tables.entry("sys_user_role".into()).or_default().push(row(json!({"sys_id": soap_script, "name": "soap_script"})));
    tables.entry("sys_user_role_contains".into()).or_default().push(row(json!({
        "sys_id": "a1000000000000000000000000000001",
        "role": reference("sys_user_role", mid_server),
        "contains": reference("sys_user_role", soap_script),
    })));
    for i in 0..250 {
        tables.entry("sys_user_has_role".into()).or_default().push(row(json!({
            "sys_id": format!("f{i:031}"),
            "user": reference("sys_user", &format!("b{i:031}")),
            "role": reference("sys_user_role", soap_script),
            "inherited": "true",
        })));
    }
    d
}

/// A cycle against [`down_users_with_soap_script`] on an instance that serves at most `cap` rows a page, with
/// `[instance] concurrency` (1: the reads of many conditions go through the Batch API).
async fn capped_cycle(cap: usize, concurrency: usize) -> (FakeInstance, Outcome) {
    let instance = FakeInstance::start(down_users_with_soap_script(), USER, PASSWORD).await.expect("start");
    instance.set_page_cap(cap);
    let mut config = config_for(&instance.url());
    config.instance.concurrency = concurrency;
    let client = client(&config);
    let outcome =
        Cycle::new(&config, &client, &CheckOptions::from_config(&config)).check(reference_now()).await.expect("cycle");
    (instance, outcome)
}

/// An instance (or a gateway in front of it) that serves at most 100 rows a page whatever `sysparm_limit` asks,
/// with a Link header whose next page starts at 100: every page is read from where the answer says, so each of
/// 250 users of 250 Down MID Servers gets its network finding, and none is taken for a user without a MID Server.
/// With a cap of 30, the pages of the Batch API's sub-requests (100 users a query) are capped too: their Link
/// headers say so.
#[tokio::test]
async fn a_page_capped_instance_gives_every_down_mid_server_user_its_network_finding() {
    for (cap, concurrency) in [(100, 4), (30, 4), (30, 1)] {
        let (instance, outcome) = capped_cycle(cap, concurrency).await;
        let findings = &outcome.report.findings;
        let network = findings
            .iter()
            .filter(|f| (f.category, f.condition) == (Category::Network, Condition::NoLoginOnDownMid))
            .count();
        let unassociated: Vec<&str> = findings
            .iter()
            .filter(|f| {
                matches!(
                    f.condition,
                    Condition::LoginFailedUnassociated
                        | Condition::AuthorizationFailedUnassociated
                        | Condition::NoLoginUnassociated
                        | Condition::LoginSucceededUnassociated
                )
            })
            .map(|f| f.user.as_str())
            .collect();
        let case = format!("cap {cap}, concurrency {concurrency}");
        assert_eq!((network, findings.len()), (250, 250), "{case}: every user of a Down MID Server, once");
        assert!(unassociated.is_empty(), "{case}: no user taken for one without a MID Server: {unassociated:?}");
        // The MID Servers' read went on from where each capped page's Link header said.
        let offsets: BTreeSet<u64> = instance
            .requests()
            .iter()
            .filter(|r| r.path == "/api/now/table/ecc_agent")
            .flat_map(|r| r.query.iter().filter(|(k, _)| k == "sysparm_offset").map(|(_, v)| v.parse().expect("n")))
            .collect();
        assert_eq!(offsets, (0..250).step_by(cap).map(|o| o as u64).collect(), "{case}");
        let batch_reads = instance
            .requests()
            .iter()
            .filter(|r| r.path == "/api/now/v1/batch" && r.body.contains(r#""method":"GET""#))
            .count();
        assert_eq!(batch_reads > 0, concurrency == 1, "{case}: {batch_reads} Batch API calls");
    }
}

#[tokio::test]
async fn offset_and_keyset_reads_of_a_page_capped_instance_read_every_row_once() {
    let instance = FakeInstance::start(down_users(250), USER, PASSWORD).await.expect("start");
    instance.set_page_cap(100);
    for page_size in [150, 1000] {
        let client = client_with_page_size(&instance.url(), page_size);
        let rows = client.read_all("sys_user", &Query::default(), &["sys_id", "user_name"]).await.expect("read");
        let ids: BTreeSet<String> = rows.iter().map(|r| r.text("sys_id")).collect();
        assert_eq!((rows.len(), ids.len()), (250, 250), "page size {page_size}: every user once");
    }
    let events = FakeInstance::start(events_dataset(), USER, PASSWORD).await.expect("start");
    events.set_page_cap(2);
    let upper = sn_time::parse("2026-11-22 12:00:00").expect("time");
    for page_size in [3, 7, 100] {
        let client = client_with_page_size(&events.url(), page_size);
        let mut keys = Vec::new();
        let query = Query::new().eq(Field::new("name"), &QueryValue::fixed("login"));
        client
            .fold_keyset("sysevent", &query, &["name"], upper, |page| {
                keys.extend(page.iter().map(|r| (r.text("sys_created_on"), r.text("sys_id"))))
            })
            .await
            .expect("read");
        let unique: BTreeSet<&(String, String)> = keys.iter().collect();
        assert_eq!((keys.len(), unique.len()), (25, 25), "page size {page_size}: every row once");
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "page size {page_size}: in key order");
    }
}
