//! The early warnings and observations on small snapshots: each kind, with and without what decides it.

use super::*;
use crate::domain::{EventActivity, Observation, Warning};

/// `name` counted `count` times in the window for `user` (what the read plan's counts give).
fn counted(mut inst: Instance, user: &str, name: &str, count: u64) -> Instance {
    let a = EventActivity { name: name.into(), count, last: None, last_detail: None };
    inst.s.event_activity.entry(UserKey::of(user)).or_default().push(a);
    inst
}

fn failing(r: &Report) -> Vec<(&str, u64, Option<&str>, Option<&str>)> {
    r.warnings
        .iter()
        .filter_map(|w| match w {
            Warning::FailingOnUpMid { user, failures, source_ip, source_mid, .. } => {
                Some((user.as_str(), *failures, source_ip.as_deref(), source_mid.as_deref()))
            }
            Warning::LockedOutOnUpMid { .. } => None,
        })
        .collect()
}

#[test]
fn a_user_of_an_up_mid_server_refused_from_another_mid_servers_address_is_warned_with_that_mid_server() {
    let inst = instance()
        .role_user("paris")
        .mid("mid-paris", "Up", "paris")
        .mid("mid-london", "Up", "london")
        .role_user("london")
        .address("mid-paris", "10.0.0.1", "parmid01.corp")
        .address("mid-london", "10.0.0.2", "lonmid01.corp")
        .event("paris", Succeeded, 60, "10.0.0.1")
        .event("paris", Failed, 20, "10.0.0.2")
        .event("paris", Failed, 10, "10.0.0.2")
        .early();
    let r = counted(counted(inst, "paris", "login.failed", 2), "paris", "login", 1).report();
    assert_eq!(failing(&r), [("paris", 2, Some("10.0.0.2"), Some("mid-london"))]);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!((r.status, r.status.exit_code()), (Status::Warning, 1));
    assert!(r.status_line().starts_with("MIDWATCH WARNING - no findings, 1 warning on acme | "), "{}", r.status_line());
    assert!(r.status_line().ends_with(" warnings=1"), "{}", r.status_line());
    let text = r.warnings[0].text();
    assert!(
        text.contains("from 10.0.0.2 (MID Server mid-london)") && text.contains("Up MID Server mid-paris"),
        "{text}"
    );
}

#[test]
fn a_refusal_from_no_mid_servers_address_says_so_and_a_host_name_is_an_address_too() {
    let base =
        instance().role_user("paris").mid("mid-paris", "Up", "paris").address("mid-paris", "10.0.0.1", "").early();
    let r = base.event("paris", AuthorizationFailed, 5, "soap_query").report();
    // An authorization failure's parm2 is roles, not an address.
    assert_eq!(failing(&r), [("paris", 1, None, None)]);

    let r = instance()
        .role_user("paris")
        .mid("mid-paris", "Up", "paris")
        .address("mid-paris", "10.0.0.1", "")
        .event("paris", Failed, 5, "192.0.2.9")
        .early()
        .report();
    assert_eq!(failing(&r), [("paris", 1, Some("192.0.2.9"), None)]);
    assert!(r.warnings[0].text().contains("no MID Server has this address"), "{}", r.warnings[0].text());

    // Two MID Servers on one host: the one configured with the user is the source.
    let r = instance()
        .role_user("paris")
        .mid("mid-a", "Up", "paris")
        .mid("mid-b", "Up", "other")
        .address("mid-a", "10.0.0.7", "")
        .address("mid-b", "10.0.0.7", "")
        .event("paris", Failed, 5, "10.0.0.7")
        .early()
        .report();
    assert_eq!(failing(&r), [("paris", 1, Some("10.0.0.7"), Some("mid-a"))]);
}

#[test]
fn a_successful_last_login_a_down_mid_server_or_early_warnings_off_give_no_warning() {
    let up = || instance().role_user("u").mid("m", "Up", "u");
    assert!(
        up().event("u", Failed, 20, "10.0.0.9")
            .event("u", Succeeded, 10, "10.0.0.1")
            .early()
            .report()
            .warnings
            .is_empty()
    );
    // Off: the same refusal is not judged.
    let off = up().event("u", Failed, 10, "10.0.0.9").report();
    assert!(off.warnings.is_empty() && off.status == Status::Ok, "{:?}", off.warnings);
    // On a Down MID Server too, the user is judged by the documented rules only: a finding, no warning.
    let both = up().mid("d", "Down", "u").event("u", Failed, 10, "10.0.0.9").early().report();
    assert!(both.warnings.is_empty(), "{:?}", both.warnings);
    assert_eq!(only(&both).category, Category::Authentication);
}

