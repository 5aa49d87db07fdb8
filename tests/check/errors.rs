//! Each failure of the instance gives a clear error and exit status 3 (UNKNOWN).

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use std::time::Duration;

use midwatch::cycle::{self, CheckOptions, Cycle};

use crate::support::*;

/// Serves the demo tables, except `table`, which answers `response`.
async fn instance_failing_on(table: &str, response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path(format!("/api/now/table/{table}"))).respond_with(response).mount(&server).await;
    mount_demo_tables(&server, &[table]).await;
    server
}

/// Runs the binary against the server; returns (exit code, first line of stdout, stdout).
fn check_binary(server: &MockServer) -> (i32, String, String) {
    let (_dir, file) = config_file(&server.uri());
    let (code, stdout, stderr) = run_binary(&["check", "--config", file.to_str().expect("utf-8 path")]);
    let first = stdout.lines().next().unwrap_or_default().to_string();
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD), "the password leaked");
    (code, first, stdout)
}

#[tokio::test]
async fn credentials_refused_is_unknown_with_advice() {
    let body = r#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#;
    let server = instance_failing_on("ecc_agent", json_response(401, body)).await;
    let (code, first, _) = check_binary(&server);
    assert_eq!(code, 3);
    assert!(
        first.starts_with("MIDWATCH UNKNOWN - the instance refused the credentials (HTTP 401 on ecc_agent)"),
        "{first}"
    );
    assert!(first.contains("check [instance] user and password"), "{first}");
    // The sentence ends as it is written: no instance name after it.
    assert!(first.ends_with("counts toward the account's lockout"), "{first}");
    let sent = server.received_requests().await.unwrap_or_default();
    assert_eq!(sent.iter().filter(|r| r.url.path().ends_with("/ecc_agent")).count(), 1, "401 is never retried");
}

#[tokio::test]
async fn forbidden_table_names_the_table() {
    let body = r#"{"error":{"message":"Insufficient rights to query records","detail":null},"status":"failure"}"#;
    let server = instance_failing_on("sysevent", json_response(403, body)).await;
    let (code, first, _) = check_binary(&server);
    assert_eq!(code, 3);
    assert!(
        first.contains("the account may not read table sysevent (HTTP 403: Insufficient rights to query records)"),
        "{first}"
    );
}

#[tokio::test]
async fn invalid_table_says_the_table_does_not_exist() {
    let body = r#"{"error":{"message":"Invalid table ecc_agent_config","detail":"Table ecc_agent_config does not exist"},"status":"failure"}"#;
    let server = instance_failing_on("ecc_agent_config", json_response(400, body)).await;
    let (code, first, _) = check_binary(&server);
    assert_eq!(code, 3);
    assert!(first.contains("table ecc_agent_config does not exist on the instance"), "{first}");
}

