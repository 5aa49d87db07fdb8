//! The documentation's example scenario, end to end over HTTP.

use midwatch::domain::{AccountState, Category, Condition, Status};
use wiremock::MockServer;

use crate::support::*;

#[tokio::test]
async fn documentation_example_scenario_end_to_end() {
    let server = MockServer::start().await;
    mount_demo_tables(&server, &[]).await;
    // The fixtures serve the reads only: with no write attempted, the status line is the findings' alone.
    let config = config_for(&server.uri());
    let opts = midwatch::cycle::CheckOptions { no_write: true, ..midwatch::cycle::CheckOptions::from_config(&config) };
    let outcome = midwatch::cycle::Cycle::new(&config, &client(&config), &opts)
        .check(reference_now())
        .await
        .expect("check completes");
    let r = &outcome.report;

    let got: Vec<(&str, Category, Condition)> =
        r.findings.iter().map(|f| (f.user.as_str(), f.category, f.condition)).collect();
    assert_eq!(
        got,
        [
            ("midserver2", Category::Authentication, Condition::LoginFailedOnDownMid),
            ("local-midserver", Category::Authorization, Condition::AuthorizationFailedOnDownMid),
            ("mid.paris", Category::Network, Condition::NoLoginOnDownMid),
            ("mid.tokyo", Category::Network, Condition::ConnectivityUndetectable),
            ("ardis.maison", Category::Configuration, Condition::LoginSucceededUnassociated),
        ]
    );
    let messages: Vec<&str> = r.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "Login authentication failure for User midserver2 associated with 1 down MID Server. Check password on MID server.",
            "Login authorization failure for User local-midserver associated with 2 down MID Servers. Re-assign mid_server role to grant all required roles.",
            "User mid.paris is associated with 1 down MID Server. No login attempts within reporting period.",
            "User mid.tokyo is associated with 1 down MID Server. No login attempts within reporting period.",
            "User ardis.maison with mid_server role successfully connected but not associated with a MID Server. The mid_server role should be reserved for MID Server use only.",
        ]
    );
    assert_eq!(r.status, Status::Critical);
    assert_eq!(
        r.status_line(),
        "MIDWATCH CRITICAL - 5 findings (1 authentication, 1 authorization, 2 network, 1 configuration) on acme | findings=5 down_mid_servers=6 authentication=1 authorization=1 network=2 configuration=1 warnings=0"
    );
    // These fixtures offer no Aggregate API: whose logins on Up MID Servers were refused is not asked, and said.
    assert!(r.notes.iter().any(|n| n.contains("were not judged for refused logins")), "{:#?}", r.notes);

    let midserver2 = &r.findings[0];
    assert_eq!(midserver2.account, AccountState::LockedOut);
    // What else the instance saw: the lockout counter, the last login, and the SSO attempt (evidence only).
    assert_eq!(midserver2.failed_attempts, Some(5));
    assert_eq!(
        midserver2.last_login_time.map(midwatch::domain::sn_time::format).as_deref(),
        Some("2026-11-22 08:05:00")
    );
    let sso: Vec<(&str, u64)> = midserver2
        .activity
        .iter()
        .filter(|a| a.name.starts_with("external."))
        .map(|a| (a.name.as_str(), a.count))
        .collect();
    assert_eq!(sso, [("external.authentication.failed", 1)]);
    let history = midserver2.evidence.login_history.as_ref().expect("Identity Center row");
    assert_eq!(history.failure_reason, "User locked out");
    assert_eq!(midserver2.evidence.event.as_ref().and_then(|e| e.ip.as_deref()), Some("10.20.30.41"));
    // That address is mid-london-01's: the MID Server that holds the stale password is named.
    assert_eq!(midserver2.evidence.event.as_ref().and_then(|e| e.source_mid.as_deref()), Some("mid-london-01"));

    let local = &r.findings[1];
    assert_eq!(local.missing_roles.from_event, ["soap_ecc", "soap_query"]);
    assert_eq!(local.missing_roles.from_role_containment, ["soap_ecc", "soap_query"]);
    assert_eq!(local.down_mid_servers.len(), 2);

    let map = r.id_map.as_ref().expect("MID Servers are down");
    assert_eq!(map.unassociated_users, ["ardis.maison"]);
    assert_eq!(map.down_mid_servers.len(), 6, "mid-frankfurt-01 too: down_for is 0s here, as the built-in job");
    assert!(!map.down_mid_servers.values().any(|n| n == "mid-healthy-01"));

    assert!(outcome.requests >= 10, "every table was read: {}", outcome.requests);
}

