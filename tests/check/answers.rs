//! Every answer a real instance, or a load balancer in front of it, is documented to give
//! (docs/servicenow.md §2 items 4-7) gives the right findings or a clear UNKNOWN with nothing written.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use midwatch::domain::{Category, Condition};
use midwatch::snow::query::Query;
use midwatch::snow::{ApiErrorKind, Client, ClientOptions, RetryPolicy};
use midwatch_sim::{Dataset, FakeInstance, Fault};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

/// The documentation's example, as `scenario.rs` checks it in full.
const DOCUMENTED: [(&str, Category, Condition); 5] = [
    ("midserver2", Category::Authentication, Condition::LoginFailedOnDownMid),
    ("local-midserver", Category::Authorization, Condition::AuthorizationFailedOnDownMid),
    ("mid.paris", Category::Network, Condition::NoLoginOnDownMid),
    ("mid.tokyo", Category::Network, Condition::ConnectivityUndetectable),
    ("ardis.maison", Category::Configuration, Condition::LoginSucceededUnassociated),
];

fn findings(outcome: &midwatch::cycle::Outcome) -> Vec<(&str, Category, Condition)> {
    outcome.report.findings.iter().map(|f| (f.user.as_str(), f.category, f.condition)).collect()
}

/// The `sysparm_limit` of every request wiremock received for `table`, in order.
async fn limits(server: &MockServer, table: &str) -> Vec<String> {
    let sent = server.received_requests().await.unwrap_or_default();
    sent.iter()
        .filter(|r| r.url.path() == format!("/api/now/table/{table}"))
        .map(|r| {
            r.url.query_pairs().find(|(k, _)| k == "sysparm_limit").map(|(_, v)| v.into_owned()).unwrap_or_default()
        })
        .collect()
}

async fn writes(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().iter().filter(|r| r.method.as_str() != "GET").count()
}

fn html(status: u16, page: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(page.to_string(), "text/html;charset=UTF-8")
}

/// Runs the binary against the server; returns (exit code, first line of stdout).
fn check_binary(url: &str) -> (i32, String) {
    let (_dir, file) = config_file(url);
    let (code, stdout, stderr) = run_binary(&["check", "--config", file.to_str().expect("utf-8 path")]);
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD), "the password leaked");
    (code, stdout.lines().next().unwrap_or_default().to_string())
}

fn client_for(url: &str, retry: RetryPolicy) -> Client {
    Client::new(ClientOptions {
        base_url: url.parse().expect("url"),
        auth: midwatch::snow::auth::Credentials::Basic { user: USER.into(), password: PASSWORD.to_string().into() },
        timeout: Duration::from_secs(5),
        page_size: 1000,
        concurrency: 2,
        retry,
        proxy: None,
        extra_ca: None,
    })
    .expect("client")
}

// ---------------------------------------------------------------------------------------------
// The REST quota (docs/servicenow.md §2 item 6)

#[tokio::test]
async fn a_partial_page_cancelled_by_the_quota_is_read_again_with_half_the_rows() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/sysevent"))
        .and(query_param("sysparm_limit", "1000"))
        .respond_with(json_response(200, &fixture("answers/sysevent_quota_partial.json")))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_demo_tables(&server, &[]).await;
    let outcome = check(&server.uri()).await.expect("the smaller page is read");
    assert_eq!(findings(&outcome), DOCUMENTED, "the partial page's one row was not taken for the whole truth");
    assert_eq!(limits(&server, "sysevent").await, ["1000", "500"]);
    let sent = server.received_requests().await.unwrap_or_default();
    let gets = sent.iter().filter(|r| r.method.as_str() == "GET").count();
    // The same cycle against an instance that answers every page whole.
    let clean = MockServer::start().await;
    mount_demo_tables(&clean, &[]).await;
    check(&clean.uri()).await.expect("a clean cycle");
    let clean_gets =
        clean.received_requests().await.unwrap_or_default().iter().filter(|r| r.method.as_str() == "GET").count();
    assert_eq!(gets, clean_gets + 1, "the reads of a cycle, the cancelled sysevent page once more");
}

