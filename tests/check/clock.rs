//! Whose clock "now" is (product.md §2): the instance's, read from the `Date` header of its answers, as the
//! built-in job runs on the instance's clock. A host clock minutes off (an unsynchronised VM, a wrong time zone
//! setting) changes no finding, no "down since" and no `down_for`; the difference is said once in the report
//! and by `config check`; an instance that sends no `Date` leaves the host's clock, and the report says so.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use midwatch::config::Config;
use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::domain::sn_time;
use midwatch::present::{Detail, Format};
use midwatch_sim::{Dataset, FakeInstance};
use serde_json::{Value, json};

use crate::selection::{binary, live_demo};
use crate::support::*;

const ROLE: &str = "a0000000000000000000000000000001";

/// The difference of the example: 7 minutes and 2 seconds.
fn skew() -> TimeDelta {
    TimeDelta::seconds(7 * 60 + 2)
}

fn ago(now: DateTime<Utc>, minutes: i64) -> String {
    sn_time::format(now - TimeDelta::minutes(minutes))
}

/// An instance whose time is `now`, with every row dated by its clock:
/// - `mid.failed` (Down `mid-a`) failed to log in 2 minutes ago: authentication;
/// - `mid.ok` (Down `mid-b`) logged in 1 minute ago: no finding;
/// - `mid.refused` (Down `mid-c`) was refused for a missing role 4 minutes ago: authorization;
/// - `role.only` holds the role, is on no MID Server, and logged in 3 minutes ago: configuration;
/// - `mid.new` (Down `mid-new`, silent for 10 minutes only, under `down_for = 15m`): not judged yet.
///
/// The other MID Servers have been silent for 30 minutes.
fn dataset(now: DateTime<Utc>) -> Dataset {
    let mut d = Dataset::default();
    let mut insert = |table: &str, rows: Vec<Value>| {
        d.insert_fixture(table, &json!({ "result": rows }).to_string()).expect("fixture");
    };
    insert("sys_user_role", vec![json!({"sys_id": ROLE, "name": "mid_server"})]);
    insert("sys_user_role_contains", vec![]);
    let users = ["mid.failed", "mid.ok", "mid.refused", "role.only", "mid.new"];
    let mids = [("mid-a", 30), ("mid-b", 30), ("mid-c", 30), ("", 0), ("mid-new", 10)];
    let (mut sys_user, mut has_role, mut agents, mut configs) = (vec![], vec![], vec![], vec![]);
    for (i, (user, (mid, silent))) in users.iter().zip(mids).enumerate() {
        let uid = format!("b{i:031}");
        sys_user.push(json!({"sys_id": uid, "user_name": user, "active": "true", "locked_out": "false",
            "sys_domain": reference("sys_user_group", "global")}));
        has_role.push(json!({"sys_id": format!("d{i:031}"), "user": reference("sys_user", &uid),
            "role": reference("sys_user_role", ROLE), "inherited": "false"}));
        if mid.is_empty() {
            continue;
        }
        let mid_id = format!("c{i:031}");
        agents.push(json!({"sys_id": mid_id, "name": mid, "status": "Down", "last_refreshed": ago(now, silent)}));
        configs.push(json!({"sys_id": format!("e{i:031}"), "ecc_agent": reference("ecc_agent", &mid_id),
            "param_name": "mid.instance.username", "value": user, "sys_domain": reference("sys_user_group", "global")}));
    }
    insert("sys_user", sys_user);
    insert("sys_user_has_role", has_role);
    insert("ecc_agent", agents);
    insert("ecc_agent_config", configs);
    let events = [
        ("mid.failed", "login.failed", "10.0.0.1", 2),
        ("mid.ok", "login", "10.0.0.2", 1),
        ("mid.refused", "login.authorization.failed", "soap_script", 4),
        ("role.only", "login", "10.0.0.4", 3),
    ];
    let rows = events
        .iter()
        .enumerate()
        .map(|(i, (user, name, parm2, minutes))| {
            json!({"sys_id": format!("f{i:031}"), "name": name, "parm1": user, "parm2": parm2,
                "sys_created_on": ago(now, *minutes)})
        })
        .collect();
    insert("sysevent", rows);
    d.ensure_table("sys_user_login_history");
    d.ensure_table("ecc_agent_issue");
    d
}