#[test]
fn locked_out_and_inactive_users_of_up_mid_servers_are_warned() {
    let r = instance()
        .account("locked", true, true, Some(all_roles()))
        .account("gone", false, false, Some(all_roles()))
        .account("fine", true, false, Some(all_roles()))
        .mid("m1", "Up", "locked")
        .mid("m2", "Up", "gone")
        .mid("m3", "Up", "gone")
        .mid("m4", "Up", "fine")
        .early()
        .report();
    let locked: Vec<(&str, &[String], bool, bool)> = r
        .warnings
        .iter()
        .filter_map(|w| match w {
            Warning::LockedOutOnUpMid { user, mid_servers, locked_out, active, .. } => {
                Some((user.as_str(), mid_servers.as_slice(), *locked_out, *active))
            }
            Warning::FailingOnUpMid { .. } => None,
        })
        .collect();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        locked,
        [("gone", names(&["m2", "m3"]).as_slice(), false, false), ("locked", names(&["m1"]).as_slice(), true, true)]
    );
    assert_eq!(r.status, Status::Warning);
    assert!(r.warnings[0].text().contains("is inactive") && r.warnings[0].text().contains("they go Down"));
    assert!(r.warnings[1].text().contains("is locked out") && r.warnings[1].text().contains("Unlock the account"));
}

#[test]
fn a_down_mid_server_whose_users_all_logged_in_is_observed_not_one_with_a_failing_user() {
    let r = instance()
        .role_user("a")
        .role_user("b")
        .role_user("c")
        .mid("fine", "Down", "a")
        .mid("fine", "Down", "b")
        .mid("half", "Down", "b")
        .mid("half", "Down", "c")
        .event("a", Succeeded, 30, "10.0.0.1")
        .event("b", Succeeded, 10, "10.0.0.2")
        .event("c", Failed, 5, "10.0.0.3")
        .early()
        .report();
    let observed: Vec<(&str, &[String])> = r
        .observations
        .iter()
        .filter_map(|o| match o {
            Observation::DownNotUser { mid_server, users, .. } => Some((mid_server.as_str(), users.as_slice())),
            _ => None,
        })
        .collect();
    assert_eq!(observed, [("fine", ["a".to_string(), "b".to_string()].as_slice())]);
    // An observation changes no status: c's finding alone decides it.
    assert_eq!(r.status, Status::Critical);
    assert_eq!(r.findings.len(), 1);
}

#[test]
fn a_mid_server_logged_in_as_another_user_and_a_name_differing_in_case_are_observed() {
    let r = instance()
        .role_user("midserver2")
        .role_user("other")
        .mid("m-case", "Up", "MidServer2")
        .logged_in("m-case", "MIDSERVER2")
        .mid("m-copy", "Up", "other")
        .logged_in("m-copy", "midserver2")
        .event("midserver2", Succeeded, 5, "")
        .event("other", Succeeded, 5, "")
        .early()
        .report();
    let kinds: Vec<(String, &str)> = r
        .observations
        .iter()
        .map(|o| {
            (
                serde_json::to_value(o).ok().and_then(|v| v["kind"].as_str().map(String::from)).unwrap_or_default(),
                o.text(),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:#?}");
    assert!(
        matches!(
            &r.observations[0],
            Observation::UserMismatch { mid_server, logged_in_user, configured_user, .. }
                if mid_server == "m-copy" && logged_in_user == "midserver2" && configured_user == "other"
        ),
        "{:#?}",
        r.observations
    );
    assert!(
        matches!(
            &r.observations[1],
            Observation::UserNameCase { mid_server, configured_user, user, .. }
                if mid_server == "m-case" && configured_user == "MidServer2" && user == "midserver2"
        ),
        "{:#?}",
        r.observations
    );
    // Logged in as MIDSERVER2 and configured with MidServer2: the same user, no mismatch.
    assert!(r.findings.is_empty() && r.warnings.is_empty() && r.status == Status::Ok, "{:#?}", r);
}

#[test]
fn the_json_fields_are_those_of_the_contract() {
    let r = instance()
        .account("locked", true, true, Some(all_roles()))
        .role_user("paris")
        .mid("mid-paris", "Up", "paris")
        .mid("m1", "Up", "locked")
        .event("paris", Failed, 5, "192.0.2.9")
        .early()
        .report();
    let fields = |v: &serde_json::Value| -> Vec<String> {
        v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
    };
    let json = serde_json::to_value(&r).expect("serializes");
    let warnings = json["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(warnings.len(), 2, "{json:#}");
    assert_eq!(
        fields(&warnings[0]),
        [
            "failed_attempts",
            "failures",
            "kind",
            "last_failure",
            "mid_servers",
            "source_ip",
            "source_mid",
            "text",
            "user"
        ]
    );
    assert_eq!(warnings[0]["kind"], "failing_on_up_mid");
    assert_eq!(fields(&warnings[1]), ["active", "kind", "locked_out", "mid_servers", "text", "user"]);
    assert_eq!(warnings[1]["kind"], "locked_out_on_up_mid");
    assert_eq!(json["summary"]["warnings"], 2);
}
