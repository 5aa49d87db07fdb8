//! Early warnings and observations against the simulated instance, through a whole check: what is read, what
//! is reported (text, JSON, exit status) and that nothing of it is written to `ecc_agent_issue`.

use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::domain::{Observation, Status, Warning};
use midwatch::present::{Detail, Format};
use midwatch_sim::query::field_string as text;
use midwatch_sim::{AggregateSupport, Dataset, FakeInstance};
use serde_json::{Value, json};

use crate::support::*;

const ROLE: &str = "a0000000000000000000000000000001";

/// A user record: its name, `active`, `locked_out` and `failed_attempts`.
struct Account<'a>(&'a str, bool, bool, &'a str);

/// A MID Server: its name, status, `ip_address`, `user_name` (logged in) and the configured user.
struct Mid<'a>(&'a str, &'a str, &'a str, &'a str, &'a str);

/// An event: parm1, name, parm2, time.
type Event<'a> = (&'a str, &'a str, &'a str, &'a str);

fn dataset(accounts: &[Account<'_>], mids: &[Mid<'_>], events: &[Event<'_>]) -> Dataset {
    let mut d = Dataset::default();
    let mut ins =
        |t: &str, rows: Vec<Value>| d.insert_fixture(t, &json!({ "result": rows }).to_string()).expect("fixture");
    ins("sys_user_role", vec![json!({"sys_id": ROLE, "name": "mid_server"})]);
    ins("sys_user_role_contains", vec![]);
    let flag = |b: bool| if b { "true" } else { "false" };
    let (mut users, mut has_role) = (vec![], vec![]);
    for (i, Account(name, active, locked, attempts)) in accounts.iter().enumerate() {
        let uid = format!("b{i:031}");
        users.push(json!({"sys_id": uid, "user_name": name, "active": flag(*active), "locked_out": flag(*locked),
            "failed_attempts": attempts, "sys_domain": reference("sys_user_group", "global")}));
        has_role.push(json!({"sys_id": format!("d{i:031}"), "user": reference("sys_user", &uid),
            "role": reference("sys_user_role", ROLE), "inherited": "false"}));
    }
    let (mut agents, mut configs) = (vec![], vec![]);
    for (i, Mid(name, status, ip, logged_in, configured)) in mids.iter().enumerate() {
        let id = format!("c{i:031}");
        agents.push(json!({"sys_id": id, "name": name, "status": status, "ip_address": ip,
            "host_name": format!("{name}.corp.example.net"), "user_name": logged_in,
            "last_refreshed": "2026-11-22 11:00:00"}));
        configs.push(json!({"sys_id": format!("e{i:031}"), "ecc_agent": reference("ecc_agent", &id),
            "param_name": "mid.instance.username", "value": configured,
            "sys_domain": reference("sys_user_group", "global")}));
    }
    let events: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(j, (parm1, name, parm2, at))| {
            json!({"sys_id": format!("f{j:031}"), "name": name, "parm1": parm1, "parm2": parm2, "sys_created_on": at})
        })
        .collect();
    ins("sys_user", users);
    ins("sys_user_has_role", has_role);
    ins("ecc_agent", agents);
    ins("ecc_agent_config", configs);
    ins("sysevent", events);
    d.ensure_table("sys_user_login_history");
    d.ensure_table("ecc_agent_issue");
    d
}

async fn check_with(instance: &FakeInstance, early_warnings: bool) -> Outcome {
    let mut config = config_for(&instance.url());
    config.check.early_warnings = early_warnings;
    let client = client(&config);
    let opts = CheckOptions::from_config(&config);
    instance.set_clock(reference_now());
    Cycle::new(&config, &client, &opts).check(reference_now()).await.expect("check completes")
}

