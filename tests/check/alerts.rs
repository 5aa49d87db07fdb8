//! `[alertmanager]`: a cycle against the simulated instance posts its findings to every peer (wiremock on
//! loopback standing in for the peers of an Alertmanager cluster). Two hosts with the same configuration send
//! the same alerts; a peer down never changes the status; a gone finding is resolved once; a check that cannot
//! read the instance raises `MidwatchCheckFailed`, and the next one clears it.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use midwatch::config::{Config, ProcessEnvironment};
use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::domain::Status;
use midwatch::present::{Detail, Format};
use midwatch_sim::{Dataset, FakeInstance};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

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

fn alertmanager_section(peers: &[String]) -> String {
    let urls: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!("\n[alertmanager]\nurls = [{}]\ntimeout = \"2s\"\n", urls.join(", "))
}

/// The config of one host: the instance, its own state directory, the peers.
fn host(instance: &str, state: &Path, peers: &[String]) -> Config {
    let text = format!(
        "{}\n[state]\ndirectory = \"{}\"\n{}",
        instance_section(instance, "5s"),
        state.display(),
        alertmanager_section(peers)
    );
    Config::parse("test.toml", &text, &ProcessEnvironment).expect("valid test config")
}

async fn demo() -> FakeInstance {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    instance
}

async fn cycle(config: &Config, opts: &CheckOptions, now: DateTime<Utc>) -> Outcome {
    Cycle::new(config, &client(config), opts).check(now).await.expect("a completed check")
}

/// Every alert list the peer was sent, in order.
async fn posted(server: &MockServer) -> Vec<Vec<Value>> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests.iter().map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).expect("a JSON list of alerts")).collect()
}

fn label_sets(alerts: &[Value]) -> BTreeSet<String> {
    alerts.iter().map(|a| a["labels"].to_string()).collect()
}

