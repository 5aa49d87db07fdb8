//! The alerts of a report and what a cycle posts, on findings the rules produce from a small snapshot.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::domain::{
    FindingHistory, LoginHistory, MessageStyle, MidServer, MidServerRole, MidServerStatus, MidUserConfig, Snapshot,
    UserAccount, Window, sn_time,
};

pub(crate) fn now() -> DateTime<Utc> {
    sn_time::parse("2026-11-22 12:00:00").expect("valid time")
}

pub(crate) fn instance_url() -> Url {
    "https://acme.service-now.com".parse().expect("url")
}

const U1: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const U2: &str = "1a1b2c3d4e5f60718293a4b5c6d7e8f9";
const MID: &str = "2a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// `ardis.maison` holds the role and no MID Server uses it (configuration); `midserver2` is configured on a
/// Down MID Server and never tried to log in (network).
pub(crate) fn report() -> Report {
    let role = MidServerRole { sys_id: "r_mid".into(), contains: BTreeMap::new() };
    let user = |id: &str, name: &str| UserAccount {
        sys_id: id.into(),
        user_name: name.into(),
        active: true,
        locked_out: false,
        sys_domain: None,
        last_login_time: None,
        failed_attempts: None,
        roles: Some(BTreeSet::from(["r_mid".into()])),
    };
    let snapshot = Snapshot {
        mid_server_role: Some(role),
        role_holders: BTreeSet::from([U1.into(), U2.into()]),
        users: BTreeMap::from([(U1.into(), user(U1, "ardis.maison")), (U2.into(), user(U2, "midserver2"))]),
        mid_servers: vec![MidServer {
            sys_id: MID.into(),
            name: "mid-london-01".into(),
            status: MidServerStatus::Down,
            last_refreshed: None,
            ip_address: String::new(),
            host_name: String::new(),
            logged_in_user: None,
        }],
        mid_user_configs: vec![MidUserConfig {
            mid_server: Some(MID.into()),
            user_name: "midserver2".into(),
            sys_domain: None,
        }],
        login_history: LoginHistory::Absent,
        ..Snapshot::default()
    };
    let ctx = crate::evaluate::Context {
        instance: "acme",
        window: Window::ending_at(now(), std::time::Duration::from_secs(4 * 3600)),
        messages: MessageStyle::Documented,
        down_for: std::time::Duration::ZERO,
    };
    crate::evaluate::evaluate(&snapshot, &ctx)
}

fn context<'a>(url: &'a Url, report: &'a Report, ends_at: DateTime<Utc>) -> Context<'a> {
    Context { instance_url: url, user_ids: &report.user_ids, ends_at }
}

