//! User names are untrusted text: a name with `^`, `,`, `@`, `=`, a space, or a `javascript:`
//! prefix must never change what a query selects. Checked against the simulated instance, which
//! really evaluates the encoded queries and refuses script values.

use midwatch::domain::{Category, Condition};
use midwatch_sim::{AggregateSupport, Dataset, FakeInstance};
use serde_json::{Value, json};

use crate::support::*;

fn fixture(rows: Vec<Value>) -> String {
    json!({ "result": rows }).to_string()
}

/// Users on their own down MID Server each; `events` lists (user, event name, time).
fn dataset(users: &[&str], events: &[(&str, &str, &str)]) -> Dataset {
    let mut d = Dataset::default();
    let role = "a0000000000000000000000000000001";
    let ins = |d: &mut Dataset, t: &str, rows: Vec<Value>| d.insert_fixture(t, &fixture(rows)).expect("fixture");
    ins(&mut d, "sys_user_role", vec![json!({"sys_id": role, "name": "mid_server"})]);
    ins(&mut d, "sys_user_role_contains", vec![]);
    let mut sys_user = Vec::new();
    let mut has_role = Vec::new();
    let mut agents = Vec::new();
    let mut configs = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let uid = format!("b{i:031}");
        let mid = format!("c{i:031}");
        sys_user.push(json!({"sys_id": uid, "user_name": u, "active": "true", "locked_out": "false", "sys_domain": reference("sys_user_group", "global")}));
        has_role.push(json!({"sys_id": format!("d{i:031}"), "user": reference("sys_user", &uid), "role": reference("sys_user_role", role), "inherited": "false"}));
        agents.push(json!({"sys_id": mid, "name": format!("mid-{i}"), "status": "Down"}));
        configs.push(json!({"sys_id": format!("e{i:031}"), "ecc_agent": reference("ecc_agent", &mid), "param_name": "mid.instance.username", "value": u, "sys_domain": reference("sys_user_group", "global")}));
    }
    ins(&mut d, "sys_user", sys_user);
    ins(&mut d, "sys_user_has_role", has_role);
    ins(&mut d, "ecc_agent", agents);
    ins(&mut d, "ecc_agent_config", configs);
    let rows = events
        .iter()
        .enumerate()
        .map(|(i, (user, name, at))| {
            json!({"sys_id": format!("f{i:031}"), "name": name, "parm1": user, "parm2": "10.0.0.1", "sys_created_on": at})
        })
        .collect();
    ins(&mut d, "sysevent", rows);
    d.ensure_table("sys_user_login_history");
    d.ensure_table("ecc_agent_issue");
    d
}

#[tokio::test]
async fn hostile_user_names_get_their_own_finding_or_a_clear_refusal() {
    for support in [AggregateSupport::NoDateMax, AggregateSupport::Full, AggregateSupport::Unavailable] {
        hostile_user_names_in_one_plan(support).await;
    }
}