#[tokio::test]
async fn a_500_quota_cancellation_is_read_again_with_half_the_rows() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/sysevent"))
        .respond_with(json_response(500, &fixture("answers/quota_cancelled.json")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_demo_tables(&server, &[]).await;
    let outcome = check(&server.uri()).await.expect("the smaller page is read");
    assert_eq!(findings(&outcome), DOCUMENTED);
    assert_eq!(limits(&server, "sysevent").await, ["1000", "500"]);
}

#[tokio::test]
async fn a_read_the_quota_cancels_at_every_page_size_is_unknown_naming_the_quota_and_page_size() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/sysevent"))
        .respond_with(json_response(200, &fixture("answers/sysevent_quota_partial.json")))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_demo_tables(&server, &[]).await;
    let url = server.uri();
    let (code, first) = tokio::task::spawn_blocking(move || check_binary(&url)).await.expect("join");
    assert_eq!(code, 3, "{first}");
    assert!(
        first.starts_with(
            "MIDWATCH UNKNOWN - the instance cancelled the request for sysevent at its 60 s REST transaction quota \
             (Transaction cancelled: maximum execution time exceeded), also with pages of 125 rows; lower [instance] \
             page_size (now 1000)"
        ),
        "{first}"
    );
    assert_eq!(limits(&server, "sysevent").await, ["1000", "500", "250", "125"]);
    assert_eq!(writes(&server).await, 0, "nothing half-done");
}

// ---------------------------------------------------------------------------------------------
// Load balancers, rate limits, redirects (docs/servicenow.md §2 items 5 and 7)

#[tokio::test]
async fn a_load_balancers_503_html_page_is_retried_like_any_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/ecc_agent"))
        .respond_with(html(503, &fixture("answers/load_balancer_503.html")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_demo_tables(&server, &[]).await;
    let outcome = check(&server.uri()).await.expect("the retry succeeds");
    assert_eq!(findings(&outcome), DOCUMENTED);
    assert_eq!(limits(&server, "ecc_agent").await.len(), 2);
}

#[tokio::test]
async fn a_503_html_page_that_persists_fails_after_the_retry_budget_saying_so() {
    let server = MockServer::start().await;
    Mock::given(path("/api/now/table/ecc_agent"))
        .respond_with(html(503, &fixture("answers/load_balancer_503.html")))
        .mount(&server)
        .await;
    mount_demo_tables(&server, &["ecc_agent"]).await;
    let err = check(&server.uri()).await.expect_err("still unavailable");
    assert_eq!(
        err.to_string(),
        "HTTP 503 from the instance for ecc_agent: an HTML page titled \"503 Service Unavailable\" (from the instance \
         or a load balancer in front of it); the instance, or a load balancer in front of it, is failing: try again \
         later"
    );
    assert_eq!(limits(&server, "ecc_agent").await.len(), 4, "the first try and fast_retry's three retries");
}

#[tokio::test]
async fn a_200_html_page_is_not_the_api_and_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api/now/table/sys_user_role"))
        .respond_with(html(200, &fixture("answers/instance_hibernating.html")))
        .mount(&server)
        .await;
    mount_demo_tables(&server, &["sys_user_role"]).await;
    let err = check(&server.uri()).await.expect_err("hibernating");
    assert!(
        err.to_string().starts_with(
            "the instance answered sys_user_role with an HTML page instead of JSON (HTTP 200, \"Instance Hibernating \
             page\"): a developer instance may be hibernating"
        ),
        "{err}"
    );
    assert_eq!(limits(&server, "sys_user_role").await.len(), 1);
}

/// Keeps the paused clock from moving while requests are on the wire: only `advance` moves it
/// (a running blocking task inhibits auto-advance). Dropping the sender ends it.
fn hold_the_clock() -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (hold, held) = std::sync::mpsc::channel::<()>();
    let task = tokio::task::spawn_blocking(move || {
        let _ = held.recv();
    });
    (hold, task)
}

/// Lets the other tasks run (and the I/O driver turn) until `done`, for at most 10 s of real time.
async fn run_until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::task::yield_now().await;
    }
}

