//! The status line names a side effect that did not complete: Icinga and Nagios show only that line, so an
//! email not sent or a record not written must be on it, before the performance data, while the status stays
//! the findings'.

use std::time::Duration;

use midwatch::config::EmailConfig;
use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::domain::Status;
use midwatch::present::{Detail, Format};
use midwatch_sim::{Dataset, FakeInstance, Fault};

use crate::support::*;

/// A loopback port nothing listens on: a relay that is down.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// One check of the demo data, with email to a relay at `port` when given.
async fn check(instance: &FakeInstance, relay: Option<u16>) -> (Outcome, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("tempdir");
    let mut config = config_for(&instance.url());
    config.state_directory = state.path().to_path_buf();
    config.email = relay.map(|port| {
        let mut email = EmailConfig::loopback(
            port,
            "midwatch <midwatch@acme.example>".parse().expect("from"),
            vec!["alice@acme.example".parse().expect("to")],
        );
        email.timeout = Duration::from_secs(5);
        email
    });
    let client = client(&config);
    let outcome = Cycle::new(&config, &client, &CheckOptions::from_config(&config))
        .check(reference_now())
        .await
        .expect("a completed check");
    (outcome, state)
}

async fn demo() -> FakeInstance {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    instance
}

/// The status line as the text report's first line and as the JSON document's `status_line`.
fn status_lines(outcome: &Outcome) -> (String, String) {
    let text = outcome.view(None).render(Format::Text, Detail::Summary);
    let json: serde_json::Value =
        serde_json::from_str(&outcome.view(None).render(Format::Json, Detail::Summary)).expect("json");
    let first = text.lines().next().unwrap_or_default().to_string();
    (first, json["status_line"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn an_email_not_sent_is_named_in_the_status_line_before_the_performance_data() {
    let instance = demo().await;
    let (outcome, _state) = check(&instance, Some(closed_port())).await;
    assert_eq!(outcome.report.status, Status::Critical, "the findings' status");
    let (text, json) = status_lines(&outcome);
    assert!(text.starts_with("MIDWATCH CRITICAL - 5 findings ("), "{text}");
    assert!(text.contains(" on acme; email not sent | findings=5 "), "{text}");
    assert!(text.starts_with(&json) && json.contains("; email not sent | "), "{json}");
}

#[tokio::test]
async fn records_not_written_are_named_in_the_status_line() {
    let instance = demo().await;
    let body = r#"{"error":{"message":"Insufficient rights to query records","detail":null},"status":"failure"}"#;
    instance.inject(Fault::Respond {
        table: "ecc_agent_issue".into(),
        status: 403,
        body: body.into(),
        headers: vec![],
    });
    let (outcome, _state) = check(&instance, None).await;
    let (text, _) = status_lines(&outcome);
    assert!(text.contains(" on acme; ecc_agent_issue not written | "), "{text}");
    assert_eq!(outcome.report.status, Status::Critical);
}

#[tokio::test]
async fn a_check_whose_side_effects_all_completed_says_nothing_more() {
    let instance = demo().await;
    let relay = midwatch_sim::smtp::SmtpSink::start(None).await.expect("relay");
    let (outcome, _state) = check(&instance, Some(relay.port())).await;
    let (text, _) = status_lines(&outcome);
    assert!(text.contains(" on acme | findings=5 "), "{text}");
}
