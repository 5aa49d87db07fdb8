//! Rule tests on small snapshots: one per finding condition and per rule of the built-in job (docs/servicenow.md §1).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::domain::{LoginHistoryEntry, MidServerRole, MidUserConfig, SkippedUser, SysId, UserAccount, sn_time};
use LoginEventKind::*;

const MID_ROLE: &str = "r_mid_server";
const CONTAINED: [(&str, &str); 3] =
    [("r_soap", "soap"), ("r_soap_script", "soap_script"), ("r_soap_query", "soap_query")];

fn end() -> DateTime<Utc> {
    sn_time::parse("2026-11-22 12:00:00").expect("valid time")
}

fn window() -> Window {
    Window::ending_at(end(), std::time::Duration::from_secs(4 * 3600))
}

/// A snapshot builder: an instance with the mid_server role (containing soap, soap_script, soap_query).
struct Instance {
    s: Snapshot,
    next_event: u32,
    down_for: std::time::Duration,
}

fn instance() -> Instance {
    let contains = CONTAINED.iter().map(|(id, n)| (SysId::from(*id), n.to_string())).collect();
    let s = Snapshot {
        mid_server_role: Some(MidServerRole { sys_id: MID_ROLE.into(), contains }),
        login_history: LoginHistory::Rows(Vec::new()),
        ..Snapshot::default()
    };
    Instance { s, next_event: 0, down_for: std::time::Duration::ZERO }
}

fn all_roles() -> BTreeSet<SysId> {
    std::iter::once(MID_ROLE).chain(CONTAINED.iter().map(|(id, _)| *id)).map(SysId::from).collect()
}

impl Instance {
    /// An active user holding mid_server and everything it contains.
    fn role_user(mut self, name: &str) -> Self {
        self = self.account(name, true, false, Some(all_roles()));
        self.s.role_holders.insert(SysId::from(format!("u_{name}").as_str()));
        self
    }

    /// A sys_user row without the mid_server role.
    fn account(mut self, name: &str, active: bool, locked_out: bool, roles: Option<BTreeSet<SysId>>) -> Self {
        let id = SysId::from(format!("u_{name}").as_str());
        let user = UserAccount {
            sys_id: id.clone(),
            user_name: name.into(),
            active,
            locked_out,
            sys_domain: Some("d_acme".into()),
            last_login_time: None,
            failed_attempts: None,
            roles,
        };
        self.s.users.insert(id, user);
        self
    }

    fn holder(mut self, name: &str) -> Self {
        self.s.role_holders.insert(SysId::from(format!("u_{name}").as_str()));
        self
    }

    fn mid(mut self, name: &str, status: &str, user: &str) -> Self {
        let id = SysId::from(format!("m_{name}").as_str());
        if !self.s.mid_servers.iter().any(|m| m.sys_id == id) {
            self.s.mid_servers.push(MidServer {
                sys_id: id.clone(),
                name: name.into(),
                status: status.into(),
                last_refreshed: None,
                ip_address: String::new(),
                host_name: String::new(),
                logged_in_user: None,
            });
        }
        self.s.mid_user_configs.push(MidUserConfig { mid_server: Some(id), user_name: user.into(), sys_domain: None });
        self
    }

    /// The MID Server `name` answered its last heartbeat `minutes` before the end of the window.
    fn silent_since(mut self, name: &str, minutes: i64) -> Self {
        let id = SysId::from(format!("m_{name}").as_str());
        for m in self.s.mid_servers.iter_mut().filter(|m| m.sys_id == id) {
            m.last_refreshed = Some(end() - Duration::minutes(minutes));
        }
        self
    }

    /// `[check] early_warnings` on: the users of Up MID Servers were read and are judged.
    fn early(mut self) -> Self {
        self.s.early_warnings = true;
        self
    }

    /// The MID Server `name`'s `ip_address` and `host_name`.
    fn address(mut self, name: &str, ip: &str, host: &str) -> Self {
        for m in self.s.mid_servers.iter_mut().filter(|m| m.name == name) {
            m.ip_address = ip.into();
            m.host_name = host.into();
        }
        self
    }

