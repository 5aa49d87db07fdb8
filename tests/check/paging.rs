//! Paging never drops or repeats a row.

use std::collections::BTreeSet;
use std::time::Duration;

use midwatch::domain::sn_time;
use midwatch::snow::auth::Credentials;
use midwatch::snow::query::Query;
use midwatch::snow::query::{Field, QueryValue};
use midwatch::snow::{Client, ClientOptions};
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
