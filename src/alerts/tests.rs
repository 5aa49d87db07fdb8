//! Posting to real HTTP servers on loopback (wiremock standing in for the Alertmanager peers): every peer the
//! same alerts, a peer down, the credentials, the state file from one cycle to the next, `MidwatchCheckFailed`
//! raised and cleared, and `config check`'s probe.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::alert::tests::{instance_url, now, report};
use super::*;
use crate::config::PeerAuth;

async fn peer() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/alerts"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// A loopback URL nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", listener.local_addr().expect("addr"))
}

fn config(urls: &[String]) -> AlertmanagerConfig {
    AlertmanagerConfig {
        urls: urls.iter().map(|u| format!("{u}/").parse().expect("url")).collect(),
        auth: None,
        ca_file: None,
        timeout: Duration::from_secs(2),
    }
}

const LIFETIME: Duration = Duration::from_secs(12 * 3600);

fn target<'a>(config: &'a AlertmanagerConfig, state: &'a Path, url: &'a Url) -> Target<'a> {
    Target { config, state_dir: state, instance_url: url, lifetime: LIFETIME, dry_run: false }
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

/// The alert lists each peer was sent, in order.
async fn posted(server: &MockServer) -> Vec<Vec<Value>> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == "/api/v2/alerts")
        .map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).expect("a JSON list of alerts"))
        .collect()
}

fn names(alerts: &[Value]) -> Vec<(String, String, String)> {
    let text = |a: &Value, p: &str| a.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    alerts.iter().map(|a| (text(a, "/labels/alertname"), text(a, "/labels/user"), text(a, "/endsAt"))).collect()
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[tokio::test]
async fn every_peer_gets_the_same_alerts_and_what_was_alerted_is_remembered() {
    let (one, two) = (peer().await, peer().await);
    let config = config(&[one.uri(), two.uri()]);
    let (state, url, report) = (tempfile::tempdir().expect("tempdir"), instance_url(), report());
    let outcome = post_report(&target(&config, state.path(), &url), &report, now(), deadline()).await;
    assert_eq!((outcome.firing, outcome.resolved, outcome.unfinished()), (2, 0, None), "{outcome:?}");
    assert!(outcome.peers.iter().all(|p| p.error.is_none()), "{outcome:?}");
    assert_eq!(outcome.summary(), "2 alerts (2 firing, 0 resolved) posted to 2 of 2 Alertmanagers");
    let (to_one, to_two) = (posted(&one).await, posted(&two).await);
    assert_eq!(to_one.len(), 1, "one request per peer");
    assert_eq!(to_one, to_two, "every peer the same alerts");
    let ends = at(now() + chrono::Duration::hours(12));
    let mut sent = names(&to_one[0]);
    sent.sort();
    assert_eq!(
        sent,
        [
            ("MidServerUserConfiguration".into(), "ardis.maison".into(), ends.clone()),
            ("MidServerUserNetwork".into(), "midserver2".into(), ends),
        ]
    );
    let request = &one.received_requests().await.unwrap_or_default()[0];
    assert_eq!(request.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"application/json"[..]));
    assert!(request.headers.get("authorization").is_none(), "no credentials configured, none sent");
    let remembered = state::AlertedState::load(state.path()).expect("state");
    assert_eq!(remembered.len(), 2);
}

#[tokio::test]
async fn a_peer_down_is_named_and_the_alerts_still_reach_the_other() {
    let up = peer().await;
    let down = closed_port();
    let config = config(&[up.uri(), down.clone()]);
    let (state, url, report) = (tempfile::tempdir().expect("tempdir"), instance_url(), report());
    let outcome = post_report(&target(&config, state.path(), &url), &report, now(), deadline()).await;
    assert_eq!(posted(&up).await.len(), 1);
    assert_eq!(outcome.peers[0].error, None);
    let error = outcome.peers[1].error.as_deref().expect("the peer down failed");
    assert!(error.starts_with("cannot connect"), "{error}");
    assert_eq!(outcome.unfinished(), None, "one peer took them: the status line says nothing");
    assert!(outcome.summary().contains(&format!("posted to 1 of 2 Alertmanagers; {down}/ did not take them")));

    // Every peer down: the status line says so.
    let config = crate::alerts::tests::config(&[down.clone(), closed_port()]);
    let outcome = post_report(&target(&config, state.path(), &url), &report, now(), deadline()).await;
    assert_eq!(outcome.unfinished(), Some("alerts not sent"));
}

#[tokio::test]
async fn a_resolution_a_peer_missed_is_posted_again_next_cycle_and_then_forgotten() {
    let up = peer().await;
    let down = closed_port();
    let (state, url, mut report) = (tempfile::tempdir().expect("tempdir"), instance_url(), report());
    let both = config(&[up.uri(), down]);
    post_report(&target(&both, state.path(), &url), &report, now(), deadline()).await;
    report.findings.clear();
    let later = now() + chrono::Duration::hours(4);
    let missed = post_report(&target(&both, state.path(), &url), &report, later, deadline()).await;
    assert_eq!(missed.resolved, 2);
    let again = post_report(&target(&both, state.path(), &url), &report, later, deadline()).await;
    assert_eq!(again.resolved, 2, "not every peer took the resolution: it is posted again");
    let one = config(&[up.uri()]);
    let took = post_report(&target(&one, state.path(), &url), &report, later, deadline()).await;
    assert_eq!(took.resolved, 2);
    let done = post_report(&target(&one, state.path(), &url), &report, later, deadline()).await;
    assert_eq!((done.resolved, done.posted()), (0, 0), "every peer took it: forgotten");
    assert_eq!(done.summary(), "nothing to post (no finding, nothing to resolve)");
    assert_eq!(posted(&up).await.len(), 4, "nothing is sent when there is nothing to post");
}