fn labels(alert: &Alert) -> Vec<(&str, &str)> {
    alert.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn one_alert_per_finding_with_the_documented_labels_annotations_and_link() {
    let (url, report) = (instance_url(), report());
    let ends = now() + Duration::hours(12);
    let alerts = firing(&report, &context(&url, &report, ends));
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let by_user = |u: &str| alerts.iter().find(|a| a.labels["user"] == u).expect(u);
    let network = by_user("midserver2");
    assert_eq!(
        labels(network),
        [
            ("alertname", "MidServerUserNetwork"),
            ("category", "network"),
            ("servicenow_instance", "acme.service-now.com"),
            ("severity", "critical"),
            ("user", "midserver2"),
        ]
    );
    assert_eq!(
        network.annotations["summary"],
        "User midserver2 is associated with 1 down MID Server. No login attempts within reporting period."
    );
    assert_eq!(network.annotations["description"], Category::Network.remediation());
    assert_eq!(network.annotations.len(), 2);
    assert_eq!(network.ends_at, ends);
    assert_eq!(network.starts_at, None, "no history: the peer's time of arrival");
    assert_eq!(
        network.generator_url.as_deref(),
        Some(format!("https://acme.service-now.com/sys_user.do?sys_id={U2}").as_str())
    );
    let configuration = by_user("ardis.maison");
    assert_eq!(configuration.labels["alertname"], "MidServerUserConfiguration");
    assert_eq!(configuration.labels["severity"], "warning");
    assert_eq!(configuration.annotations["description"], Category::Configuration.remediation());
}

#[test]
fn every_category_has_its_alert_name_and_severity() {
    let (url, mut report) = (instance_url(), report());
    let template = report.findings[0].clone();
    report.findings = Category::ALL.iter().map(|c| Finding { category: *c, ..template.clone() }).collect();
    let alerts = firing(&report, &context(&url, &report, now()));
    let named: Vec<(&str, &str, &str)> = alerts
        .iter()
        .map(|a| (a.labels["alertname"].as_str(), a.labels["category"].as_str(), a.labels["severity"].as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("MidServerUserAuthentication", "authentication", "critical"),
            ("MidServerUserAuthorization", "authorization", "critical"),
            ("MidServerUserNetwork", "network", "critical"),
            ("MidServerUserConfiguration", "configuration", "warning"),
        ]
    );
}

#[test]
fn an_early_warning_is_a_midserveruserwarning_alert_whose_labels_do_not_hold_its_counts() {
    let (url, mut report) = (instance_url(), report());
    let warning = |failures: u64| Warning::FailingOnUpMid {
        user: "mid.paris".into(),
        mid_servers: vec!["mid-paris-01".into()],
        failures,
        last_failure: now(),
        source_ip: Some("10.9.9.9".into()),
        source_mid: None,
        failed_attempts: Some(failures as u32),
        text: format!("User mid.paris of Up MID Server mid-paris-01 is being refused: {failures} login failures"),
    };
    report.warnings = vec![warning(2)];
    let alerts = firing(&report, &context(&url, &report, now()));
    assert_eq!(alerts.len(), 3, "two findings and the warning: {alerts:#?}");
    let alert = alerts.iter().find(|a| a.labels["user"] == "mid.paris").expect("the warning's alert");
    assert_eq!(
        labels(alert),
        [
            ("alertname", "MidServerUserWarning"),
            ("category", "failing_on_up_mid"),
            ("servicenow_instance", "acme.service-now.com"),
            ("severity", "warning"),
            ("user", "mid.paris"),
        ]
    );
    assert!(alert.annotations["summary"].contains("is being refused: 2 login failures"), "{alert:#?}");
    assert!(alert.annotations["description"].contains("old password"), "{alert:#?}");
    // Another host that counted three failures by then sends the same labels: one notification.
    report.warnings = vec![warning(3)];
    let later = firing(&report, &context(&url, &report, now()));
    let again = later.iter().find(|a| a.labels["user"] == "mid.paris").expect("the warning's alert");
    assert_eq!(again.labels, alert.labels);
}

#[test]
fn two_hosts_with_the_same_config_send_the_same_labels_whenever_they_run() {
    let (url, report) = (instance_url(), report());
    let mut later = report.clone();
    // Another host, a minute later, whose records say since when the finding is seen.
    for f in &mut later.findings {
        f.history = Some(FindingHistory {
            first_detected: now() - Duration::hours(3),
            times_detected: 4,
            resolved_before: None,
        });
    }
    let one = firing(&report, &context(&url, &report, now() + Duration::hours(12)));
    let other = firing(&later, &context(&url, &later, now() + Duration::hours(12) + Duration::minutes(1)));
    let label_sets = |alerts: &[Alert]| alerts.iter().map(|a| a.labels.clone()).collect::<Vec<_>>();
    assert_eq!(label_sets(&one), label_sets(&other));
    assert_eq!(other[0].starts_at, Some(now() - Duration::hours(3)), "startsAt is the first detection");
}

#[test]
fn a_link_carries_only_a_sys_id() {
    let url = instance_url();
    let ids = BTreeMap::from([("bob".to_string(), "not a sys_id&x=1".to_string())]);
    let ctx = Context { instance_url: &url, user_ids: &ids, ends_at: now() };
    let item = Item {
        alertname: "MidServerUserNetwork",
        user: "bob",
        category: "network",
        severity: Severity::Critical,
        summary: "s",
        description: "d",
        since: None,
    };
    assert_eq!(alert(&item, &ctx).generator_url, None);
}

fn alert_for(user: &str, ends_at: DateTime<Utc>) -> Alert {
    Alert {
        labels: BTreeMap::from([("alertname".into(), "MidServerUserNetwork".into()), ("user".into(), user.into())]),
        annotations: BTreeMap::from([("summary".into(), format!("{user} is gone"))]),
        starts_at: None,
        ends_at,
        generator_url: None,
    }
}

#[test]
fn a_gone_finding_is_resolved_once_then_forgotten() {
    let t0 = now();
    let lifetime = Duration::hours(12);
    // Cycle 1: a and b fire.
    let first = Batch::completed(&[], vec![alert_for("a", t0 + lifetime), alert_for("b", t0 + lifetime)], t0);
    assert_eq!(first.alerts().len(), 2);
    let alerted = first.remembered(true);
    // Cycle 2: b is gone: a fires again, b is posted once with endsAt = now.
    let t1 = t0 + Duration::hours(4);
    let second = Batch::completed(&alerted, vec![alert_for("a", t1 + lifetime)], t1);
    let posted = second.alerts();
    assert_eq!(posted.len(), 2);
    assert_eq!((posted[0].labels["user"].as_str(), posted[0].ends_at), ("a", t1 + lifetime));
    assert_eq!((posted[1].labels["user"].as_str(), posted[1].ends_at), ("b", t1));
    assert_eq!(posted[1].annotations["summary"], "b is gone", "the resolved alert says what it was");
    // Cycle 3: b is not posted again.
    let third = Batch::completed(&second.remembered(true), vec![alert_for("a", t1 + lifetime)], t1);
    assert_eq!(third.alerts().len(), 1);
    assert!(third.resolving.is_empty());
}

#[test]
fn a_resolution_no_peer_took_is_sent_again_until_the_alert_would_have_ended() {
    let t0 = now();
    let alerted = vec![alert_for("b", t0 + Duration::hours(12))];
    let missed = Batch::completed(&alerted, Vec::new(), t0 + Duration::hours(4));
    assert_eq!(missed.alerts().len(), 1);
    let kept = missed.remembered(false);
    let again = Batch::completed(&kept, Vec::new(), t0 + Duration::hours(8));
    assert_eq!(again.alerts().len(), 1, "sent again");
    let late = Batch::completed(&again.remembered(false), Vec::new(), t0 + Duration::hours(13));
    assert!(late.alerts().is_empty(), "the peers have ended it by themselves");
}

#[test]
fn a_failed_cycle_fires_check_failed_resolves_nothing_and_the_next_completed_cycle_clears_it() {
    let url = instance_url();
    let t0 = now();
    let alerted = vec![alert_for("a", t0 + Duration::hours(12))];
    let line = "MIDWATCH UNKNOWN - cannot connect to https://acme.service-now.com on acme";
    let failure = check_failed(line, &url, t0 + Duration::hours(13));
    let failed = Batch::failed(&alerted, failure, t0 + Duration::hours(1));
    let posted = failed.alerts();
    assert_eq!(posted.len(), 1);
    assert_eq!(labels(&posted[0]), [("alertname", CHECK_FAILED), ("servicenow_instance", "acme.service-now.com")]);
    assert_eq!(posted[0].annotations["summary"], line);
    let remembered = failed.remembered(true);
    assert_eq!(remembered.len(), 2, "the finding's alert is kept, not resolved");
    // A second failure replaces the first.
    let again = Batch::failed(&remembered, check_failed(line, &url, t0 + Duration::hours(14)), t0 + Duration::hours(2));
    assert_eq!(again.remembered(true).len(), 2);
    // The next completed cycle: the finding still fires, the failure is resolved now.
    let t3 = t0 + Duration::hours(3);
    let completed = Batch::completed(&again.remembered(true), vec![alert_for("a", t3 + Duration::hours(12))], t3);
    let posted = completed.alerts();
    assert_eq!(posted.len(), 2);
    assert_eq!((posted[1].labels["alertname"].as_str(), posted[1].ends_at), (CHECK_FAILED, t3));
}

#[test]
fn an_alert_is_serialized_as_alertmanagers_postable_alert() {
    let mut a = alert_for("a", now());
    a.generator_url = Some("https://acme.service-now.com/sys_user.do?sys_id=x".into());
    a.starts_at = Some(now() - Duration::hours(1));
    let json = serde_json::to_value(&a).expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "labels": {"alertname": "MidServerUserNetwork", "user": "a"},
            "annotations": {"summary": "a is gone"},
            "startsAt": "2026-11-22T11:00:00Z",
            "endsAt": "2026-11-22T12:00:00Z",
            "generatorURL": "https://acme.service-now.com/sys_user.do?sys_id=x",
        })
    );
    let without = serde_json::to_value(alert_for("a", now())).expect("json");
    assert!(without.get("startsAt").is_none() && without.get("generatorURL").is_none(), "{without}");
}