#[tokio::test]
async fn html_page_is_recognised_as_hibernation_or_sso() {
    let page = "<!DOCTYPE html><html><head><title>Instance Hibernating page</title></head><body>Your instance is hibernating</body></html>";
    let server =
        instance_failing_on("sys_user_role", ResponseTemplate::new(200).set_body_raw(page, "text/html;charset=UTF-8"))
            .await;
    let (code, first, _) = check_binary(&server);
    assert_eq!(code, 3);
    assert!(first.contains("with an HTML page instead of JSON"), "{first}");
    assert!(first.contains("hibernating"), "{first}");
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    // Broken, not cut short (a body that ends half way is a cut-off answer: `answers.rs`).
    let server = instance_failing_on("sys_user", json_response(200, r#"{"result":[{"sys_id":,}]}"#)).await;
    let (code, first, _) = check_binary(&server);
    assert_eq!(code, 3);
    assert!(first.contains("the instance's answer for sys_user is not valid Table API JSON"), "{first}");
}

#[tokio::test]
async fn json_format_reports_unknown_as_a_document() {
    let server = instance_failing_on("ecc_agent", json_response(401, "{}")).await;
    let (_dir, file) = config_file(&server.uri());
    let (code, stdout, _) = run_binary(&["check", "--format", "json", "--config", file.to_str().expect("utf-8 path")]);
    assert_eq!(code, 3);
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON document");
    assert_eq!(doc["status"], "UNKNOWN");
    assert!(doc["error"].as_str().is_some_and(|e| e.contains("HTTP 401")));
}

#[tokio::test]
async fn rate_limit_beyond_the_cap_fails_with_the_time_to_wait() {
    let body = r#"{"error":{"message":"Rate limit exceeded","detail":"Rate limit of 100 requests per hour for Table API exceeded"},"status":"failure"}"#;
    let server = instance_failing_on("ecc_agent", json_response(429, body).insert_header("Retry-After", "3600")).await;
    let err = check(&server.uri()).await.expect_err("rate limited for an hour");
    let text = err.to_string();
    assert!(text.starts_with("rate limited by the instance on ecc_agent until "), "{text}");
    assert!(text.contains("Rate limit of 100 requests per hour"), "{text}");
}

#[tokio::test]
async fn transaction_quota_suggests_a_smaller_page() {
    let body = r#"{"error":{"message":"Transaction cancelled: maximum execution time exceeded","detail":null},"status":"failure"}"#;
    let server = instance_failing_on("sysevent", json_response(500, body)).await;
    let err = check(&server.uri()).await.expect_err("cancelled");
    assert!(err.to_string().contains("lower [instance] page_size (now 1000)"), "{err}");
}

#[test]
fn window_below_five_minutes_is_refused_by_the_cli() {
    let (code, _, stderr) = run_binary(&["check", "--window", "4m", "--config", "/nonexistent.toml"]);
    assert_eq!(code, 3, "a usage error is UNKNOWN, never CRITICAL");
    assert!(stderr.contains("below the 5-minute minimum"), "{stderr}");
}

#[test]
fn window_above_thirty_days_is_refused_by_the_cli() {
    let (code, _, stderr) = run_binary(&["check", "--window", "1000000000d", "--config", "/nonexistent.toml"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("is above the 30-day maximum"), "{stderr}");
    let (_, _, stderr) = run_binary(&["run", "--window", "31d", "--config", "/nonexistent.toml"]);
    assert!(stderr.contains("a window of 31 days is above the 30-day maximum"), "{stderr}");
}

#[test]
fn missing_config_file_is_unknown_and_says_what_to_do() {
    let (code, stdout, _) = run_binary(&["check", "--config", "/nonexistent/midwatch.toml"]);
    assert_eq!(code, 3);
    assert!(
        stdout.starts_with("MIDWATCH UNKNOWN - /nonexistent/midwatch.toml: cannot read the config file"),
        "{stdout}"
    );
    assert!(stdout.contains("--config PATH"));
}

#[test]
fn an_invalid_config_is_unknown_without_naming_an_instance() {
    let (dir, file) = config_file("https://acme.service-now.com");
    let text = std::fs::read_to_string(&file).expect("read") + "page_sise = 10\n";
    std::fs::write(&file, text).expect("write");
    let (code, stdout, _) = run_binary(&["check", "--config", file.to_str().expect("utf-8")]);
    drop(dir);
    assert_eq!(code, 3);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("MIDWATCH UNKNOWN - "), "{stdout}");
    assert!(first.ends_with("[instance] unknown field `page_sise`: did you mean `page_size`?"), "{stdout}");
    assert!(!first.contains(" on instance"), "no instance name is known yet: {stdout}");
}

#[tokio::test]
async fn gateway_error_then_success_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/ecc_agent"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_demo_tables(&server, &[]).await;
    let outcome = check(&server.uri()).await.expect("the retry succeeds");
    assert_eq!(outcome.report.findings.len(), 5);
    let sent = server.received_requests().await.unwrap_or_default();
    assert_eq!(sent.iter().filter(|r| r.url.path().ends_with("/ecc_agent")).count(), 2);
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_honoured_then_succeeds() {
    let server = MockServer::start().await;
    let body = r#"{"error":{"message":"Rate limit exceeded","detail":"Rate limit of 100 requests per hour for Table API exceeded"},"status":"failure"}"#;
    Mock::given(method("GET"))
        .and(path("/api/now/table/sysevent"))
        .respond_with(json_response(429, body).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_demo_tables(&server, &[]).await;
    let started = std::time::Instant::now();
    let outcome = check(&server.uri()).await.expect("the retry succeeds");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "Retry-After: 1 was honoured");
    assert_eq!(outcome.report.findings.len(), 5);
    let sent = server.received_requests().await.unwrap_or_default();
    // The Table API read, answered 429 then 200 (the Aggregate API is not mounted: it answers 404).
    assert_eq!(sent.iter().filter(|r| r.url.path() == "/api/now/table/sysevent").count(), 2);
}

#[tokio::test]
async fn connection_refused_is_unknown_after_the_retry_budget() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let err = check(&format!("http://127.0.0.1:{port}")).await.expect_err("nothing listens");
    assert!(err.to_string().contains("could not reach the instance"), "{err}");
}

#[tokio::test]
async fn the_deadline_stops_a_check_against_an_instance_that_never_answers() {
    let server =
        instance_failing_on("sysevent", json_response(200, r#"{"result":[]}"#).set_delay(Duration::from_secs(60)))
            .await;
    let config = config_for(&server.uri());
    let client = client(&config);
    // The config's minimum is 5s; the cycle itself takes any deadline, so the test need not wait seconds.
    let opts = CheckOptions { timeout: Duration::from_millis(400), ..CheckOptions::from_config(&config) };
    let started = std::time::Instant::now();
    let err = Cycle::new(&config, &client, &opts).check(reference_now()).await.expect_err("the deadline passes");
    assert!(started.elapsed() < Duration::from_secs(3), "stopped at the deadline, not after the retries");
    assert!(matches!(err, cycle::CycleError::Deadline { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("did not finish within its 400ms deadline"), "{text}");
    assert!(text.contains("it was reading the instance"), "says what was pending: {text}");
    assert!(text.contains("waiting for sysevent page 1"), "names the request in flight: {text}");
    assert!(text.contains("--timeout"), "says what to do: {text}");
}

#[test]
fn timeout_values_are_checked_on_the_command_line() {
    for bad in ["1s", "2d", "soon"] {
        let (code, _, stderr) = run_binary(&["check", "--timeout", bad, "--config", "/nonexistent.toml"]);
        assert_eq!(code, 3, "--timeout {bad}: {stderr}");
        assert!(stderr.contains("--timeout"), "{stderr}");
    }
}

#[tokio::test]
async fn a_retry_after_longer_than_the_deadline_leaves_fails_at_once_with_that_reason() {
    let limited = json_response(
        429,
        r#"{"error":{"message":"Rate limit exceeded","detail":"Rate limit of 100 requests per hour for Table API exceeded"},"status":"failure"}"#,
    )
    .insert_header("Retry-After", "2");
    let server = instance_failing_on("sysevent", limited).await;
    let config = config_for(&server.uri());
    let client = client(&config);
    let opts = CheckOptions { timeout: Duration::from_millis(1500), ..CheckOptions::from_config(&config) };
    let started = std::time::Instant::now();
    let err = Cycle::new(&config, &client, &opts).check(reference_now()).await.expect_err("cannot wait that long");
    assert!(started.elapsed() < Duration::from_secs(1), "failed at once, without sleeping: {:?}", started.elapsed());
    let text = err.to_string();
    assert!(text.contains("asked midwatch to wait 2s before trying sysevent again"), "{text}");
    assert!(text.contains("longer than the 1s left of the check's deadline"), "{text}");
    let sysevent = server.received_requests().await.unwrap_or_default();
    assert_eq!(sysevent.iter().filter(|r| r.url.path() == "/api/now/table/sysevent").count(), 1, "not retried");
}

/// A TLS server on loopback presenting a self-signed certificate for `localhost`; its port and the
/// certificate's PEM.
async fn untrusted_tls_server() -> (u16, String) {
    let (acceptor, pem) = self_signed_acceptor(&["localhost"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            // The client refuses the certificate, so the handshake fails: nothing more to serve.
            tokio::spawn(async move { acceptor.accept(stream).await.ok() });
        }
    });
    (port, pem)
}

#[tokio::test]
async fn an_untrusted_certificate_is_not_retried_and_names_ca_file() {
    let (port, _) = untrusted_tls_server().await;
    let mut config = config_for(&format!("https://localhost:{port}"));
    config.instance.name = "acme".into();
    let client = client(&config);
    let started = std::time::Instant::now();
    let err = Cycle::new(&config, &client, &CheckOptions::from_config(&config))
        .check(reference_now())
        .await
        .expect_err("the certificate is refused");
    let text = err.to_string();
    assert!(text.contains("TLS certificate"), "{text}");
    assert!(text.contains("[instance] ca_file"), "names the key that fixes it: {text}");
    assert!(!text.contains("DNS"), "no advice about DNS and firewalls: {text}");
    assert!(started.elapsed() < Duration::from_secs(2), "not retried: {:?}", started.elapsed());
}

#[tokio::test]
async fn every_certificate_of_a_ca_file_bundle_is_trusted() {
    let (port, server_pem) = untrusted_tls_server().await;
    let other = rcgen::generate_simple_self_signed(vec!["other.example".to_string()]).expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("ca.pem");
    // The instance's CA second: a client that took only the first certificate would refuse the handshake.
    std::fs::write(&bundle, format!("{}{server_pem}", other.cert.pem())).expect("write bundle");
    let check_with = |ca: std::path::PathBuf| {
        let mut config = config_for(&format!("https://localhost:{port}"));
        config.instance.ca_file = Some(ca);
        async move {
            let client = client(&config);
            let opts = CheckOptions::from_config(&config);
            Cycle::new(&config, &client, &opts).check(reference_now()).await.expect_err("nothing answers after TLS")
        }
    };
    let err = check_with(bundle).await;
    assert!(!err.to_string().contains("TLS certificate"), "the bundle's second certificate is trusted: {err}");
    // The same file without the instance's CA is refused: the bundle, not luck, made the handshake pass.
    let alone = dir.path().join("other.pem");
    std::fs::write(&alone, other.cert.pem()).expect("write");
    let err = check_with(alone).await;
    assert!(err.to_string().contains("TLS certificate"), "{err}");
}