#[tokio::test]
async fn instance_message_style_reproduces_the_builtin_strings() {
    let server = MockServer::start().await;
    mount_demo_tables(&server, &[]).await;
    let mut config = config_for(&server.uri());
    config.check.messages = midwatch::domain::MessageStyle::Instance;
    let client = client(&config);
    let opts = midwatch::cycle::CheckOptions::from_config(&config);
    let outcome = midwatch::cycle::Cycle::new(&config, &client, &opts).check(reference_now()).await.expect("check");
    assert_eq!(
        outcome.report.findings[0].message,
        "Login authentication failure for User midserver2 associated with 1 down MID Server.  Check password on MID server."
    );
}

#[tokio::test]
async fn json_report_is_a_stable_document() {
    let server = MockServer::start().await;
    mount_demo_tables(&server, &[]).await;
    let outcome = check(&server.uri()).await.expect("check");
    let doc: serde_json::Value =
        serde_json::from_str(&midwatch::present::json::render(&outcome.report, &serde_json::Map::new())).expect("JSON");
    assert_eq!(doc["status"], "CRITICAL");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["window"]["end"], "2026-11-22 12:00:00");
    assert_eq!(doc["window"]["start"], "2026-11-22 07:59:00");
    assert_eq!(doc["summary"]["findings_by_category"]["network"], 2);
    let f = &doc["findings"][1];
    for key in ["category", "condition", "user", "message", "down_mid_servers", "missing_roles", "evidence", "account"]
    {
        assert!(f.get(key).is_some(), "finding lacks {key}: {f}");
    }
    assert_eq!(f["category"], "authorization");
    assert_eq!(f["down_mid_servers"][0]["name"], "mid-sydney-01");
    assert_eq!(f["missing_roles"]["from_event"][1], "soap_query");
    assert_eq!(f["evidence"]["event"]["name"], "login.authorization.failed");
    assert_eq!(doc["id_map"]["unassociated_users"][0], "ardis.maison");
}

#[tokio::test]
async fn summary_text_has_counts_and_no_names() {
    let server = MockServer::start().await;
    mount_demo_tables(&server, &[]).await;
    let outcome = check(&server.uri()).await.expect("check");
    let text = midwatch::present::text::render(&outcome.report, midwatch::present::Detail::Summary, None);
    for name in ["midserver2", "local-midserver", "ardis.maison", "mid-london-01"] {
        assert!(!text.contains(name), "summary names {name}:\n{text}");
    }
    assert!(text.contains("Users with the mid_server role"));
    let detailed = midwatch::present::text::render(&outcome.report, midwatch::present::Detail::Detailed, None);
    assert!(detailed.contains("MID Server ID map"));
    assert!(detailed.contains("What to do: Re-assign the mid_server role"));
}

#[tokio::test]
async fn absent_login_history_table_is_noted_and_the_check_succeeds() {
    let server = MockServer::start().await;
    mount_demo_tables(&server, &["sys_user_login_history"]).await;
    wiremock::Mock::given(wiremock::matchers::path("/api/now/table/sys_user_login_history"))
        .respond_with(json_response(
            400,
            r#"{"error":{"message":"Invalid table sys_user_login_history","detail":"Table sys_user_login_history does not exist"},"status":"failure"}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = check(&server.uri()).await.expect("check completes without Identity Center");
    let notes = &outcome.report.notes;
    assert_eq!(notes.iter().filter(|n| n.contains("sys_user_login_history")).count(), 1, "{notes:?}");
    assert!(outcome.report.findings.iter().all(|f| f.evidence.login_history.is_none()));
    assert_eq!(outcome.report.findings.len(), 5);
}