    /// The user the MID Server `name` logged in as (`ecc_agent.user_name`).
    fn logged_in(mut self, name: &str, user: &str) -> Self {
        for m in self.s.mid_servers.iter_mut().filter(|m| m.name == name) {
            m.logged_in_user = Some(user.into());
        }
        self
    }

    fn down_for(mut self, minutes: u64) -> Self {
        self.down_for = std::time::Duration::from_secs(minutes * 60);
        self
    }

    /// A login event `minutes` before the end of the window.
    fn event(mut self, user: &str, kind: LoginEventKind, minutes: i64, parm2: &str) -> Self {
        self.next_event += 1;
        self.s.login_events.push(LoginEvent {
            sys_id: SysId::from(format!("e{:04}", self.next_event).as_str()),
            kind,
            user_name: user.into(),
            parm2: parm2.into(),
            created_on: end() - Duration::minutes(minutes),
        });
        self
    }

    fn eval(&self, style: MessageStyle) -> Report {
        evaluate(&self.s, &Context { instance: "acme", window: window(), messages: style, down_for: self.down_for })
    }

    fn report(&self) -> Report {
        self.eval(MessageStyle::Documented)
    }
}

fn only(report: &Report) -> &Finding {
    assert_eq!(report.findings.len(), 1, "findings: {:#?}", report.findings);
    &report.findings[0]
}

/// Every condition of the findings (last event × down MID Servers), for n = 0, 1 and 2, in both message styles.
#[test]
fn every_row_of_the_rules_table_in_both_styles() {
    type Row = (Option<LoginEventKind>, usize, Option<(Category, Condition)>, &'static str, &'static str);
    let rows: [Row; 12] = [
        (
            Some(Failed),
            1,
            Some((Category::Authentication, Condition::LoginFailedOnDownMid)),
            "Login authentication failure for User u associated with 1 down MID Server. Check password on MID server.",
            "Login authentication failure for User u associated with 1 down MID Server.  Check password on MID server.",
        ),
        (
            Some(Failed),
            2,
            Some((Category::Authentication, Condition::LoginFailedOnDownMid)),
            "Login authentication failure for User u associated with 2 down MID Servers. Check password on MID servers.",
            "Login authentication failure for User u associated with 2 down MID Servers.  Check password on MID servers.",
        ),
        (
            Some(Failed),
            0,
            Some((Category::Configuration, Condition::LoginFailedUnassociated)),
            "Login authentication failure for User u with mid_server role not associated with a MID Server.",
            "Login authentication failure for User u with mid_server role not associated with a MID Server.",
        ),
        (
            Some(AuthorizationFailed),
            1,
            Some((Category::Authorization, Condition::AuthorizationFailedOnDownMid)),
            "Login authorization failure for User u associated with 1 down MID Server. Re-assign mid_server role to grant all required roles.",
            "Login authorization failure for User u associated with 1 down MID Server.  Re-assign mid_server role to grant all required roles.",
        ),
        (
            Some(AuthorizationFailed),
            2,
            Some((Category::Authorization, Condition::AuthorizationFailedOnDownMid)),
            "Login authorization failure for User u associated with 2 down MID Servers. Re-assign mid_server role to grant all required roles.",
            "Login authorization failure for User u associated with 2 down MID Servers.  Re-assign mid_server role to grant all required roles.",
        ),
        (
            Some(AuthorizationFailed),
            0,
            Some((Category::Configuration, Condition::AuthorizationFailedUnassociated)),
            "Login authorization failure for User u with mid_server role not associated with a MID Server.",
            "Login authorization failure for User u with mid_server role not associated with a MID Server.",
        ),
        (
            None,
            1,
            Some((Category::Network, Condition::NoLoginOnDownMid)),
            "User u is associated with 1 down MID Server. No login attempts within reporting period.",
            "User u associated with 1 down MID Server.  No login attempts within reporting period.",
        ),
        (
            None,
            2,
            Some((Category::Network, Condition::NoLoginOnDownMid)),
            "User u is associated with 2 down MID Servers. No login attempts within reporting period.",
            "User u associated with 2 down MID Servers.  No login attempts within reporting period.",
        ),
        (
            None,
            0,
            Some((Category::Configuration, Condition::NoLoginUnassociated)),
            "User u with mid_server role is not associated with a MID Server. No login attempts within reporting period.",
            "User u with mid_server role not associated with a MID Server.  No login attempts within reporting period.",
        ),
        (
            Some(Succeeded),
            0,
            Some((Category::Configuration, Condition::LoginSucceededUnassociated)),
            "User u with mid_server role successfully connected but not associated with a MID Server. The mid_server role should be reserved for MID Server use only.",
            "User u with mid_server role successfully connected but is not associated with a MID Server.  The mid_server role should be reserved for MID Server use only.",
        ),
        (Some(Succeeded), 1, None, "", ""),
        (Some(Succeeded), 2, None, "", ""),
    ];
    for (kind, n, expected, documented, instance_text) in rows {
        let mut inst = instance().role_user("u");
        for i in 0..n {
            inst = inst.mid(&format!("mid{i}"), "Down", "u");
        }
        if let Some(kind) = kind {
            inst = inst.event("u", kind, 30, "10.0.0.1");
        }
        for (style, text) in [(MessageStyle::Documented, documented), (MessageStyle::Instance, instance_text)] {
            let report = inst.eval(style);
            match expected {
                None => assert!(report.findings.is_empty(), "{kind:?} n={n}: {:#?}", report.findings),
                Some((category, condition)) => {
                    let f = only(&report);
                    assert_eq!((f.category, f.condition), (category, condition), "{kind:?} n={n}");
                    assert_eq!(f.message, text, "{kind:?} n={n} {style:?}");
                    assert_eq!(f.down_mid_servers.len(), n);
                }
            }
        }
    }
}