fn text(a: &Value, pointer: &str) -> String {
    a.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

#[tokio::test]
async fn two_hosts_post_the_same_alerts_to_every_peer() {
    let instance = demo().await;
    let (one, two) = (peer().await, peer().await);
    let peers = [one.uri(), two.uri()];
    let (state_a, state_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (a, b) = (host(&instance.url(), state_a.path(), &peers), host(&instance.url(), state_b.path(), &peers));
    let (opts_a, opts_b) = (CheckOptions::from_config(&a), CheckOptions::from_config(&b));
    let (from_a, from_b) = tokio::join!(cycle(&a, &opts_a, reference_now()), cycle(&b, &opts_b, reference_now()));
    assert_eq!(from_a.report.status, Status::Critical);
    let findings = from_a.report.findings.len();
    // And the early warning of the demo data (mid.healthy refused from an unknown address).
    let warnings = from_a.report.warnings.len();
    assert_eq!(warnings, 1, "{:#?}", from_a.report.warnings);
    let (to_one, to_two) = (posted(&one).await, posted(&two).await);
    assert_eq!((to_one.len(), to_two.len()), (2, 2), "each host posted once to each peer");
    let sets: Vec<BTreeSet<String>> = to_one.iter().chain(&to_two).map(|alerts| label_sets(alerts)).collect();
    assert!(sets.iter().all(|s| *s == sets[0]), "identical labels from both hosts to both peers: {sets:#?}");
    assert_eq!(sets[0].len(), findings + warnings, "one alert per finding and per early warning");

    let report = from_a.view(None).render(Format::Text, Detail::Detailed);
    for alert in &to_one[0] {
        let keys: Vec<&str> = alert["labels"].as_object().expect("labels").keys().map(String::as_str).collect();
        assert_eq!(keys, ["alertname", "category", "servicenow_instance", "severity", "user"], "no other label");
        assert_eq!(text(alert, "/labels/servicenow_instance"), "127.0.0.1");
        let user = text(alert, "/labels/user");
        if text(alert, "/labels/alertname") == "MidServerUserWarning" {
            let warnings = serde_json::to_value(&from_a.report.warnings).expect("serializes");
            let warning = warnings.as_array().and_then(|w| w.iter().find(|w| w["user"] == user)).expect("a warning");
            assert_eq!(text(alert, "/annotations/summary"), warning["text"]);
            assert_eq!(text(alert, "/labels/category"), warning["kind"]);
            assert_eq!(text(alert, "/labels/severity"), "warning");
            continue;
        }
        let finding = from_a.report.findings.iter().find(|f| f.user == user).expect("a finding per alert");
        assert_eq!(text(alert, "/annotations/summary"), finding.message);
        // What to do: as the report says it under the finding's category.
        let description = text(alert, "/annotations/description");
        assert!(!description.is_empty() && report.contains(&format!("What to do: {description}\n")), "{description}");
        let severity = if text(alert, "/labels/category") == "configuration" { "warning" } else { "critical" };
        assert_eq!(text(alert, "/labels/severity"), severity);
        let link = text(alert, "/generatorURL");
        assert!(link.starts_with(&format!("{}/sys_user.do?sys_id=", instance.url())), "{link}");
        assert_eq!(text(alert, "/endsAt"), "2026-11-23T00:00:00Z", "three windows ahead of the instance's time");
    }
    let report = from_b.view(None).render(Format::Text, Detail::Summary);
    let line = format!(
        "Alertmanager: {n} alerts ({n} firing, 0 resolved) posted to 2 of 2 Alertmanagers",
        n = findings + warnings
    );
    assert!(report.contains(&line), "{report}");
    let json: Value = serde_json::from_str(&from_b.view(None).render(Format::Json, Detail::Summary)).expect("json");
    assert_eq!(json["alerts"]["firing"], findings + warnings);
}

#[tokio::test]
async fn peers_down_never_change_the_status_and_none_taking_the_alerts_is_on_the_status_line() {
    let instance = demo().await;
    let up = peer().await;
    let state = tempfile::tempdir().expect("tempdir");
    let config = host(&instance.url(), state.path(), &[up.uri(), closed_port()]);
    let outcome = cycle(&config, &CheckOptions::from_config(&config), reference_now()).await;
    assert_eq!(outcome.report.status, Status::Critical);
    assert!(outcome.report.status_line().contains(" on acme | "), "{}", outcome.report.status_line());
    assert_eq!(posted(&up).await.len(), 1);
    let report = outcome.view(None).render(Format::Text, Detail::Summary);
    assert!(report.contains("posted to 1 of 2 Alertmanagers; http://127.0.0.1:"), "{report}");

    let config = host(&instance.url(), state.path(), &[closed_port(), closed_port()]);
    let outcome = cycle(&config, &CheckOptions::from_config(&config), reference_now()).await;
    assert_eq!(outcome.report.status, Status::Critical, "the findings' status, whatever the peers");
    assert!(outcome.report.status_line().contains(" on acme; alerts not sent | "), "{}", outcome.report.status_line());
}

#[tokio::test]
async fn a_fixed_user_is_resolved_once_and_a_selected_or_switched_off_check_posts_nothing() {
    let instance = demo().await;
    let server = peer().await;
    let state = tempfile::tempdir().expect("tempdir");
    let config = host(&instance.url(), state.path(), &[server.uri()]);
    let opts = CheckOptions::from_config(&config);
    cycle(&config, &opts, reference_now()).await;
    let later = reference_now() + chrono::Duration::minutes(5);
    instance.edit(|tables| midwatch_sim::edits::fix_midserver2(tables, later - chrono::Duration::minutes(2)));
    instance.set_clock(later);
    cycle(&config, &opts, later).await;
    let last = later + chrono::Duration::minutes(5);
    instance.set_clock(last);
    cycle(&config, &opts, last).await;
    let posts = posted(&server).await;
    let midserver2 = |alerts: &[Value]| -> Vec<String> {
        alerts.iter().filter(|a| text(a, "/labels/user") == "midserver2").map(|a| text(a, "/endsAt")).collect()
    };
    assert_eq!(midserver2(&posts[0]), ["2026-11-23T00:00:00Z"], "firing");
    assert_eq!(midserver2(&posts[1]), ["2026-11-22T12:05:00Z"], "resolved: endsAt = now");
    assert_eq!(midserver2(&posts[2]), Vec::<String>::new(), "then forgotten");
    assert_eq!(posts[2].len(), posts[1].len() - 1, "the others fire on");

    let selected = CheckOptions { scope: midwatch::domain::Scope::of(selection("mid.paris")), ..opts.clone() };
    cycle(&config, &selected, last).await;
    let off = CheckOptions { no_alerts: true, ..opts };
    cycle(&config, &off, last).await;
    assert_eq!(posted(&server).await.len(), 3, "neither a selected check nor --no-alerts posts");
}

fn selection(user: &str) -> midwatch::domain::Selection {
    midwatch::domain::Selection { users: [user.to_string()].into(), ..Default::default() }
}

/// A config file for the binary: the instance at `instance`, a state directory, the peers.
fn config_file_with_peers(instance: &str, peers: &[String]) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, file) = config_file(instance);
    let text = std::fs::read_to_string(&file).expect("read config");
    let state = dir.path().join("state");
    let more = format!("\n[state]\ndirectory = \"{}\"\n{}", state.display(), alertmanager_section(peers));
    std::fs::write(&file, text + &more).expect("write config");
    (dir, file)
}