async fn hostile_user_names_in_one_plan(support: AggregateSupport) {
    let caret = "a^ORparm1ISNOTEMPTY";
    let comma = "victim,b";
    let script = "javascript:gs.sleep(10000)";
    let users = [caret, comma, script, "o'brien", "jürgen.müller", "with space", "x@y=z", "victim", "^leading"];
    let events = [
        // The victim's failure must never be attributed to anyone else.
        ("victim", "login.failed", "2026-11-22 11:00:00"),
        (caret, "login.authorization.failed", "2026-11-22 11:01:00"),
        ("o'brien", "login.failed", "2026-11-22 11:02:00"),
        ("jürgen.müller", "login.failed", "2026-11-22 11:03:00"),
        ("with space", "login", "2026-11-22 11:04:00"),
        ("x@y=z", "login.failed", "2026-11-22 11:05:00"),
        (script, "login.failed", "2026-11-22 11:06:00"),
        ("^leading", "login.failed", "2026-11-22 11:07:00"),
    ];
    let instance = FakeInstance::start(dataset(&users, &events), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    instance.set_aggregate(support);
    let outcome = check(&instance.url()).await.expect("check completes");
    let r = &outcome.report;
    let by_user = |u: &str| r.findings.iter().find(|f| f.user == u);

    assert_eq!(by_user("victim").map(|f| f.category), Some(Category::Authentication));
    assert_eq!(by_user(caret).map(|f| f.category), Some(Category::Authorization));
    assert_eq!(by_user("o'brien").map(|f| f.category), Some(Category::Authentication));
    assert_eq!(by_user("jürgen.müller").map(|f| f.category), Some(Category::Authentication));
    assert!(by_user("with space").is_none(), "logged in successfully: no finding");
    assert_eq!(by_user("x@y=z").map(|f| f.category), Some(Category::Authentication));
    assert_eq!(by_user(script).map(|f| f.category), Some(Category::Authentication));
    // No event of its own: the victim's login.failed did not leak into the comma name.
    assert_eq!(by_user(comma).map(|f| f.condition), Some(Condition::NoLoginOnDownMid));
    assert!(by_user(comma).is_some_and(|f| f.evidence.event.is_none()));

    // A name that starts with an unsafe character is refused by name, and nothing else.
    assert!(by_user("^leading").is_none());
    let skipped: Vec<&str> = r.skipped_users.iter().map(|s| s.user.as_str()).collect();
    assert_eq!(skipped, ["^leading"]);

    // Every finding is decided by the user's own event.
    for f in &r.findings {
        if let Some(e) = &f.evidence.event {
            let own = events.iter().any(|(u, _, at)| *u == f.user && *at == midwatch::domain::sn_time::format(e.at));
            assert!(own, "{} decided by someone else's event {e:?}", f.user);
        }
    }

    // Nothing hostile reached a query.
    for req in instance.requests() {
        // Without the Aggregate API, its probes answer 400; everything else must succeed.
        let probe = support == AggregateSupport::Unavailable && req.path.starts_with("/api/now/stats/");
        assert!(req.status == 200 || probe, "{} {} answered {}", req.method, req.path, req.status);
        for (k, v) in &req.query {
            if k == "sysparm_query" {
                assert!(!v.to_ascii_lowercase().contains("javascript:"), "{v}");
                for name in [caret, comma, script, "with space", "x@y=z", "^leading"] {
                    assert!(!v.contains(name), "{name:?} reached a query verbatim: {v}");
                }
            }
        }
    }
}

#[tokio::test]
async fn control_characters_in_instance_data_cannot_forge_a_line_of_the_terminal_report() {
    let forger = "mid\r\nMIDWATCH OK - no findings on acme | findings=0";
    let escape = "tty\u{1b}[2J\u{1b}[1;1Hclear";
    let leading = "\nMIDWATCH OK - refused by name";
    let users = [forger, escape, leading];
    let events = [(forger, "login.failed", "2026-11-22 11:00:00"), (escape, "login.failed", "2026-11-22 11:01:00")];
    let instance = FakeInstance::start(dataset(&users, &events), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    let outcome = check(&instance.url()).await.expect("check completes");
    assert_eq!(outcome.report.findings.len(), 2, "{:?}", outcome.report.findings);
    assert_eq!(outcome.report.skipped_users.len(), 1);

    use midwatch::present::{Detail, Format};
    for detail in [Detail::Detailed, Detail::Summary] {
        let text = outcome.view(None).render(Format::Text, detail);
        let lines: Vec<&str> = text.split('\n').collect();
        assert!(lines[0].starts_with("MIDWATCH CRITICAL - "), "{}", lines[0]);
        assert_eq!(lines.iter().filter(|l| l.starts_with("MIDWATCH ")).count(), 1, "one status line only:\n{text}");
        assert!(!text.contains('\r') && !text.contains('\u{1b}'), "raw control characters:\n{text:?}");
        if detail == Detail::Detailed {
            assert!(text.contains("mid\\r\\nMIDWATCH OK - no findings"), "shown escaped:\n{text}");
            assert!(text.contains("tty\\u{1b}[2J"), "shown escaped:\n{text}");
            assert!(text.contains("\"\\nMIDWATCH OK - refused by name\""), "the refused name, escaped:\n{text}");
        }
    }
    // JSON keeps the values exactly (serde escapes them as JSON strings).
    let json: serde_json::Value =
        serde_json::from_str(&outcome.view(None).render(Format::Json, Detail::Detailed)).expect("json");
    let users: Vec<&str> =
        json["findings"].as_array().into_iter().flatten().filter_map(|f| f["user"].as_str()).collect();
    assert!(users.contains(&forger) && users.contains(&escape), "{users:?}");
}