/// paris: configured on the Up mid-paris only, refused twice from mid-london's address after a success.
/// london: configured on the Down mid-london, its password refused: the documented authentication finding.
/// locked: on the Up mid-locked, locked out; gone: on the Up mid-gone, inactive. berlin: on the Down mid-berlin,
/// logged in fine. copy: mid-copy is logged in as paris, configured with copy. oslo: mid-oslo is configured
/// with OSLO.
fn scenario() -> Dataset {
    dataset(
        &[
            Account("paris", true, false, "2"),
            Account("london", true, false, "1"),
            Account("locked", true, true, "5"),
            Account("berlin", true, false, "0"),
            Account("copy", true, false, "0"),
            Account("gone", false, false, ""),
            Account("oslo", true, false, "0"),
        ],
        &[
            Mid("mid-paris", "Up", "10.0.0.1", "paris", "paris"),
            Mid("mid-london", "Down", "10.0.0.2", "london", "london"),
            Mid("mid-locked", "Up", "10.0.0.3", "locked", "locked"),
            Mid("mid-berlin", "Down", "10.0.0.4", "berlin", "berlin"),
            Mid("mid-copy", "Up", "10.0.0.5", "paris", "copy"),
            Mid("mid-gone", "Up", "10.0.0.6", "gone", "gone"),
            Mid("mid-oslo", "Up", "10.0.0.7", "oslo", "OSLO"),
        ],
        &[
            ("paris", "login", "10.0.0.1", "2026-11-22 10:00:00"),
            ("paris", "login.failed", "10.0.0.2", "2026-11-22 11:00:00"),
            ("paris", "login.failed", "10.0.0.2", "2026-11-22 11:30:00"),
            ("london", "login.failed", "10.0.0.2", "2026-11-22 11:40:00"),
            ("berlin", "login", "10.0.0.4", "2026-11-22 11:50:00"),
            ("copy", "login", "10.0.0.5", "2026-11-22 11:55:00"),
            ("locked", "login", "10.0.0.3", "2026-11-22 09:00:00"),
            ("OSLO", "login", "10.0.0.7", "2026-11-22 11:58:00"),
        ],
    )
}

#[tokio::test]
async fn warnings_and_observations_come_beside_the_documented_finding_which_alone_is_written() {
    for support in [AggregateSupport::Full, AggregateSupport::NoDateMax, AggregateSupport::Unavailable] {
        let instance = FakeInstance::start(scenario(), USER, PASSWORD).await.expect("start");
        instance.set_aggregate(support);
        let outcome = check_with(&instance, true).await;
        let r = &outcome.report;
        // The documented finding, exactly as without early warnings, with the MID Server its refusal came from.
        assert_eq!(r.findings.len(), 1, "{support:?}: {:#?}", r.findings);
        let london = &r.findings[0];
        assert_eq!(
            london.message,
            "Login authentication failure for User london associated with 1 down MID Server. Check password on MID server."
        );
        assert_eq!(london.evidence.event.as_ref().and_then(|e| e.source_mid.as_deref()), Some("mid-london"));
        assert_eq!(r.status, Status::Critical, "{support:?}");
        if support == AggregateSupport::Unavailable {
            // Without the Aggregate API, whose logins were refused cannot be asked cheaply: not judged, and said.
            assert!(r.warnings.iter().all(|w| !matches!(w, Warning::FailingOnUpMid { .. })), "{:#?}", r.warnings);
            assert_eq!(r.warnings.len(), 2, "the locked-out and the inactive account still are: {:#?}", r.warnings);
            assert!(r.notes.iter().any(|n| n.contains("were not judged for refused logins")), "{:#?}", r.notes);
            continue;
        }

        let [
            Warning::FailingOnUpMid { user, mid_servers, failures, source_ip, source_mid, failed_attempts, .. },
            Warning::LockedOutOnUpMid { user: gone, locked_out: false, active: false, .. },
            Warning::LockedOutOnUpMid { user: locked, locked_out: true, active: true, .. },
        ] = r.warnings.as_slice()
        else {
            panic!("{support:?}: {:#?}", r.warnings)
        };
        assert_eq!((user.as_str(), mid_servers.as_slice()), ("paris", ["mid-paris".to_string()].as_slice()));
        assert_eq!((*failures, source_ip.as_deref(), source_mid.as_deref()), (2, Some("10.0.0.2"), Some("mid-london")));
        assert_eq!((*failed_attempts, gone.as_str(), locked.as_str()), (Some(2), "gone", "locked"));

        let kinds: Vec<&str> = r
            .observations
            .iter()
            .map(|o| match o {
                Observation::DownNotUser { mid_server, .. }
                | Observation::UserMismatch { mid_server, .. }
                | Observation::UserNameCase { mid_server, .. } => mid_server.as_str(),
            })
            .collect();
        assert_eq!(kinds, ["mid-berlin", "mid-copy", "mid-oslo"], "{support:?}: {:#?}", r.observations);
        assert!(
            matches!(&r.observations[2], Observation::UserNameCase { configured_user, user, .. }
                if configured_user == "OSLO" && user == "oslo"),
            "{:#?}",
            r.observations
        );

        // Written: the one finding's record, nothing of the warnings or observations.
        let written: Vec<String> = instance.rows("ecc_agent_issue").iter().map(|row| text(row, "message")).collect();
        assert_eq!(written, std::slice::from_ref(&london.message), "{support:?}");
    }
}