#[test]
fn latest_event_in_window_decides() {
    let r = instance()
        .role_user("midserver2")
        .mid("london", "Down", "midserver2")
        .event("midserver2", Failed, 200, "10.0.0.1")
        .event("midserver2", Succeeded, 100, "10.0.0.1")
        .event("midserver2", AuthorizationFailed, 10, "soap_query")
        .report();
    let f = only(&r);
    assert_eq!(f.category, Category::Authorization);
    assert_eq!(f.evidence.event.as_ref().map(|e| e.sys_id.as_str()), Some("e0003"));

    // A later success clears the finding of a user of a down MID Server.
    let r = instance()
        .role_user("midserver2")
        .mid("london", "Down", "midserver2")
        .event("midserver2", Failed, 20, "10.0.0.1")
        .event("midserver2", Succeeded, 5, "10.0.0.1")
        .report();
    assert!(r.findings.is_empty());
    assert_eq!(r.summary.last_attempt_succeeded, 1);
}

#[test]
fn events_outside_the_window_are_ignored() {
    // The window is 4 h plus the built-in job's one-minute margin, exclusive at the start.
    let r = instance()
        .role_user("u")
        .mid("london", "Down", "u")
        .event("u", Failed, 4 * 60 + 1, "10.0.0.1") // exactly at the start: excluded (strictly after)
        .event("u", Failed, 5 * 60, "10.0.0.1")
        .event("u", Failed, -5, "10.0.0.1") // after the end of the window
        .report();
    assert_eq!(only(&r).condition, Condition::NoLoginOnDownMid);

    let r = instance().role_user("u").mid("london", "Down", "u").event("u", Failed, 4 * 60, "").report();
    assert_eq!(only(&r).condition, Condition::LoginFailedOnDownMid, "inside the one-minute margin");
}

#[test]
fn other_users_events_never_decide() {
    let r = instance()
        .role_user("u")
        .role_user("other")
        .mid("london", "Down", "u")
        .mid("paris", "Up", "other")
        .event("other", Failed, 5, "")
        .event("u2", Failed, 5, "")
        .report();
    assert_eq!(only(&r).condition, Condition::NoLoginOnDownMid);
}

