//! The deadline cuts the side effects, never the report: a relay that accepts and stays silent, and an
//! instance that never answers a write, leave the findings and their status intact.

use std::time::Duration;

use midwatch::config::EmailConfig;
use midwatch::cycle::{CheckOptions, Cycle};
use midwatch::domain::Status;
use midwatch::notify::EmailStatus;
use midwatch::writeback::WriteBack;
use midwatch_sim::{Dataset, FakeInstance, Fault};

use crate::support::*;

/// Accepts SMTP connections and never says a word (a black-holed relay).
async fn silent_relay() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (port, held)
}

fn email_to(port: u16) -> EmailConfig {
    let mut email = EmailConfig::loopback(
        port,
        "midwatch <midwatch@acme.example>".parse().expect("from"),
        vec!["alice@acme.example".parse().expect("to")],
    );
    // Longer than the check's deadline, as a relay's usual timeout is.
    email.timeout = Duration::from_secs(60);
    email
}

#[tokio::test]
async fn a_relay_that_never_answers_cuts_the_email_off_and_the_report_keeps_its_status() {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    let (port, _relay) = silent_relay().await;
    let state = tempfile::tempdir().expect("tempdir");
    let mut config = config_for(&instance.url());
    config.email = Some(email_to(port));
    config.state_directory = state.path().to_path_buf();
    let client = client(&config);
    let opts = CheckOptions { timeout: Duration::from_secs(2), ..CheckOptions::from_config(&config) };

    let started = std::time::Instant::now();
    let outcome = Cycle::new(&config, &client, &opts).check(reference_now()).await.expect("the report survives");
    assert!(started.elapsed() < Duration::from_secs(4), "bounded by the deadline: {:?}", started.elapsed());
    assert_eq!(outcome.report.status, Status::Critical, "the findings' status");
    assert!(!outcome.report.findings.is_empty());
    assert!(
        matches!(outcome.write_back, WriteBack::Applied { .. }),
        "written before the email: {:?}",
        outcome.write_back
    );
    let email = outcome.email().expect("email configured");
    match &email.status {
        EmailStatus::Queued { reason, .. } => {
            assert!(reason.contains("deadline passed while delivering"), "{reason}");
            assert!(reason.contains("stays in the outbox"), "{reason}");
        }
        other => panic!("expected the email queued, got {other:?}"),
    }
    assert_eq!(email.outbox_pending, 1, "{email:?}");
    let text = outcome.view(None).render(midwatch::present::Format::Text, midwatch::present::Detail::Summary);
    assert!(text.starts_with("MIDWATCH CRITICAL"), "the status line first: {text}");
    assert!(text.contains("stays in the outbox"), "says what was cut off: {text}");
}

#[tokio::test]
async fn a_write_that_never_answers_is_cut_off_and_the_next_cycle_converges_without_a_duplicate() {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    let mut config = config_for(&instance.url());
    config.instance.batch = false;
    config.instance.timeout = Duration::from_secs(30);
    let client = client(&config);
    instance.inject(Fault::ApplyThenHang { table: "ecc_agent_issue".into() });
    let opts = CheckOptions { timeout: Duration::from_secs(2), ..CheckOptions::from_config(&config) };

    let started = std::time::Instant::now();
    let first = Cycle::new(&config, &client, &opts).check(reference_now()).await.expect("the report survives");
    assert!(started.elapsed() < Duration::from_secs(4), "bounded by the deadline: {:?}", started.elapsed());
    assert_eq!(first.report.status, Status::Critical);
    let WriteBack::CutOff { plan, .. } = &first.write_back else {
        panic!("expected the write-back cut off, got {:?}", first.write_back)
    };
    assert!(plan.create.len() > 1, "{plan:?}");
    let text = first.view(None).render(midwatch::present::Format::Text, midwatch::present::Detail::Summary);
    assert!(text.contains("cut off by the check's deadline while writing"), "{text}");
    assert!(text.contains("the next cycle converges"), "{text}");

    let opts = CheckOptions::from_config(&config);
    let second = Cycle::new(&config, &client, &opts).check(reference_now()).await.expect("second cycle");
    let WriteBack::Applied { applied, .. } = &second.write_back else { panic!("{:?}", second.write_back) };
    assert!(applied.failed.is_empty(), "{applied:?}");
    let open: Vec<_> = instance
        .rows("ecc_agent_issue")
        .into_iter()
        .filter(|r| r.get("source").and_then(|v| v.as_str()) == Some("midwatch"))
        .filter(|r| r.get("state").and_then(|v| v.as_str()) != Some("resolved"))
        .collect();
    assert_eq!(open.len(), second.report.findings.len(), "one record per finding, none duplicated: {open:#?}");
}

#[test]
fn the_binary_prints_the_findings_and_their_status_when_the_relay_is_silent() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let instance =
        runtime.block_on(FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD)).expect("start");
    let (port, _relay) = runtime.block_on(silent_relay());
    let (dir, file) = config_file(&instance.url());
    let mut text = std::fs::read_to_string(&file).expect("config");
    text.push_str(&format!(
        "\n[state]\ndirectory = \"{}\"\n\n[email]\nurl = \"smtp://127.0.0.1:{port}\"\ntls = \"none\"\n\
         from = \"midwatch@acme.example\"\nto = \"alice@acme.example\"\ntimeout = \"60s\"\n",
        dir.path().join("state").display()
    ));
    std::fs::write(&file, text).expect("write config");
    let started = std::time::Instant::now();
    let (code, stdout, stderr) =
        run_binary(&["check", "--timeout", "5s", "--no-write", "--config", &file.to_string_lossy()]);
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert_eq!(code, 2, "the findings' status, not UNKNOWN: {stdout}\n{stderr}");
    assert!(stdout.starts_with("MIDWATCH CRITICAL"), "{stdout}");
    assert!(stdout.contains("stays in the outbox"), "{stdout}");
    drop(instance);
}
