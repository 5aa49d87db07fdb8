//! `check` as a monitoring plugin, run the way Icinga 2 runs it: stdout and stderr into one pipe, whose
//! first line is what every monitoring UI shows.

use std::io::Read as _;
use std::process::{Command, Stdio};

use wiremock::MockServer;
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

/// An instance without Identity Center: `sys_user_login_history` answers 400 "Invalid table", which the
/// check goes on without (and logs at info).
async fn instance_without_login_history() -> MockServer {
    let server = MockServer::start().await;
    let body = r#"{"error":{"message":"Invalid table sys_user_login_history","detail":null},"status":"failure"}"#;
    Mock::given(path("/api/now/table/sys_user_login_history"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    mount_demo_tables(&server, &["sys_user_login_history"]).await;
    server
}

/// Runs the binary with stdout and stderr on one pipe; returns the exit code and what the pipe carried.
fn run_as_icinga(args: &[&str]) -> (i32, String) {
    let (mut reader, writer) = std::io::pipe().expect("pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_midwatch"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("MIDWATCH_CONFIG")
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("clone pipe"))
        .stderr(writer)
        .spawn()
        .expect("run midwatch");
    let mut output = String::new();
    reader.read_to_string(&mut output).expect("read the pipe");
    let status = child.wait().expect("wait");
    (status.code().unwrap_or(-1), output)
}

/// Each item after the `|` is `label=value[UOM]` with a numeric value (monitoring-plugins guidelines).
fn perfdata(status_line: &str) -> Vec<(String, f64, String)> {
    let (_, perf) = status_line.split_once(" | ").unwrap_or_else(|| panic!("no performance data: {status_line}"));
    perf.split(' ')
        .map(|item| {
            let (label, value) = item.split_once('=').unwrap_or_else(|| panic!("not label=value: {item}"));
            let value = value.split(';').next().unwrap_or_default();
            let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
            let number: f64 = digits.parse().unwrap_or_else(|e| panic!("{item}: {e}"));
            (label.to_string(), number, value[digits.len()..].to_string())
        })
        .collect()
}

#[tokio::test]
async fn the_status_line_is_the_first_line_and_nothing_is_logged_when_the_check_works() {
    let server = instance_without_login_history().await;
    let (_dir, file) = config_file(&server.uri());
    let config = file.to_string_lossy().to_string();
    let (code, output) = run_as_icinga(&["check", "--config", &config, "--no-write", "--detail", "summary"]);
    assert_eq!(code, 2, "{output}");
    let first = output.lines().next().unwrap_or_default();
    assert!(first.starts_with("MIDWATCH CRITICAL - "), "{output}");
    assert!(!output.contains(" INFO ") && !output.contains(" WARN "), "no log line at the default level:\n{output}");
    assert!(output.contains("sys_user_login_history"), "the report says what the check went without:\n{output}");

    let perf = perfdata(first);
    let labels: Vec<&str> = perf.iter().map(|(l, _, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "findings",
            "down_mid_servers",
            "authentication",
            "authorization",
            "network",
            "configuration",
            "warnings",
            "duration"
        ],
        "{first}"
    );
    let value = |label: &str| perf.iter().find(|(l, _, _)| l == label).map(|(_, v, u)| (*v, u.clone()));
    let by_category: f64 = ["authentication", "authorization", "network", "configuration"]
        .iter()
        .filter_map(|c| value(c).map(|(v, _)| v))
        .sum();
    assert_eq!(value("findings").map(|(v, _)| v), Some(by_category), "{first}");
    assert_eq!(value("duration").map(|(_, u)| u), Some("s".to_string()), "{first}");
}

#[tokio::test]
async fn with_v_the_log_follows_the_report_and_the_status_line_stays_first() {
    let server = instance_without_login_history().await;
    let (_dir, file) = config_file(&server.uri());
    let config = file.to_string_lossy().to_string();
    let (code, output) = run_as_icinga(&["check", "-v", "--config", &config, "--no-write", "--detail", "summary"]);
    assert_eq!(code, 2, "{output}");
    let lines: Vec<&str> = output.lines().collect();
    assert!(lines.first().is_some_and(|l| l.starts_with("MIDWATCH CRITICAL - ")), "{output}");
    let logged = lines
        .iter()
        .position(|l| l.contains(" INFO ") && l.contains("sys_user_login_history does not exist"))
        .unwrap_or_else(|| panic!("-v logs at info:\n{output}"));
    let report_end = lines.iter().position(|l| l.starts_with("Notes:")).unwrap_or(0);
    assert!(logged > report_end, "the log comes after the report:\n{output}");
}