/// The record `midserver.case` holds mid_server, its down MID Server is configured as `MidServer.Case`, its
/// events carry either spelling: one user, as the instance's queries (and its MID Server dashboard) compare
/// names, never a second user nor a role holder "not associated with a MID Server".
#[test]
fn one_user_spelled_in_three_cases_is_one_user_with_one_finding() {
    let r = instance()
        .role_user("midserver.case")
        .mid("london", "Down", "MidServer.Case")
        .event("midserver.case", Succeeded, 30, "10.0.0.1")
        .event("MIDSERVER.CASE", Failed, 5, "10.0.0.2")
        .report();
    let f = only(&r);
    assert_eq!(f.condition, Condition::LoginFailedOnDownMid, "the latest event decides, whatever its spelling");
    assert_eq!(f.user, "MidServer.Case", "named as configured, as the built-in job names a user of down MID Servers");
    assert_eq!(f.account, AccountState::Active, "its record is found");
    assert_eq!(f.evidence.event.as_ref().and_then(|e| e.ip.as_deref()), Some("10.0.0.2"));
    assert_eq!((r.summary.role_users, r.summary.unassociated_role_users), (1, 0));
    assert_eq!(r.user_ids.get("MidServer.Case").map(String::as_str), Some("u_midserver.case"), "linked to its record");
    assert!(r.id_map.as_ref().is_some_and(|m| m.unassociated_users.is_empty()));
    assert_eq!(r.down_mid_servers[0].users, ["MidServer.Case"]);

    // Two spellings on two down MID Servers: one user on two, named by the first spelling in byte order.
    let r = instance()
        .role_user("midserver.case")
        .mid("london", "Down", "midserver.case")
        .mid("paris", "Down", "MidServer.Case")
        .report();
    let f = only(&r);
    assert_eq!((f.condition, f.down_mid_servers.len()), (Condition::NoLoginOnDownMid, 2));
    assert_eq!(f.user, "MidServer.Case");

    // A role holder no MID Server uses is named by its record, its events in any case.
    let r = instance().role_user("mid.lone").event("MID.Lone", Succeeded, 5, "").report();
    let f = only(&r);
    assert_eq!((f.user.as_str(), f.condition), ("mid.lone", Condition::LoginSucceededUnassociated));
}

#[test]
fn inactive_role_users_are_not_checked_but_inactive_users_of_down_mids_are() {
    let r = instance().account("old.mid", false, false, Some(all_roles())).holder("old.mid").report();
    assert!(r.findings.is_empty());
    assert_eq!(r.summary.role_users, 0);

    let r = instance()
        .account("old.mid", false, false, Some(all_roles()))
        .holder("old.mid")
        .mid("london", "Down", "old.mid")
        .event("old.mid", Failed, 5, "10.1.1.1")
        .report();
    let f = only(&r);
    assert_eq!(f.category, Category::Authentication);
    assert_eq!(f.account, AccountState::Inactive);
    assert!(f.likely_cause.as_deref().is_some_and(|c| c.contains("inactive")));
}

#[test]
fn users_only_on_up_mid_servers_are_never_examined() {
    let r = instance().role_user("u").mid("paris", "Up", "u").event("u", Failed, 5, "").report();
    assert!(r.findings.is_empty());
    assert_eq!(r.summary.configured_mid_users, 1);
    assert_eq!(r.summary.unassociated_role_users, 0);
    assert_eq!(r.summary.last_attempt_failed_authentication, 0, "not examined at all");
}

#[test]
fn n_counts_only_down_mid_servers_for_a_user_on_up_and_down() {
    let r = instance()
        .role_user("u")
        .mid("paris", "Up", "u")
        .mid("london", "Down", "u")
        .mid("sydney", "Down", "u")
        .mid("tokyo", "Paused", "u")
        .report();
    let f = only(&r);
    assert_eq!(f.message, "User u is associated with 2 down MID Servers. No login attempts within reporting period.");
    let names: Vec<&str> = f.down_mid_servers.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["london", "sydney"]);
}

#[test]
fn several_mid_servers_sharing_a_user_each_count_once() {
    let r = instance()
        .role_user("shared")
        .mid("a", "Down", "shared")
        .mid("b", "Down", "shared")
        .mid("a", "Down", "shared") // a duplicate configuration row for the same MID Server
        .event("shared", Failed, 1, "10.0.0.9")
        .report();
    let f = only(&r);
    assert_eq!(f.down_mid_servers.len(), 2);
    assert!(f.message.contains("associated with 2 down MID Servers"));
    let map = r.id_map.as_ref().expect("a MID Server is down");
    assert_eq!(map.users_on_down_mid_servers["shared"], ["m_a", "m_b"]);
}