#[tokio::test]
async fn a_bearer_token_or_basic_credentials_go_to_every_peer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/alerts"))
        .and(header("authorization", "Bearer t0ken-value"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/alerts"))
        .and(header("authorization", "Basic bWlkd2F0Y2g6cGE1NXdvcmQ="))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let (state, url, report) = (tempfile::tempdir().expect("tempdir"), instance_url(), report());
    let mut with_token = config(&[server.uri()]);
    with_token.auth = Some(PeerAuth::Bearer("t0ken-value".to_string().into()));
    let outcome = post_report(&target(&with_token, state.path(), &url), &report, now(), deadline()).await;
    assert_eq!(outcome.peers[0].error, None);
    let mut with_password = config(&[server.uri()]);
    with_password.auth = Some(PeerAuth::Basic { user: "midwatch".into(), password: "pa55word".to_string().into() });
    let outcome = post_report(&target(&with_password, state.path(), &url), &report, now(), deadline()).await;
    assert_eq!(outcome.peers[0].error, None);
    server.verify().await;
}

#[tokio::test]
async fn a_refusal_names_the_credentials_and_a_bad_answer_is_quoted_without_secrets() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string("Authorization: Bearer t0ken-value"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("\"bad alert\nAuthorization: Bearer t0ken-value\""))
        .mount(&server)
        .await;
    let (state, url, report) = (tempfile::tempdir().expect("tempdir"), instance_url(), report());
    let mut config = config(&[server.uri()]);
    config.auth = Some(PeerAuth::Bearer("t0ken-value".to_string().into()));
    let refused = post_report(&target(&config, state.path(), &url), &report, now(), deadline()).await;
    let error = refused.peers[0].error.clone().unwrap_or_default();
    assert!(error.contains("refused midwatch's credentials (HTTP 401)"), "{error}");
    let bad = post_report(&target(&config, state.path(), &url), &report, now(), deadline()).await;
    let error = bad.peers[0].error.clone().unwrap_or_default();
    assert!(error.starts_with("it answered HTTP 400: \"bad alert\\nAuthorization: "), "{error}");
    assert!(!error.contains("t0ken-value") && !error.contains('\n'), "{error}");
}

#[tokio::test]
async fn check_failed_is_raised_then_cleared_by_the_next_completed_cycle() {
    let server = peer().await;
    let config = config(&[server.uri()]);
    let (state, url, report) = (tempfile::tempdir().expect("tempdir"), instance_url(), report());
    let target = target(&config, state.path(), &url);
    post_report(&target, &report, now(), deadline()).await;
    let line = "MIDWATCH UNKNOWN - cannot connect to the instance on acme";
    let failed_at = now() + chrono::Duration::hours(4);
    let failed = post_failure(&target, line, failed_at, deadline()).await;
    assert_eq!((failed.firing, failed.resolved), (1, 0), "the findings' alerts are left as they are");
    let cleared_at = now() + chrono::Duration::hours(8);
    post_report(&target, &report, cleared_at, deadline()).await;
    let posts = posted(&server).await;
    assert_eq!(posts.len(), 3);
    let failure = &posts[1][0];
    assert_eq!(
        failure["labels"],
        serde_json::json!({"alertname": "MidwatchCheckFailed", "servicenow_instance": "acme.service-now.com"})
    );
    assert_eq!(failure["annotations"]["summary"], line);
    assert_eq!(failure["endsAt"], at(failed_at + chrono::Duration::hours(12)));
    let cleared: Vec<(String, String, String)> =
        names(&posts[2]).into_iter().filter(|n| n.0 == alert::CHECK_FAILED).collect();
    assert_eq!(cleared, [(alert::CHECK_FAILED.to_string(), String::new(), at(cleared_at))], "resolved: endsAt = now");
    assert_eq!(names(&posts[2]).len(), 3, "the two findings fire again beside it");
}

#[tokio::test]
async fn a_dry_run_posts_nothing_and_remembers_nothing() {
    let server = peer().await;
    let config = config(&[server.uri(), closed_port()]);
    let (state, url, report) = (tempfile::tempdir().expect("tempdir"), instance_url(), report());
    let dry = Target { dry_run: true, ..target(&config, state.path(), &url) };
    let outcome = post_report(&dry, &report, now(), deadline()).await;
    assert_eq!(outcome.summary(), "dry run: would post 2 alerts (2 firing, 0 resolved) to 2 Alertmanagers");
    assert_eq!(outcome.unfinished(), None);
    assert!(posted(&server).await.is_empty());
    assert!(!state.path().join(state::STATE_FILE).exists());
}

#[tokio::test]
async fn config_check_asks_every_peer_for_its_status() {
    let server = MockServer::start().await;
    let status = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("wiremock_fixtures/alertmanager/status.json"),
    )
    .expect("fixture");
    Mock::given(method("GET"))
        .and(path("/api/v2/status"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(status, "application/json"))
        .mount(&server)
        .await;
    let down = closed_port();
    let found = probe(&config(&[server.uri(), down.clone()])).await;
    assert_eq!(found.notes, [format!("{}/ answers: Alertmanager 0.25.0, cluster ready with 2 peers", server.uri())]);
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    assert_eq!(found.problems.len(), 1);
    assert!(found.problems[0].starts_with(&format!("[alertmanager] {down}/: cannot connect")), "{:?}", found.problems);
    // One URL of a two-peer cluster: the other peer would never get the alerts.
    let found = probe(&config(&[server.uri()])).await;
    assert!(found.warnings[0].contains("is in a cluster of 2 peers but [alertmanager] urls lists 1"), "{found:?}");
}