/// Lets the other tasks run for `real` time.
async fn run_for(real: Duration) {
    let until = std::time::Instant::now() + real;
    while std::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_429_with_an_http_date_retry_after_waits_until_that_date() {
    let server = MockServer::start().await;
    // Eight to nine seconds from now, as an IMF-fixdate (whole seconds): the client reads it against the wall
    // clock, so the test leaves two seconds for a loaded machine between writing the date and the answer's arrival.
    let at = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(9);
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    Mock::given(method("GET"))
        .and(path("/api/now/table/ecc_agent"))
        .respond_with(
            json_response(429, &fixture("answers/rate_limited.json")).insert_header("Retry-After", date.as_str()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_demo_tables(&server, &[]).await;
    let retry = RetryPolicy { max_retry_after: Duration::from_secs(20), ..fast_retry() };
    let client = client_for(&server.uri(), retry);

    tokio::time::pause();
    let (hold, held) = hold_the_clock();
    let read = tokio::spawn({
        let client = client.clone();
        async move { client.read_all("ecc_agent", &Query::default(), &["sys_id", "name", "status"]).await }
    });
    run_until(|| client.stats().requests() == 1).await;
    // fast_retry's backoff is at most 50 ms: had the date been ignored, the retry would go now.
    tokio::time::advance(Duration::from_millis(5900)).await;
    run_for(Duration::from_millis(300)).await;
    assert_eq!(client.stats().requests(), 1, "retried before the date");
    tokio::time::advance(Duration::from_millis(3500)).await;
    run_until(|| read.is_finished()).await;
    let rows = read.await.expect("join").expect("the retry succeeds");
    assert_eq!(rows.len(), 7, "every MID Server of the fixture");
    assert_eq!(client.stats().requests(), 2);
    drop(hold);
    held.await.expect("join");
}

#[tokio::test]
async fn a_429_without_rate_limit_headers_is_retried_with_backoff() {
    // The API semaphore queue is full (KB1297438): 429 with no Retry-After and no X-RateLimit-*.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/sysevent"))
        .respond_with(json_response(429, &fixture("answers/quota_cancelled.json")))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_demo_tables(&server, &[]).await;
    let outcome = check(&server.uri()).await.expect("the retry succeeds");
    assert_eq!(findings(&outcome), DOCUMENTED);
    assert_eq!(limits(&server, "sysevent").await, ["1000", "1000", "1000"], "a full queue is not a quota: same page");
}

#[tokio::test]
async fn a_rate_limit_without_retry_after_that_persists_says_the_queue_may_be_full() {
    let server = MockServer::start().await;
    Mock::given(path("/api/now/table/sysevent")).respond_with(ResponseTemplate::new(429)).mount(&server).await;
    mount_demo_tables(&server, &["sysevent"]).await;
    let err = check(&server.uri()).await.expect_err("still limited");
    assert!(
        err.to_string().starts_with(
            "rate limited by the instance on sysevent (HTTP 429 without Retry-After: an empty body); its API queue may \
             be full"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_redirect_to_the_login_page_is_unknown_naming_it_without_its_query_string() {
    let server = MockServer::start().await;
    let location = format!("{}/login.do?sysparm_goto_url=api%2Fnow&sysparm_token=SECRET-TOKEN", server.uri());
    Mock::given(path("/api/now/table/ecc_agent"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", location.as_str()))
        .mount(&server)
        .await;
    mount_demo_tables(&server, &["ecc_agent"]).await;
    let url = server.uri();
    let (code, first) = tokio::task::spawn_blocking(move || check_binary(&url)).await.expect("join");
    assert_eq!(code, 3);
    let expected = format!(
        "MIDWATCH UNKNOWN - the instance sent the request for ecc_agent to a sign-on page (HTTP 302 to {}/login.do) \
         instead of answering it",
        server.uri()
    );
    assert!(first.starts_with(&expected), "{first}");
    assert!(!first.contains("SECRET") && !first.contains('?'), "{first}");
    assert_eq!(limits(&server, "ecc_agent").await.len(), 1, "a redirect is not retried");
}

// ---------------------------------------------------------------------------------------------
// Cut-off and oversized answers

/// A server that answers the n-th connection with the n-th of `answers` (raw HTTP/1.1), then closes it.
async fn raw_server(answers: Vec<Vec<u8>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        for answer in answers {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            // A client that stops reading makes the write fail: that is the point.
            let _ = socket.write_all(&answer).await;
            let _ = socket.shutdown().await;
        }
    });
    url
}

fn http_head(status: &str, length: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {length}\r\nConnection: \
         close\r\n\r\n"
    )
    .into_bytes()
}

/// The answer with its body cut after `keep` bytes (`Content-Length` still that of the whole).
fn cut_after(body: &str, keep: usize) -> Vec<u8> {
    let mut answer = http_head("200 OK", body.len());
    answer.extend_from_slice(&body.as_bytes()[..keep]);
    answer
}

fn whole(body: &str) -> Vec<u8> {
    let mut answer = http_head("200 OK", body.len());
    answer.extend_from_slice(body.as_bytes());
    answer
}

#[tokio::test]
async fn a_cut_off_answer_is_retried_and_then_read_whole() {
    let body = fixture("demo/ecc_agent.json");
    let url = raw_server(vec![cut_after(&body, 1000), whole(&body)]).await;
    let client = client_for(&url, fast_retry());
    let rows = client
        .read_all("ecc_agent", &Query::default(), &["sys_id", "name", "status"])
        .await
        .expect("the retry reads it all");
    assert_eq!(rows.len(), 7, "every MID Server of the fixture");
    assert_eq!(client.stats().requests(), 2);
}

#[tokio::test]
async fn an_answer_cut_off_every_time_says_how_much_arrived() {
    let body = fixture("demo/ecc_agent.json");
    let url = raw_server(vec![cut_after(&body, 1000); 4]).await;
    let err = client_for(&url, fast_retry())
        .read_all("ecc_agent", &Query::default(), &["sys_id"])
        .await
        .expect_err("always cut");
    let text = err.to_string();
    assert!(text.starts_with("the instance's answer for ecc_agent was cut off after 1000 bytes ("), "{text}");
    assert!(!text.contains("DNS"), "not a reachability problem: {text}");
}

#[tokio::test]
async fn the_simulated_instance_cutting_an_answer_off_still_gives_the_documented_findings() {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    instance.inject(Fault::CutOff { table: "sys_user".into(), bytes: 200 });
    instance.inject(Fault::QuotaPartial { table: "sysevent".into(), rows: 1 });
    let outcome = check(&instance.url()).await.expect("check");
    assert_eq!(findings(&outcome), DOCUMENTED);
    let sysevent_limits: Vec<String> = instance
        .requests()
        .iter()
        .filter(|r| r.path == "/api/now/table/sysevent")
        // The login events' read; the SSO evidence's own small read is not the one the quota cut.
        .filter(|r| !r.query.iter().any(|(k, v)| k == "sysparm_query" && v.contains("external.authentication")))
        // Nor is the early warnings' read of mid.healthy (refused on its Up MID Server), which comes after.
        .filter(|r| !r.query.iter().any(|(k, v)| k == "sysparm_query" && v.contains("mid.healthy")))
        .flat_map(|r| r.query.iter().filter(|(k, _)| k == "sysparm_limit").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(sysevent_limits, ["1000", "500"]);
}

/// The simulated instance's reads of `table` so far.
fn reads_of(instance: &FakeInstance, table: &str) -> usize {
    instance.requests().iter().filter(|r| r.method == "GET" && r.path == format!("/api/now/table/{table}")).count()
}

/// A 200 whose JSON ends half way, or that has no body at all, in an HTTP answer that is complete (a gateway cut
/// the body, not the connection): read again, as a lost connection would be, and the next answer is used.
#[tokio::test]
async fn a_truncated_or_empty_200_is_read_again_and_the_check_succeeds() {
    for bytes in [200, 0] {
        let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
        instance.set_clock(reference_now());
        instance.inject(Fault::Truncated { table: "ecc_agent".into(), bytes });
        let outcome = check(&instance.url()).await.unwrap_or_else(|e| panic!("{bytes} bytes: {e}"));
        assert_eq!(findings(&outcome), DOCUMENTED, "{bytes} bytes");
        assert_eq!(reads_of(&instance, "ecc_agent"), 2, "{bytes} bytes: the cut answer, then the whole one");
    }
}

#[tokio::test]
async fn a_truncated_200_that_persists_is_unknown_naming_it_with_nothing_written() {
    for bytes in [200, 0] {
        let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
        for _ in 0..10 {
            instance.inject(Fault::Truncated { table: "ecc_agent".into(), bytes });
        }
        let err = check(&instance.url()).await.expect_err("cut every time");
        let text = err.to_string();
        let expected = format!("the instance's answer for ecc_agent was cut off after {bytes} bytes (");
        assert!(text.starts_with(&expected), "{text}");
        assert_eq!(reads_of(&instance, "ecc_agent"), 4, "{bytes} bytes: the first read and three retries");
        assert!(instance.requests().iter().all(|r| r.method == "GET"), "nothing written");
    }
}

#[tokio::test]
async fn an_empty_200_that_persists_makes_the_check_unknown_with_exit_3() {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    for _ in 0..10 {
        instance.inject(Fault::Truncated { table: "ecc_agent".into(), bytes: 0 });
    }
    let url = instance.url();
    let (code, first) = tokio::task::spawn_blocking(move || check_binary(&url)).await.expect("join");
    assert_eq!(code, 3, "{first}");
    assert!(
        first.starts_with("MIDWATCH UNKNOWN - the instance's answer for ecc_agent was cut off after 0 bytes ("),
        "{first}"
    );
    assert_eq!(reads_of(&instance, "ecc_agent"), 5, "the first read and the four retries of the default policy");
}

#[tokio::test]
async fn an_oversized_answer_stops_at_the_limit_and_names_the_table_and_page_size() {
    let server = MockServer::start().await;
    let row = r#"{"sys_id":"05e40000000000000000000000000001","user_name":"someone","active":"true"},"#;
    let body = format!(r#"{{"result":[{}{{}}]}}"#, row.repeat(3 * 1024 * 1024 / row.len()));
    Mock::given(path("/api/now/table/sys_user")).respond_with(json_response(200, &body)).mount(&server).await;
    let client = client_for(&server.uri(), fast_retry()).with_response_limit(1024 * 1024);
    let err = client.read_all("sys_user", &Query::default(), &["sys_id"]).await.expect_err("too large");
    assert_eq!(
        err.to_string(),
        "the instance's answer for sys_user is larger than midwatch's limit of 1 MiB (reading stopped there); lower \
         [instance] page_size (now 1000)"
    );
    assert!(matches!(err.kind(), ApiErrorKind::TooLarge { .. }));
    assert_eq!(client.stats().requests(), 1, "not retried");
    assert_eq!(client.stats().response_bytes(), 0, "Content-Length said so: nothing was read");
}

#[tokio::test]
async fn an_oversized_answer_without_a_length_is_not_buffered_beyond_the_limit() {
    // Chunked, 8 MiB of rows: reading stops at the 1 MiB limit.
    let mut answer =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunk = format!(r#"{{"sys_id":"{}"}},"#, "a".repeat(32)).repeat(1000);
    for _ in 0..(8 * 1024 * 1024 / chunk.len()) {
        answer.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    answer.extend_from_slice(b"0\r\n\r\n");
    let url = raw_server(vec![answer]).await;
    let client = client_for(&url, fast_retry()).with_response_limit(1024 * 1024);
    let err = client.read_all("sysevent", &Query::default(), &["sys_id"]).await.expect_err("too large");
    assert!(matches!(err.kind(), ApiErrorKind::TooLarge { limit: 1_048_576, .. }), "{err}");
    let read = client.stats().response_bytes();
    assert!(read <= 1024 * 1024 && read > 512 * 1024, "read {read} bytes");
}