#[test]
fn no_mid_server_down_means_no_id_map() {
    let r = instance().role_user("ardis.maison").event("ardis.maison", Succeeded, 3, "203.0.113.24").report();
    assert!(r.id_map.is_none());
    assert_eq!(r.status, Status::Warning);
    assert!(r.notes.iter().any(|n| n == "No MID Server is down."));
}

#[test]
fn id_map_has_three_sections() {
    let r = instance()
        .role_user("ardis.maison")
        .role_user("midserver2")
        .mid("london", "Down", "midserver2")
        .mid("healthy", "Up", "mid.healthy")
        .report();
    let map = r.id_map.expect("a MID Server is down");
    assert_eq!(map.unassociated_users, ["ardis.maison"]);
    assert_eq!(
        map.users_on_down_mid_servers,
        BTreeMap::from([("midserver2".to_string(), vec!["m_london".to_string()])])
    );
    assert_eq!(map.down_mid_servers, BTreeMap::from([("m_london".to_string(), "london".to_string())]));
}

#[test]
fn missing_mid_server_role_checks_only_users_of_down_mids() {
    let mut inst = instance().role_user("ardis.maison").role_user("midserver2").mid("london", "Down", "midserver2");
    inst.s.mid_server_role = None;
    let r = inst.report();
    let f = only(&r);
    assert_eq!(f.user, "midserver2");
    assert_eq!(r.summary.role_users, 0);
    assert!(r.notes.iter().any(|n| n.contains("no mid_server role")));
    assert!(f.missing_roles.from_role_containment.is_empty(), "unknown without the role");
}

#[test]
fn authorization_failure_lists_missing_roles_from_event_and_containment() {
    let held: BTreeSet<SysId> = [MID_ROLE, "r_soap", "r_soap_script"].into_iter().map(SysId::from).collect();
    let r = instance()
        .account("local-midserver", true, false, Some(held))
        .holder("local-midserver")
        .mid("sydney1", "Down", "local-midserver")
        .event("local-midserver", AuthorizationFailed, 5, "soap_query, soap_ecc,")
        .report();
    let f = only(&r);
    assert_eq!(f.missing_roles.from_event, ["soap_ecc", "soap_query"]);
    assert_eq!(f.missing_roles.from_role_containment, ["soap_query"]);
    assert_eq!(f.evidence.event.as_ref().and_then(|e| e.ip.clone()), None, "parm2 is roles, not an IP");
}

#[test]
fn user_without_soap_script_on_down_mid_is_undetectable_not_network() {
    let held: BTreeSet<SysId> = [MID_ROLE, "r_soap", "r_soap_query"].into_iter().map(SysId::from).collect();
    let r = instance()
        .account("mid.tokyo", true, false, Some(held))
        .holder("mid.tokyo")
        .mid("tokyo", "Down", "mid.tokyo")
        .report();
    let f = only(&r);
    assert_eq!((f.category, f.condition), (Category::Network, Condition::ConnectivityUndetectable));
    assert_eq!(
        f.message,
        "User mid.tokyo is associated with 1 down MID Server. No login attempts within reporting period."
    );
    let cause = f.likely_cause.as_deref().unwrap_or_default();
    assert!(
        cause.starts_with("Connectivity of MID Server user mid.tokyo cannot be detected by the instance"),
        "{cause}"
    );
    assert!(cause.contains("soap_script"));
    assert_eq!(r.summary.connectivity_undetectable, 1);
}

#[test]
fn locked_out_and_unknown_users_are_named_as_likely_cause() {
    let r = instance()
        .account("midserver2", true, true, Some(all_roles()))
        .holder("midserver2")
        .mid("london", "Down", "midserver2")
        .mid("ghost-mid", "Down", "nobody")
        .event("midserver2", Failed, 5, "10.20.30.41")
        .report();
    assert_eq!(r.findings.len(), 2);
    let locked = &r.findings[0];
    assert_eq!((locked.user.as_str(), locked.account), ("midserver2", AccountState::LockedOut));
    assert!(locked.likely_cause.as_deref().is_some_and(|c| c.contains("locked out")));
    assert_eq!(locked.evidence.event.as_ref().and_then(|e| e.ip.as_deref()), Some("10.20.30.41"));
    let ghost = &r.findings[1];
    assert_eq!((ghost.user.as_str(), ghost.account), ("nobody", AccountState::NotFound));
    assert!(ghost.likely_cause.as_deref().is_some_and(|c| c.contains("No user named nobody")));
}