/// The three right findings, by user and documented message; none of the four a host clock 7 minutes off
/// made (three "No login attempts within reporting period" and a role holder "not associated … No login
/// attempts").
fn right_findings() -> BTreeSet<(String, String)> {
    [
        ("mid.failed", "Login authentication failure for User mid.failed associated with 1 down MID Server. Check password on MID server."),
        ("mid.refused", "Login authorization failure for User mid.refused associated with 1 down MID Server. Re-assign mid_server role to grant all required roles."),
        ("role.only", "User role.only with mid_server role successfully connected but not associated with a MID Server. The mid_server role should be reserved for MID Server use only."),
    ]
    .iter()
    .map(|(u, m)| (u.to_string(), m.to_string()))
    .collect()
}

fn findings(outcome: &Outcome) -> BTreeSet<(String, String)> {
    outcome.report.findings.iter().map(|f| (f.user.clone(), f.message.clone())).collect()
}

fn config(url: &str) -> Config {
    let text = instance_section(url, "5s") + "\n[check]\nwindow = \"5m\"\ndown_for = \"15m\"\n";
    Config::parse("test.toml", &text, &midwatch::config::ProcessEnvironment).expect("valid test config")
}

/// One check against an instance whose clock reads `instance_now` (and so its `Date` header, unless
/// `date_header` is off), run on a host whose clock reads `host_now`; its text report too.
async fn check_with_clocks(
    instance_now: DateTime<Utc>,
    host_now: DateTime<Utc>,
    date_header: bool,
) -> (Outcome, String, FakeInstance) {
    let instance = FakeInstance::start(dataset(instance_now), USER, PASSWORD).await.expect("start");
    instance.set_clock(instance_now);
    instance.set_date_header(date_header);
    let config = config(&instance.url());
    let client = client(&config);
    let opts = CheckOptions::from_config(&config);
    let outcome = Cycle::new(&config, &client, &opts).check(host_now).await.expect("a cycle");
    let text = outcome.view(None).render(Format::Text, Detail::Detailed);
    (outcome, text, instance)
}

#[tokio::test]
async fn a_host_clock_seven_minutes_ahead_or_behind_changes_no_finding_and_is_said_once() {
    let instance_now = reference_now();
    for (host_now, said) in [
        (instance_now + skew(), "this host's clock is 7m 2s ahead of the instance's"),
        (instance_now - skew(), "this host's clock is 7m 2s behind the instance's"),
    ] {
        let (outcome, text, instance) = check_with_clocks(instance_now, host_now, true).await;
        assert_eq!(findings(&outcome), right_findings(), "host clock at {host_now}:\n{text}");
        // The window ends at the instance's time, so do "down since" and down_for: the MID Servers silent
        // for 30 minutes are judged, the one silent for 10 is not yet.
        assert_eq!(sn_time::format(outcome.report.window.end), midwatch_sim::REFERENCE_TIME, "{text}");
        assert_eq!(text.matches("(30m before the check)").count(), 2, "mid-a and mid-c, with a finding: {text}");
        assert!(text.contains("mid-new") && text.contains("(10m before the check)"), "{text}");
        // Said once, in the report's notes, in these words.
        let notes: Vec<&String> = outcome.report.notes.iter().filter(|n| n.contains("this host's clock")).collect();
        assert_eq!(notes.len(), 1, "{:?}", outcome.report.notes);
        assert!(notes[0].contains(said), "{}", notes[0]);
        assert_eq!(text.matches("this host's clock").count(), 1, "{text}");
        // What was written to ecc_agent_issue is the right findings, dated by the instance's clock.
        let written: Vec<(String, String)> = instance
            .rows("ecc_agent_issue")
            .iter()
            .map(|r| (text_of(r, "message"), text_of(r, "last_detected")))
            .collect();
        let messages: BTreeSet<String> = written.iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(messages, right_findings().into_iter().map(|(_, m)| m).collect(), "{written:?}");
        assert!(written.iter().all(|(_, at)| at == midwatch_sim::REFERENCE_TIME), "{written:?}");
    }
}