#[tokio::test]
async fn the_text_report_and_the_status_line_show_them_and_the_summary_counts_them() {
    let instance = FakeInstance::start(scenario(), USER, PASSWORD).await.expect("start");
    let outcome = check_with(&instance, true).await;
    let view = outcome.view(None);
    let detailed = view.render(Format::Text, Detail::Detailed);
    let first = detailed.lines().next().unwrap_or_default();
    assert!(first.starts_with("MIDWATCH CRITICAL - 1 finding (1 authentication), 3 warnings on acme | "), "{first}");
    assert!(first.contains(" configuration=0 warnings=3"), "{first}");
    assert!(detailed.contains("\nEarly warnings (3): users of Up MID Servers, before the outage\n"), "{detailed}");
    assert!(detailed.contains("from 10.0.0.2 (MID Server mid-london)"), "{detailed}");
    assert!(detailed.contains("\nObservations (3): no change of status\n"), "{detailed}");
    assert!(detailed.contains("from 10.0.0.2, MID Server mid-london (sysevent"), "{detailed}");
    let summary = view.render(Format::Text, Detail::Summary);
    let count = |label: &str| {
        summary.lines().find(|l| l.contains(label)).map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
    };
    assert_eq!(count("Early warnings").as_deref(), Some("3"), "{summary}");
    assert_eq!(count("Observations").as_deref(), Some("3"), "{summary}");
    assert!(!summary.contains("paris"), "the summary names no one:\n{summary}");
}

#[tokio::test]
async fn only_warnings_make_a_warning_exit_status_and_early_warnings_false_turns_them_off() {
    let data = || {
        dataset(
            &[Account("paris", true, false, "1")],
            &[Mid("mid-paris", "Up", "10.0.0.1", "paris", "paris")],
            &[("paris", "login.failed", "192.0.2.50", "2026-11-22 11:30:00")],
        )
    };
    let instance = FakeInstance::start(data(), USER, PASSWORD).await.expect("start");
    let on = check_with(&instance, true).await;
    assert_eq!((on.report.status, on.report.status.exit_code()), (Status::Warning, 1));
    assert!(on.report.findings.is_empty());
    let [Warning::FailingOnUpMid { source_mid: None, source_ip: Some(ip), .. }] = on.report.warnings.as_slice() else {
        panic!("{:#?}", on.report.warnings)
    };
    assert_eq!(ip, "192.0.2.50");
    let json: Value = serde_json::from_str(&on.view(None).render(Format::Json, Detail::Detailed)).expect("JSON");
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["warnings"][0]["kind"], "failing_on_up_mid");
    assert_eq!(json["warnings"][0]["source_mid"], Value::Null);
    assert!(instance.rows("ecc_agent_issue").is_empty(), "a warning is never written");

    let requests_on = instance.requests().len();
    let instance = FakeInstance::start(data(), USER, PASSWORD).await.expect("start");
    let off = check_with(&instance, false).await;
    assert_eq!(off.report.status, Status::Ok);
    assert!(off.report.warnings.is_empty() && off.report.observations.is_empty());
    // Off, the users of Up MID Servers are not read at all.
    let sysevent = instance.requests().iter().filter(|r| r.path.contains("sysevent")).count();
    assert_eq!(sysevent, 0, "{:#?}", instance.requests());
    assert!(instance.requests().len() < requests_on);
}