#[test]
fn domain_comes_from_user_then_config_then_global() {
    let mut inst =
        instance().role_user("u").mid("london", "Down", "u").mid("paris", "Down", "v").mid("rome", "Down", "w");
    inst.s.mid_user_configs[1].sys_domain = Some("d_config".into());
    let r = inst.report();
    let domains: Vec<(&str, &str)> = r.findings.iter().map(|f| (f.user.as_str(), f.sys_domain.as_str())).collect();
    assert_eq!(domains, [("u", "d_acme"), ("v", "d_config"), ("w", "global")]);
}

#[test]
fn login_history_adds_failure_reason_and_its_absence_is_noted() {
    let mut inst =
        instance().role_user("midserver2").mid("london", "Down", "midserver2").event("midserver2", Failed, 5, "");
    inst.s.login_history = LoginHistory::Rows(vec![LoginHistoryEntry {
        user: SysId::from("u_midserver2"),
        status: "failed".into(),
        failure_reason: "User locked out".into(),
        ip_address: "10.20.30.41".into(),
        created_on: end() - Duration::minutes(5),
    }]);
    let r = inst.report();
    let h = only(&r).evidence.login_history.as_ref().expect("history row matched by user sys_id");
    assert_eq!(h.failure_reason, "User locked out");
    assert!(!r.notes.iter().any(|n| n.contains("sys_user_login_history")));

    inst.s.login_history = LoginHistory::Absent;
    let r = inst.report();
    assert!(only(&r).evidence.login_history.is_none());
    assert!(r.notes.iter().any(|n| n.contains("sys_user_login_history does not exist")));
}

#[test]
fn skipped_users_get_no_finding_and_are_reported() {
    let mut inst = instance().role_user("bad^name").mid("london", "Down", "bad^name");
    inst.s.skipped_users.push(SkippedUser { user: "bad^name".into(), reason: "why".into() });
    let r = inst.report();
    assert!(r.findings.is_empty());
    assert_eq!(r.skipped_users.len(), 1);
    assert!(r.status_line().contains("1 user not checked"), "{}", r.status_line());
}

#[test]
fn status_and_status_line_follow_the_plugin_convention() {
    let r = instance()
        .role_user("a")
        .role_user("b")
        .role_user("c")
        .mid("m1", "Down", "a")
        .mid("m2", "Down", "b")
        .mid("m3", "Up", "c")
        .event("a", Failed, 5, "")
        .report();
    assert_eq!(r.status, Status::Critical);
    assert_eq!(r.status.exit_code(), 2);
    assert_eq!(
        r.status_line(),
        "MIDWATCH CRITICAL - 2 findings (1 authentication, 1 network) on acme | findings=2 down_mid_servers=2 \
         authentication=1 authorization=0 network=1 configuration=0 warnings=0"
    );
    let ok = instance().role_user("c").mid("m3", "Up", "c").report();
    assert_eq!(
        ok.status_line(),
        "MIDWATCH OK - no findings on acme | findings=0 down_mid_servers=0 authentication=0 authorization=0 \
         network=0 configuration=0 warnings=0"
    );
    assert_eq!(ok.status.exit_code(), 0);
}

#[test]
fn summary_counts_match_the_builtin_debug_summary() {
    let r = instance()
        .role_user("a")
        .role_user("b")
        .role_user("c")
        .role_user("d")
        .mid("m1", "Down", "a")
        .mid("m2", "Down", "x")
        .mid("m3", "Up", "c")
        .event("a", AuthorizationFailed, 5, "soap_query")
        .event("b", Succeeded, 5, "")
        .report();
    let s = &r.summary;
    assert_eq!((s.role_users, s.down_mid_servers, s.users_on_down_mid_servers), (4, 2, 2));
    assert_eq!((s.configured_mid_users, s.unassociated_role_users), (3, 2));
    assert_eq!((s.last_attempt_failed_authorization, s.last_attempt_succeeded, s.no_attempt), (1, 1, 2));
    assert_eq!(s.findings, 4);
    assert_eq!(s.findings_by_category[&Category::Configuration], 2);
}