#[tokio::test]
async fn a_check_that_cannot_read_the_instance_raises_midwatch_check_failed_and_the_next_clears_it() {
    let instance = demo().await;
    let server = peer().await;
    let peers = [server.uri()];
    let (dir, blind) = config_file_with_peers(&closed_port(), &peers);
    let (code, stdout, _) =
        run_binary_beside(&["check", "--config", &blind.to_string_lossy(), "--timeout", "5s"]).await;
    assert_eq!(code, 3, "{stdout}");
    let posts = posted(&server).await;
    assert_eq!(posts.len(), 1);
    let failure = &posts[0][0];
    assert_eq!(
        failure["labels"],
        serde_json::json!({"alertname": "MidwatchCheckFailed", "servicenow_instance": "127.0.0.1"})
    );
    assert_eq!(text(failure, "/annotations/summary"), stdout.lines().next().unwrap_or_default(), "the status line");

    // The same state directory, an instance that answers: the failure is resolved, the findings fire.
    let (_other, seeing) = config_file_with_peers(&instance.url(), &peers);
    let text_of = |file: &Path| std::fs::read_to_string(file).expect("read");
    let state_line = |file: &Path| text_of(file).lines().find(|l| l.starts_with("directory")).map(str::to_string);
    let fixed = text_of(&seeing).replace(&state_line(&seeing).expect("state"), &state_line(&blind).expect("state"));
    std::fs::write(&seeing, fixed).expect("write");
    let (code, stdout, _) = run_binary_beside(&["check", "--config", &seeing.to_string_lossy()]).await;
    assert_eq!(code, 2, "{stdout}");
    let posts = posted(&server).await;
    assert_eq!(posts.len(), 2);
    let cleared: Vec<&Value> =
        posts[1].iter().filter(|a| text(a, "/labels/alertname") == "MidwatchCheckFailed").collect();
    assert_eq!(cleared.len(), 1, "{:#?}", posts[1]);
    assert_eq!(text(cleared[0], "/endsAt"), "2026-11-22T12:00:00Z", "resolved at the instance's time");
    assert!(stdout.contains("\nAlertmanager: "), "{stdout}");

    // --dry-run says what it would post; --no-alerts posts nothing.
    let (_, stdout, _) = run_binary_beside(&["check", "--config", &seeing.to_string_lossy(), "--dry-run"]).await;
    assert!(stdout.contains("Alertmanager: dry run: would post "), "{stdout}");
    assert!(stdout.contains(" to 1 Alertmanager\n"), "{stdout}");
    run_binary_beside(&["check", "--config", &seeing.to_string_lossy(), "--no-alerts"]).await;
    run_binary_beside(&["check", "--config", &blind.to_string_lossy(), "--no-alerts", "--timeout", "5s"]).await;
    assert_eq!(posted(&server).await.len(), 2, "neither --dry-run nor --no-alerts posts");
    drop(dir);
}

#[tokio::test]
async fn a_peer_behind_tls_is_trusted_through_ca_file_and_refused_without_it() {
    let instance = demo().await;
    let server = peer().await;
    let certificate = ca_marked_certificate(&["localhost"], false);
    let (acceptor, pem) = acceptor_for(&certificate);
    let port = tls_front(acceptor, *server.address()).await;
    let peers = [format!("https://localhost:{port}")];
    let state = tempfile::tempdir().expect("tempdir");
    let ca = state.path().join("peer-ca.pem");
    std::fs::write(&ca, pem).expect("write pem");

    let untrusted = host(&instance.url(), state.path(), &peers);
    let outcome = cycle(&untrusted, &CheckOptions::from_config(&untrusted), reference_now()).await;
    let report = outcome.view(None).render(Format::Text, Detail::Summary);
    assert!(
        report.contains("its TLS certificate is refused (the server's certificate is itself marked as a CA"),
        "{report}"
    );
    assert!(report.contains("put the peer's CA in [alertmanager] ca_file"), "{report}");
    assert!(posted(&server).await.is_empty());

    let text = format!(
        "{}\n[state]\ndirectory = \"{}\"\n{}ca_file = \"{}\"\n",
        instance_section(&instance.url(), "5s"),
        state.path().display(),
        alertmanager_section(&peers),
        ca.display()
    );
    let trusted = Config::parse("test.toml", &text, &ProcessEnvironment).expect("valid test config");
    let outcome = cycle(&trusted, &CheckOptions::from_config(&trusted), reference_now()).await;
    assert!(outcome.report.unfinished.is_empty(), "{:?}", outcome.report.unfinished);
    assert_eq!(posted(&server).await.len(), 1, "the certificate of ca_file, exactly the peer's, is trusted");
}
