//! User names compare as the instance compares them: without regard to case. A MID Server configured with
//! `MidServer.Case` for the user record `midserver.case`, whose events carry either spelling, is one user with
//! one finding, decided by its latest event whatever its spelling; `--user` selects it in any case, and its
//! record is reconciled as the instance's own `message=` query would find it. Checked against the simulated
//! instance, whose encoded queries ignore case as a GlideRecord query does.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::domain::{Category, Condition, Finding, Scope, Selection};
use midwatch::writeback::WriteBack;
use midwatch_sim::query::field_string as text;
use midwatch_sim::{AggregateSupport, Dataset, FakeInstance};
use serde_json::{Value, json};

use crate::support::*;

const ROLE: &str = "a0000000000000000000000000000001";

/// One user: its record's name, the name its down MID Server is configured with, and its events
/// (parm1, event name, time).
struct User<'a> {
    record: &'a str,
    configured: &'a str,
    events: &'a [(&'a str, &'a str, &'a str)],
}

/// `midserver.case`, configured as `MidServer.Case`: a login under the record's spelling, then a failure under
/// the configured one, the latest.
const CASE: User<'static> = User {
    record: "midserver.case",
    configured: "MidServer.Case",
    events: &[
        ("midserver.case", "login", "2026-11-22 10:00:00"),
        ("MidServer.Case", "login.failed", "2026-11-22 11:00:00"),
    ],
};

/// `mid.tokyo`, configured as such, whose events are spelled otherwise: the latest refused its roles.
const TOKYO: User<'static> = User {
    record: "mid.tokyo",
    configured: "mid.tokyo",
    events: &[
        ("mid.tokyo", "login.failed", "2026-11-22 11:10:00"),
        ("MID.Tokyo", "login.authorization.failed", "2026-11-22 11:30:00"),
    ],
};

/// Each user holds `mid_server` and is configured on its own down MID Server (`mid-<i>`).
fn dataset(users: &[&User<'_>]) -> Dataset {
    let mut d = Dataset::default();
    let mut ins =
        |t: &str, rows: Vec<Value>| d.insert_fixture(t, &json!({ "result": rows }).to_string()).expect("fixture");
    ins("sys_user_role", vec![json!({"sys_id": ROLE, "name": "mid_server"})]);
    ins("sys_user_role_contains", vec![]);
    let (mut sys_user, mut has_role, mut agents, mut configs, mut events) = (vec![], vec![], vec![], vec![], vec![]);
    for (i, u) in users.iter().enumerate() {
        let (uid, mid) = (format!("b{i:031}"), format!("c{i:031}"));
        sys_user.push(json!({"sys_id": uid, "user_name": u.record, "active": "true", "locked_out": "false",
            "sys_domain": reference("sys_user_group", "global")}));
        has_role.push(json!({"sys_id": format!("d{i:031}"), "user": reference("sys_user", &uid),
            "role": reference("sys_user_role", ROLE), "inherited": "false"}));
        agents.push(json!({"sys_id": mid, "name": format!("mid-{i}"), "status": "Down"}));
        configs.push(json!({"sys_id": format!("e{i:031}"), "ecc_agent": reference("ecc_agent", &mid),
            "param_name": "mid.instance.username", "value": u.configured,
            "sys_domain": reference("sys_user_group", "global")}));
        for (j, (parm1, name, at)) in u.events.iter().enumerate() {
            let parm2 = if *name == "login.authorization.failed" { "soap_script" } else { "10.0.0.1" };
            events.push(json!({"sys_id": format!("f{i:015}{j:016}"), "name": name, "parm1": parm1,
                "parm2": parm2, "sys_created_on": at}));
        }
    }
    ins("sys_user", sys_user);
    ins("sys_user_has_role", has_role);
    ins("ecc_agent", agents);
    ins("ecc_agent_config", configs);
    ins("sysevent", events);
    d.ensure_table("sys_user_login_history");
    d.ensure_table("ecc_agent_issue");
    d
}

/// The findings of `user` (its record's name), whatever their spelling.
fn of<'r>(findings: &'r [Finding], user: &str) -> Vec<&'r Finding> {
    findings.iter().filter(|f| f.user.to_lowercase() == user).collect()
}

fn assert_one_finding_each(findings: &[Finding], context: &str) {
    assert_eq!(findings.len(), 2, "{context}: {findings:#?}");
    assert!(findings.iter().all(|f| !f.message.contains("not associated")), "{context}: {findings:#?}");

    let case = of(findings, "midserver.case");
    assert_eq!(case.len(), 1, "{context}: one user, one finding: {findings:#?}");
    assert_eq!((case[0].category, case[0].condition), (Category::Authentication, Condition::LoginFailedOnDownMid));
    let user = case[0].user.as_str();
    assert_eq!(
        case[0].message,
        format!(
            "Login authentication failure for User {user} associated with 1 down MID Server. Check password on MID server."
        )
    );
    assert_eq!(case[0].down_mid_servers.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["mid-0"]);

    let tokyo = of(findings, "mid.tokyo");
    assert_eq!(tokyo.len(), 1, "{context}: {findings:#?}");
    assert_eq!(
        (tokyo[0].category, tokyo[0].condition),
        (Category::Authorization, Condition::AuthorizationFailedOnDownMid),
        "{context}: the latest event decides, whatever its spelling"
    );
    assert_eq!(tokyo[0].missing_roles.from_event, ["soap_script"], "{context}");
}