#[test]
fn down_for_holds_back_a_just_down_mid_server_and_judges_it_once_down_long_enough() {
    let inst = || {
        instance()
            .role_user("fresh")
            .role_user("stale")
            .mid("upgrading", "Down", "fresh")
            .mid("dead", "Down", "stale")
            .silent_since("upgrading", 3)
            .silent_since("dead", 180)
    };
    // 0s is the built-in job: both users are judged (no login: network findings).
    let r = inst().report();
    assert_eq!(r.findings.len(), 2);
    assert!(r.down_mid_servers.iter().all(|m| m.judged));

    // Down for 3 minutes < 10 minutes: fresh is held back, stale is judged.
    let r = inst().down_for(10).report();
    let users: Vec<&str> = r.findings.iter().map(|f| f.user.as_str()).collect();
    assert_eq!(users, ["stale"]);
    let held: Vec<(&str, bool, Vec<String>)> =
        r.down_mid_servers.iter().map(|m| (m.name.as_str(), m.judged, m.users.clone())).collect();
    assert_eq!(held, [("dead", true, vec!["stale".to_string()]), ("upgrading", false, vec!["fresh".to_string()])]);
    assert_eq!(r.summary.down_mid_servers, 1, "only the judged one counts as down this cycle");
    assert!(r.id_map.as_ref().is_some_and(|m| !m.down_mid_servers.contains_key("m_upgrading")));

    // On a later cycle it has been silent long enough: judged.
    let r = inst().silent_since("upgrading", 12).down_for(10).report();
    assert_eq!(r.findings.len(), 2);
    assert_eq!(
        r.findings.iter().find(|f| f.user == "fresh").map(|f| f.down_mid_servers[0].down_since),
        Some(Some(end() - Duration::minutes(12)))
    );
}

#[test]
fn a_down_mid_server_without_last_refreshed_is_judged_whatever_down_for() {
    let r = instance().role_user("u").mid("london", "Down", "u").down_for(60).report();
    assert_eq!(r.findings.len(), 1);
    assert!(r.down_mid_servers[0].judged && r.down_mid_servers[0].down_since.is_none());
}

#[test]
fn a_user_on_a_held_back_and_a_judged_mid_server_is_judged_on_the_judged_one() {
    let r = instance()
        .role_user("u")
        .mid("a", "Down", "u")
        .mid("b", "Down", "u")
        .silent_since("a", 1)
        .silent_since("b", 60)
        .down_for(5)
        .report();
    let f = only(&r);
    assert_eq!(f.down_mid_servers.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["b"]);
    assert!(f.message.contains("1 down MID Server"), "{}", f.message);
}

#[test]
fn sso_events_are_evidence_and_never_decide_a_finding() {
    let mut inst = instance().role_user("u").mid("london", "Down", "u");
    let sso = crate::domain::EventActivity {
        name: "external.authentication.failed".into(),
        count: 3,
        last: Some(end() - Duration::minutes(2)),
        last_detail: Some("User locked out".into()),
    };
    inst.s.event_activity.insert(UserKey::of("u"), vec![sso.clone()]);
    let f = only(&inst.report()).clone();
    // No login event in the window: the network finding, as if the SSO attempts were not there.
    assert_eq!(f.condition, Condition::NoLoginOnDownMid);
    assert!(f.evidence.event.is_none());
    assert_eq!(f.activity, [sso]);
}

#[test]
fn the_accounts_optional_columns_are_carried_when_present_and_absent_otherwise() {
    let mut inst = instance().role_user("u").mid("london", "Down", "u").event("u", Failed, 5, "10.0.0.1");
    let r = inst.report();
    assert_eq!((only(&r).failed_attempts, only(&r).last_login_time), (None, None), "absent columns stay absent");
    if let Some(user) = inst.s.users.get_mut("u_u") {
        user.failed_attempts = Some(5);
        user.last_login_time = Some(end() - Duration::hours(50));
    }
    let r = inst.report();
    assert_eq!(only(&r).failed_attempts, Some(5));
    assert_eq!(only(&r).last_login_time, Some(end() - Duration::hours(50)));
    let text = crate::present::text::render(&r, crate::present::Detail::Detailed, None);
    assert!(text.contains("Account:          active, 5 failed attempts; last successful login"), "{text}");
}

mod early;
