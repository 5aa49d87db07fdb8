use super::super::{Dataset, FakeInstance, Fault, REFERENCE_TIME};
use super::*;
use chrono::{TimeZone, Utc};

const USER: &str = "agent";
const PASSWORD: &str = "s3cret:pw";

fn small_dataset() -> Dataset {
    let mut d = Dataset::default();
    let rows: Vec<Value> = (1..=25)
        .map(|i| {
            json!({
                "sys_id": format!("e7e7{:028x}", i),
                "name": if i % 5 == 0 { "login.failed" } else { "login" },
                "parm1": format!("user{}", i % 3),
                "sys_created_on": format!("2026-11-22 10:{:02}:00", i),
            })
        })
        .collect();
    if let Err(e) = d.insert_fixture("sysevent", &json!({ "result": rows }).to_string()) {
        panic!("{e}");
    }
    d.ensure_table("ecc_agent_issue");
    d
}

async fn start(d: Dataset) -> FakeInstance {
    match FakeInstance::start(d, USER, PASSWORD).await {
        Ok(f) => f,
        Err(e) => panic!("start: {e}"),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn body_json(resp: reqwest::Response) -> Value {
    match resp.json::<Value>().await {
        Ok(v) => v,
        Err(e) => panic!("json body: {e}"),
    }
}

async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    match req.send().await {
        Ok(r) => r,
        Err(e) => panic!("request failed: {e}"),
    }
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// The `rel` → decoded query pairs of a Link header.
fn links(link: &str) -> Vec<(String, Vec<(String, String)>)> {
    link.split(",<")
        .map(|part| {
            let part = part.trim_start_matches('<');
            let (url, rel) = part.split_once(">;rel=").unwrap_or(("", ""));
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
            (rel.trim_matches('"').to_string(), url::form_urlencoded::parse(query.as_bytes()).into_owned().collect())
        })
        .collect()
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (input, expected) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_encode(input.as_bytes()), expected);
    }
}

#[tokio::test]
async fn missing_or_wrong_auth_is_401() {
    let fake = start(small_dataset()).await;
    let url = format!("{}/api/now/table/sysevent", fake.url());
    for req in [
        client().get(&url),
        client().get(&url).basic_auth(USER, Some("wrong")),
        client().get(&url).basic_auth("other", Some(PASSWORD)),
    ] {
        let resp = send(req).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.text().await.unwrap_or_else(|e| panic!("{e}")),
            r#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#
        );
    }
    let resp = send(client().get(&url).basic_auth(USER, Some(PASSWORD))).await;
    assert_eq!(resp.status(), 200);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 401, 200]);
}

#[tokio::test]
async fn invalid_table_and_bad_requests_are_400() {
    let fake = start(small_dataset()).await;
    let resp =
        send(client().get(format!("{}/api/now/table/sys_nonexistent", fake.url())).basic_auth(USER, Some(PASSWORD)))
            .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        body_json(resp).await,
        json!({"error":{"message":"Invalid table sys_nonexistent","detail":"Table sys_nonexistent does not exist"},"status":"failure"})
    );
    let url = format!("{}/api/now/table/sysevent", fake.url());
    for (query, message_start) in [
        (vec![("sysparm_query", "nameLIKElogin")], "fake instance cannot parse query: "),
        (vec![("sysparm_query", "sys_created_on>javascript:gs.hoursAgo(4)")], "fake instance refuses script value "),
        (vec![("sysparm_display_value", "true")], "fake instance supports only"),
        (vec![("name", "login")], "fake instance does not support parameter"),
        (vec![("sysparm_limit", "-1")], "fake instance expects a non-negative"),
    ] {
        let resp = send(client().get(&url).query(&query).basic_auth(USER, Some(PASSWORD))).await;
        assert_eq!(resp.status(), 400, "{query:?}");
        let body = body_json(resp).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(message_start), "{query:?}: {body}");
        assert_eq!(body["error"]["detail"], Value::Null);
        assert_eq!(body["status"], "failure");
    }
    // every request was logged with its status, query decoded
    let log = fake.requests();
    assert_eq!(log.len(), 6);
    assert!(log.iter().all(|r| r.status == 400 && r.method == "GET"));
    assert_eq!(log[2].query, [("sysparm_query".to_string(), "sys_created_on>javascript:gs.hoursAgo(4)".to_string())]);
}