#[tokio::test]
async fn clocks_that_agree_say_nothing_of_clocks() {
    let now = reference_now();
    let (outcome, text, _instance) = check_with_clocks(now, now + TimeDelta::seconds(20), true).await;
    assert_eq!(findings(&outcome), right_findings(), "{text}");
    assert!(!text.contains("clock"), "20 seconds apart is not worth a word:\n{text}");
}

#[tokio::test]
async fn an_instance_without_a_date_header_leaves_the_host_clock_and_the_report_says_so() {
    let now = reference_now();
    let (outcome, text, _instance) = check_with_clocks(now, now, false).await;
    assert_eq!(findings(&outcome), right_findings(), "{text}");
    let notes: Vec<&String> = outcome.report.notes.iter().filter(|n| n.contains("no Date header")).collect();
    assert_eq!(notes.len(), 1, "{:?}", outcome.report.notes);
    assert!(notes[0].contains("this host's clock"), "{}", notes[0]);
    assert_eq!(text.matches("no Date header").count(), 1, "{text}");
}

#[tokio::test]
async fn the_check_command_takes_now_from_the_instance_and_says_the_difference() {
    // The same demo data, dated by an instance whose clock agrees with this host's, then by one 7m 2s ahead.
    let (agreeing, _dir, config) = live_demo().await;
    let (_, agreed, _) = binary(&["check", "--no-write", "--config", &config]).await;
    drop(agreeing);
    let instance = FakeInstance::start(Dataset::demo(Utc::now() + skew()), USER, PASSWORD).await.expect("start");
    instance.set_clock_ahead(skew());
    let (_dir, file) = config_file(&instance.url());
    let (code, stdout, stderr) = binary(&["check", "--no-write", "--config", file.to_str().expect("utf-8")]).await;
    let status = |out: &str| out.lines().next().and_then(|l| l.split_once(" | ")).map(|(s, _)| s.to_string());
    assert_eq!(status(&stdout), status(&agreed), "the same status ({code}):\n{stdout}\n{stderr}");
    assert_eq!(stdout.matches("this host's clock is 7m").count(), 1, "{stdout}");
    assert!(stdout.contains("behind the instance's"), "{stdout}");
}

#[tokio::test]
async fn config_check_says_how_far_the_host_clock_is_from_the_instance_or_that_it_cannot_tell() {
    for (ahead, date_header, expected) in [
        (skew(), true, Some("note: this host's clock is 7m 2s behind the instance's")),
        (-skew(), true, Some("note: this host's clock is 7m 2s ahead of the instance's")),
        (TimeDelta::zero(), true, None),
        (TimeDelta::zero(), false, Some("note: the instance's answers carry no Date header")),
    ] {
        let instance = FakeInstance::start(Dataset::demo(Utc::now() + ahead), USER, PASSWORD).await.expect("start");
        instance.set_clock_ahead(ahead);
        instance.set_date_header(date_header);
        let (_dir, file) = config_file(&instance.url());
        let (code, stdout, stderr) = binary(&["config", "check", "--config", file.to_str().expect("utf-8")]).await;
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        match expected {
            // The Date header's whole seconds can make it a second less.
            Some(line) => {
                let one_less = line.replace("7m 2s", "7m 1s");
                assert!(stdout.contains(line) || stdout.contains(&one_less), "{ahead}: {stdout}");
                assert_eq!(stdout.matches("clock").count(), 1, "{stdout}");
            }
            None => assert!(!stdout.contains("clock") && !stdout.contains("Date"), "{stdout}"),
        }
    }
}

fn text_of(row: &serde_json::Map<String, Value>, field: &str) -> String {
    row.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}