#[tokio::test]
async fn a_user_spelled_differently_in_its_record_configuration_and_events_is_one_user_with_one_finding() {
    for support in [AggregateSupport::Full, AggregateSupport::NoDateMax, AggregateSupport::Unavailable] {
        let instance = FakeInstance::start(dataset(&[&CASE, &TOKYO]), USER, PASSWORD).await.expect("start");
        instance.set_clock(reference_now());
        instance.set_aggregate(support);
        let outcome = check(&instance.url()).await.expect("check completes");
        let r = &outcome.report;
        assert_one_finding_each(&r.findings, &format!("{support:?}"));
        assert_eq!(r.summary.unassociated_role_users, 0, "{support:?}: {:?}", r.summary);
        assert_eq!(r.summary.users_on_down_mid_servers, 2, "{support:?}");
        // What was written to the instance: the two findings, and no "not associated" record.
        let written: Vec<String> = instance.rows("ecc_agent_issue").iter().map(|row| text(row, "message")).collect();
        assert_eq!(written.len(), 2, "{support:?}: {written:#?}");
        assert!(written.iter().all(|m| !m.contains("not associated")), "{support:?}: {written:#?}");
    }
}

fn selection(users: &[&str]) -> Scope {
    Scope::of(Selection { users: users.iter().map(|u| u.to_string()).collect(), mid_servers: BTreeSet::new() })
}

async fn check_at(instance: &FakeInstance, scope: Scope, now: DateTime<Utc>) -> Outcome {
    let config = config_for(&instance.url());
    let client = client(&config);
    let mut opts = CheckOptions::from_config(&config);
    opts.scope = scope;
    instance.set_clock(now);
    Cycle::new(&config, &client, &opts).check(now).await.expect("check completes")
}

#[tokio::test]
async fn a_user_selected_in_another_case_is_checked_and_its_record_counted() {
    let instance = FakeInstance::start(dataset(&[&CASE, &TOKYO]), USER, PASSWORD).await.expect("start");
    let all = check_at(&instance, Scope::All, reference_now()).await;
    assert_eq!(all.report.findings.len(), 2, "{:#?}", all.report.findings);

    let later = reference_now() + chrono::Duration::minutes(5);
    let one = check_at(&instance, selection(&["MIDSERVER.CASE"]), later).await;
    assert_eq!(one.report.findings.len(), 1, "{:#?}", one.report.findings);
    let f = &one.report.findings[0];
    assert_eq!((f.user.to_lowercase().as_str(), f.category), ("midserver.case", Category::Authentication));
    assert_eq!(f.message, all.report.findings.iter().find(|a| a.user == f.user).expect("the same finding").message);
    // Its record (and no other) is counted: the selected check found it its user's.
    let WriteBack::Applied { applied, .. } = &one.write_back else { panic!("{:?}", one.write_back) };
    assert_eq!((applied.created.len(), applied.counted.len(), applied.resolved.len()), (0, 1, 0));
    let counts: Vec<(String, String)> = instance
        .rows("ecc_agent_issue")
        .iter()
        .map(|r| (text(r, "message").to_lowercase(), text(r, "count")))
        .collect();
    assert!(counts.iter().all(|(m, c)| c == if m.contains("midserver.case") { "2" } else { "1" }), "{counts:?}");
}

#[tokio::test]
async fn a_record_whose_message_spells_the_user_otherwise_is_counted_not_recreated() {
    // A record written when the MID Server's configuration spelled the user in capitals: the instance's own
    // `message=` query finds it for this finding, so it is counted and stays the one open record.
    let mut d = dataset(&[&CASE]);
    let old = "Login authentication failure for User MIDSERVER.CASE associated with 1 down MID Server. Check password on \
               MID server.";
    let record = json!({"sys_id": "90000000000000000000000000000001", "message": old, "source": "midwatch",
        "state": "new", "count": "3", "mid_server": "", "last_detected": "2026-11-22 08:00:00",
        "sys_created_on": "2026-11-22 08:00:00", "sys_domain": reference("sys_user_group", "global")});
    d.insert_fixture("ecc_agent_issue", &json!({ "result": [record] }).to_string()).expect("fixture");
    let instance = FakeInstance::start(d, USER, PASSWORD).await.expect("start");
    let outcome = check_at(&instance, Scope::All, reference_now()).await;
    assert_eq!(outcome.report.findings.len(), 1, "{:#?}", outcome.report.findings);
    let WriteBack::Applied { applied, .. } = &outcome.write_back else { panic!("{:?}", outcome.write_back) };
    assert_eq!((applied.created.len(), applied.counted.len(), applied.resolved.len()), (0, 1, 0));
    let rows: Vec<(String, String, String)> = instance
        .rows("ecc_agent_issue")
        .iter()
        .map(|r| (text(r, "message"), text(r, "state"), text(r, "count")))
        .collect();
    assert_eq!(rows, [(old.to_string(), "new".to_string(), "4".to_string())]);
}