#[tokio::test]
async fn get_pages_with_link_headers_and_total_count() {
    let fake = start(small_dataset()).await;
    let url = format!("{}/api/now/v2/table/sysevent", fake.url());
    let query = "name=login^ORDERBYDESCsys_created_on";
    // 20 rows match
    let resp = send(
        client()
            .get(&url)
            .query(&[
                ("sysparm_query", query),
                ("sysparm_fields", "sys_id,parm1,no_such_field"),
                ("sysparm_limit", "8"),
                ("sysparm_offset", "8"),
            ])
            .basic_auth(USER, Some(PASSWORD)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/json;charset=UTF-8");
    assert_eq!(header(&resp, "x-total-count"), "20");
    let link = header(&resp, "link");
    assert!(link.starts_with(&format!("<{url}?sysparm_offset=16&sysparm_limit=8&")), "{link}");
    let parsed = links(&link);
    let rels: Vec<&str> = parsed.iter().map(|(rel, _)| rel.as_str()).collect();
    assert_eq!(rels, ["next", "prev", "first", "last"]);
    let offsets: Vec<&str> = parsed.iter().map(|(_, q)| q[0].1.as_str()).collect();
    assert_eq!(offsets, ["16", "0", "0", "16"]);
    // other sysparm_* parameters are kept, decoded back to the original values
    assert!(parsed[0].1.contains(&("sysparm_query".to_string(), query.to_string())));
    let text = resp.text().await.unwrap_or_else(|e| panic!("{e}"));
    // fields in the order asked for, absent ones omitted
    assert!(text.starts_with(&format!(r#"{{"result":[{{"sys_id":"e7e7{:028x}","parm1":"#, 14)), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let result = body["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(result.len(), 8);
    // descending order, skipping every 5th (login.failed): 24,23,22,21,19,18,17,16 | 14,...
    assert_eq!(result[0]["sys_id"], format!("e7e7{:028x}", 14));
    assert_eq!(result[0].as_object().map(Map::len), Some(2));

    // the last page: no next
    let resp = send(
        client()
            .get(&url)
            .query(&[("sysparm_query", query), ("sysparm_limit", "8"), ("sysparm_offset", "16")])
            .basic_auth(USER, Some(PASSWORD)),
    )
    .await;
    let rels: Vec<String> = links(&header(&resp, "link")).into_iter().map(|(r, _)| r).collect();
    assert_eq!(rels, ["prev", "first", "last"]);
    assert_eq!(body_json(resp).await["result"].as_array().map(Vec::len), Some(4));

    // nothing matches: 200 with [] (v2), total 0
    let resp =
        send(client().get(&url).query(&[("sysparm_query", "name=nothing")]).basic_auth(USER, Some(PASSWORD))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-total-count"), "0");
    assert_eq!(body_json(resp).await, json!({"result": []}));
}

#[tokio::test]
async fn post_then_get_and_patch() {
    let fake = start(small_dataset()).await;
    let clock = Utc.with_ymd_and_hms(2026, 11, 22, 12, 5, 0).single();
    let Some(clock) = clock else { panic!("bad clock") };
    fake.set_clock(clock);
    let url = format!("{}/api/now/table/ecc_agent_issue", fake.url());
    let resp = send(client().post(&url).basic_auth(USER, Some(PASSWORD)).json(&json!({
        "source": "MIDUserConnectivity",
        "message": "hello",
        "mid_server": "",
        "sys_domain": "global",
        "extra": 5,
    })))
    .await;
    assert_eq!(resp.status(), 201);
    let location = header(&resp, "location");
    let created = body_json(resp).await["result"].clone();
    let sys_id = created["sys_id"].as_str().unwrap_or_default().to_string();
    assert_eq!(sys_id.len(), 32);
    assert_eq!(location, format!("{url}/{sys_id}"));
    assert_eq!(created["state"], "new");
    assert_eq!(created["count"], "1");
    assert_eq!(created["extra"], "5");
    assert_eq!(created["mid_server"], "");
    assert_eq!(created["sys_created_on"], "2026-11-22 12:05:00");
    assert_eq!(created["sys_mod_count"], "0");
    assert_eq!(
        created["sys_domain"],
        json!({"link": format!("{}/api/now/table/sys_user_group/global", fake.url()), "value": "global"})
    );
    assert_eq!(fake.rows("ecc_agent_issue").len(), 1);

    // GET the record, plain references
    let resp = send(
        client()
            .get(format!("{url}/{sys_id}"))
            .query(&[("sysparm_exclude_reference_link", "true")])
            .basic_auth(USER, Some(PASSWORD)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let got = body_json(resp).await["result"].clone();
    assert_eq!(got["sys_domain"], "global");
    assert_eq!(got["message"], "hello");

    // found by query
    let resp = send(
        client()
            .get(&url)
            .query(&[("sysparm_query", "source=MIDUserConnectivity^stateINnew,acknowledged")])
            .basic_auth(USER, Some(PASSWORD)),
    )
    .await;
    assert_eq!(body_json(resp).await["result"].as_array().map(Vec::len), Some(1));

    // PATCH
    fake.set_clock(clock + chrono::TimeDelta::minutes(10));
    let resp = send(
        client()
            .patch(format!("{url}/{sys_id}"))
            .query(&[("sysparm_fields", "sys_id,count,state,sys_updated_on,sys_mod_count")])
            .basic_auth(USER, Some(PASSWORD))
            .json(&json!({"count": 2, "state": "resolved"})),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        body_json(resp).await,
        json!({"result": {"sys_id": sys_id, "count": "2", "state": "resolved",
            "sys_updated_on": "2026-11-22 12:15:00", "sys_mod_count": "1"}})
    );
    let stored = fake.rows("ecc_agent_issue");
    assert_eq!(stored[0]["sys_created_on"], "2026-11-22 12:05:00");
    assert_eq!(stored[0]["message"], "hello");

    // PATCH / GET of a missing record: 404
    for req in [
        client().patch(format!("{url}/{}", "0".repeat(32))).json(&json!({"state": "resolved"})),
        client().get(format!("{url}/{}", "0".repeat(32))),
    ] {
        let resp = send(req.basic_auth(USER, Some(PASSWORD))).await;
        assert_eq!(resp.status(), 404);
        assert_eq!(
            body_json(resp).await,
            json!({"error":{"message":"No Record found","detail":"Record doesn't exist or ACL restricts the record retrieval"},"status":"failure"})
        );
    }

    // POST without JSON content type: 400, nothing stored
    let resp = send(client().post(&url).basic_auth(USER, Some(PASSWORD)).body("{\"message\":\"x\"}")).await;
    assert_eq!(resp.status(), 400);
    // X-no-response-body
    let resp = send(
        client()
            .post(&url)
            .basic_auth(USER, Some(PASSWORD))
            .header("X-no-response-body", "true")
            .json(&json!({"message": "quiet"})),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert!(!header(&resp, "location").is_empty());
    assert_eq!(resp.text().await.unwrap_or_else(|e| panic!("{e}")), "");
    assert_eq!(fake.rows("ecc_agent_issue").len(), 2);
    let methods: Vec<(String, u16)> = fake.requests().into_iter().map(|r| (r.method, r.status)).collect();
    assert_eq!(
        methods,
        [
            ("POST".to_string(), 201),
            ("GET".to_string(), 200),
            ("GET".to_string(), 200),
            ("PATCH".to_string(), 200),
            ("PATCH".to_string(), 404),
            ("GET".to_string(), 404),
            ("POST".to_string(), 400),
            ("POST".to_string(), 201),
        ]
    );
}

#[tokio::test]
async fn faults_apply_once() {
    let fake = start(small_dataset()).await;
    let url = format!("{}/api/now/table/ecc_agent_issue", fake.url());
    let post = || {
        client()
            .post(&url)
            .basic_auth(USER, Some(PASSWORD))
            .timeout(Duration::from_millis(500))
            .json(&json!({"message": "m"}))
    };

    fake.inject(Fault::ApplyThen503 { table: "ecc_agent_issue".into() });
    assert_eq!(send(post()).await.status(), 503);
    assert_eq!(fake.rows("ecc_agent_issue").len(), 1);

    fake.inject(Fault::ApplyThenHang { table: "ecc_agent_issue".into() });
    match post().send().await {
        Ok(resp) => panic!("expected a timeout, got {}", resp.status()),
        Err(e) => assert!(e.is_timeout(), "{e}"),
    }
    assert_eq!(fake.rows("ecc_agent_issue").len(), 2);

    fake.inject(Fault::Respond {
        table: "sysevent".into(),
        status: 429,
        body: r#"{"error":{"message":"Rate limit exceeded","detail":"x"},"status":"failure"}"#.into(),
        headers: vec![("Retry-After".into(), "7".into())],
    });
    // a request to another table does not consume it
    assert_eq!(send(post()).await.status(), 201);
    let events = format!("{}/api/now/table/sysevent", fake.url());
    let resp = send(client().get(&events).basic_auth(USER, Some(PASSWORD))).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), "7");
    assert_eq!(header(&resp, "content-type"), "application/json;charset=UTF-8");
    assert_eq!(body_json(resp).await["error"]["message"], "Rate limit exceeded");
    let resp = send(client().get(&events).basic_auth(USER, Some(PASSWORD))).await;
    assert_eq!(resp.status(), 200);

    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 0, 201, 429, 200]);
}

#[tokio::test]
async fn quota_partial_and_cut_off_answers() {
    let fake = start(small_dataset()).await;
    let events = format!("{}/api/now/table/sysevent", fake.url());
    fake.inject(Fault::QuotaPartial { table: "sysevent".into(), rows: 2 });
    let resp = send(client().get(&events).basic_auth(USER, Some(PASSWORD))).await;
    assert_eq!(resp.status(), 200);
    let body = body_json(resp).await;
    assert_eq!(body["result"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["error"]["message"], "Transaction cancelled: maximum execution time exceeded");
    assert_eq!(body["status"], "failure");

    fake.inject(Fault::CutOff { table: "sysevent".into(), bytes: 100 });
    let mut resp = send(client().get(&events).basic_auth(USER, Some(PASSWORD))).await;
    assert_eq!(resp.status(), 200);
    let declared: usize = header(&resp, "content-length").parse().unwrap_or_default();
    assert!(declared > 100, "{declared}");
    let mut received = 0;
    let error = loop {
        match resp.chunk().await {
            Ok(Some(c)) => received += c.len(),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert!(error.is_some(), "the body was cut");
    assert_eq!(received, 100);

    // Applied, then answered with a gateway's page.
    let url = format!("{}/api/now/table/ecc_agent_issue", fake.url());
    fake.inject(Fault::ApplyThenRespond {
        table: "ecc_agent_issue".into(),
        status: 200,
        body: "<html><body>Gateway</body></html>".into(),
        headers: vec![("Content-Type".into(), "text/html".into())],
    });
    let resp = send(client().post(&url).basic_auth(USER, Some(PASSWORD)).json(&json!({"message": "m"}))).await;
    assert_eq!((resp.status().as_u16(), header(&resp, "content-type")), (200, "text/html".to_string()));
    assert_eq!(fake.rows("ecc_agent_issue").len(), 1);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200]);
}

#[tokio::test]
async fn demo_dataset_dot_walk_and_reference_queries() {
    let now = sn_time::parse(REFERENCE_TIME).unwrap_or_else(|| panic!("{REFERENCE_TIME} is an instance time"));
    let fake = start(Dataset::demo(now)).await;
    let get = |table: &str, query: &str, fields: &str| {
        client()
            .get(format!("{}/api/now/table/{table}", fake.url()))
            .query(&[("sysparm_query", query), ("sysparm_fields", fields), ("sysparm_exclude_reference_link", "true")])
            .basic_auth(USER, Some(PASSWORD))
    };
    // roles of local-midserver, by dot-walk
    let resp =
        send(get("sys_user_has_role", "user.user_name=local-midserver^ORDERBYrole.name", "role.name,inherited,user"))
            .await;
    let body = body_json(resp).await;
    let roles: Vec<&str> = body["result"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["role.name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(roles, ["mid_server", "soap", "soap_create", "soap_delete", "soap_script", "soap_update"]);
    assert_eq!(body["result"][0]["user"], "05e40000000000000000000000000002");

    // reference compared by value; login events in the default window
    let resp = send(get(
        "ecc_agent_config",
        "param_name=mid.instance.username^ecc_agent=ec0a0000000000000000000000000001",
        "value",
    ))
    .await;
    assert_eq!(body_json(resp).await, json!({"result": [{"value": "midserver2"}]}));
    let resp = send(get(
        "sysevent",
        "nameSTARTSWITHlogin^sys_created_on>=2026-11-22 07:59:00^parm1=midserver2^ORDERBYDESCsys_created_on",
        "name,sys_created_on",
    ))
    .await;
    assert_eq!(
        body_json(resp).await["result"][0],
        json!({"name": "login.failed", "sys_created_on": "2026-11-22 11:45:00"})
    );
}

#[tokio::test]
async fn answers_carry_the_date_of_the_instance_clock_or_none() {
    let fake = start(small_dataset()).await;
    let url = format!("{}/api/now/table/sysevent", fake.url());
    let get = || send(client().get(&url).query(&[("sysparm_limit", "1")]).basic_auth(USER, Some(PASSWORD)));

    // A stopped clock: every answer, refused ones included, says its time.
    let Some(clock) = Utc.with_ymd_and_hms(2026, 11, 22, 12, 5, 7).single() else { panic!("bad clock") };
    fake.set_clock(clock);
    assert_eq!(header(&get().await, "date"), "Sun, 22 Nov 2026 12:05:07 GMT");
    let refused = send(client().get(&url).basic_auth(USER, Some("wrong"))).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(header(&refused, "date"), "Sun, 22 Nov 2026 12:05:07 GMT");

    // A clock 7 minutes ahead of this host's runs with it.
    fake.set_clock_ahead(chrono::TimeDelta::minutes(7));
    let before = Utc::now();
    let date = header(&get().await, "date");
    let Ok(said) = chrono::DateTime::parse_from_rfc2822(&date) else { panic!("not an HTTP date: {date:?}") };
    let ahead = said.with_timezone(&Utc) - before;
    assert!(ahead > chrono::TimeDelta::seconds(418) && ahead < chrono::TimeDelta::seconds(422), "{date} vs {before}");
    let off = fake.now() - Utc::now() - chrono::TimeDelta::minutes(7);
    assert!(off.abs() < chrono::TimeDelta::seconds(1), "the instance's now is off by {off}");

    // Turned off: no Date at all, not even the HTTP server's own.
    fake.set_date_header(false);
    let resp = get().await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("date").is_none(), "{:?}", resp.headers());
}

#[tokio::test]
async fn a_page_cap_serves_fewer_rows_than_asked_and_links_pages_of_its_size() {
    let fake = start(small_dataset()).await;
    fake.set_page_cap(6);
    let url = format!("{}/api/now/table/sysevent", fake.url());
    let resp = send(
        client()
            .get(&url)
            .query(&[("sysparm_query", "ORDERBYsys_id"), ("sysparm_limit", "1000"), ("sysparm_offset", "6")])
            .basic_auth(USER, Some(PASSWORD)),
    )
    .await;
    let link = header(&resp, "link");
    let body = body_json(resp).await;
    assert_eq!(body["result"].as_array().map(Vec::len), Some(6));
    let parsed = links(&link);
    assert_eq!(parsed[0].0, "next");
    assert_eq!(&parsed[0].1[..2], [("sysparm_offset".into(), "12".into()), ("sysparm_limit".into(), "6".into())]);
}

#[tokio::test]
async fn a_truncated_answer_is_complete_http_with_part_of_the_body() {
    let fake = start(small_dataset()).await;
    fake.inject(Fault::Truncated { table: "sysevent".into(), bytes: 30 });
    fake.inject(Fault::Truncated { table: "sysevent".into(), bytes: 0 });
    let url = format!("{}/api/now/table/sysevent", fake.url());
    for expected in [30, 0] {
        let resp = send(client().get(&url).basic_auth(USER, Some(PASSWORD))).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap_or_else(|e| panic!("the body arrives whole: {e}"));
        assert_eq!(text.len(), expected);
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }
}

#[tokio::test]
async fn batch_sub_answers_carry_their_link_header() {
    let fake = start(small_dataset()).await;
    let body = json!({"batch_request_id": "b", "rest_requests": [{
        "id": "1", "method": "GET", "url": "/api/now/table/sysevent?sysparm_limit=5&sysparm_query=ORDERBYsys_id",
        "headers": [{"name": "Accept", "value": "application/json"}], "exclude_response_headers": false,
    }]});
    let url = format!("{}/api/now/v1/batch", fake.url());
    let resp = send(client().post(&url).json(&body).basic_auth(USER, Some(PASSWORD))).await;
    let answer = body_json(resp).await;
    let headers = answer["serviced_requests"][0]["headers"].as_array().cloned().unwrap_or_default();
    let link = headers.iter().find(|h| h["name"] == "link").and_then(|h| h["value"].as_str()).unwrap_or_default();
    assert_eq!(links(link)[0].0, "next", "{headers:?}");
}
