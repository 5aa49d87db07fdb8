//! A generator of large simulated instances, for the scale benchmark and the tests of the read plan.
//!
//! It builds MID Servers (a share of them down, some sharing a user), users holding `mid_server` (with
//! the roles it contains as inherited rows, some of them inactive or lacking `soap_script`), their
//! configuration rows, and `events` `sysevent` rows over the window: the login events of the users the
//! check will examine — a few heavy users with many events, many light ones, some with none at all, a
//! few with two events in their latest second — and noise: other users' logins, other event names,
//! the Instance Analyzer's certificate `login.failed`, and events older than the window. Everything is
//! derived from a seed, so the same scenario gives the same instance.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use super::Dataset;
use super::events::splitmix64;
use crate::shared::LoginEventKind;

/// The shape of a generated instance. [`Scenario::large`] is the benchmark's instance.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub mid_servers: usize,
    pub down_mid_servers: usize,
    /// Users holding `mid_server` (the configured MID users are among them).
    pub role_users: usize,
    /// `sysevent` rows, noise included.
    pub events: usize,
    /// The end of the window the events are spread over (the check must run at or a little after it).
    pub end: DateTime<Utc>,
    pub window: std::time::Duration,
    /// Adds users whose names an encoded query cannot carry (`mid.user 7`, `mid,user`).
    pub hostile_names: bool,
    pub seed: u64,
}

impl Scenario {
    /// 2,000 MID Servers (300 down), 3,000 `mid_server` users, 881 of them to check, `events` events in 4 h.
    pub fn large(events: usize, end: DateTime<Utc>) -> Scenario {
        Scenario {
            mid_servers: 2000,
            down_mid_servers: 300,
            role_users: 3000,
            events,
            end,
            window: std::time::Duration::from_secs(4 * 3600),
            hostile_names: false,
            seed: 12,
        }
    }

    /// A small instance of the same shape, for tests.
    pub fn small(events: usize, end: DateTime<Utc>) -> Scenario {
        Scenario {
            mid_servers: 120,
            down_mid_servers: 30,
            role_users: 180,
            events,
            end,
            window: std::time::Duration::from_secs(4 * 3600),
            hostile_names: true,
            seed: 7,
        }
    }
}

/// A generated instance and what the generator knows about it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub dataset: Dataset,
    /// The users the built-in job examines (B ∪ D).
    pub checked_users: usize,
    /// How many of them get a finding.
    pub expected_findings: usize,
    /// The login events of checked users inside the window.
    pub checked_login_events: usize,
    /// The users configured only on Up MID Servers, whose latest events a check with early warnings reads too.
    pub up_mid_users: usize,
}

const ROLE_MID_SERVER: &str = "a0a00000000000000000000000000001";
const ROLE_SOAP: &str = "a0a00000000000000000000000000002";
const SOAP_ROLES: &[&str] = &["soap_create", "soap_delete", "soap_ecc", "soap_query", "soap_script", "soap_update"];
const NOISE_NAMES: &[&str] =
    &["text_index", "metric.update", "sys_email.sent", "glide.heartbeat", "mid_server.up", "ecc_queue.processed"];

fn reference(table: &str, id: &str) -> Value {
    json!({"link": format!("https://bench.service-now.com/api/now/table/{table}/{id}"), "value": id})
}

fn id(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:0>width$x}", width = 32 - prefix.len())
}

fn row(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A deterministic stream of pseudo-random numbers.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        splitmix64(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// The events being generated, each with the next serial number.
#[derive(Default)]
struct Events {
    log: super::EventLog,
    serial: u64,
}

impl Events {
    fn add(&mut self, at: i64, name: &str, parm1: &str, parm2: &str) {
        self.serial += 1;
        if let Some(t) = DateTime::from_timestamp(at, 0) {
            self.log.push(t, name, parm1, parm2, self.serial);
        }
    }
}

/// What a checked user's latest login event is planned to be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    Latest(LoginEventKind),
    NoEvent,
}

/// Builds the instance of `s`.
pub fn generate(s: &Scenario) -> Generated {
    let mut dice = Dice(s.seed.wrapping_mul(0x5851_f42d_4c95_7f2d));
    let mut tables: BTreeMap<String, Vec<Map<String, Value>>> = BTreeMap::new();
    let mut push = |t: &str, v: Value| tables.entry(t.to_string()).or_default().push(row(v));

    // Roles: mid_server contains soap, which contains the soap_* roles.
    push("sys_user_role", json!({"sys_id": ROLE_MID_SERVER, "name": "mid_server"}));
    push("sys_user_role", json!({"sys_id": ROLE_SOAP, "name": "soap"}));
    let soap_ids: Vec<String> = (0..SOAP_ROLES.len()).map(|i| id("a0a1", i)).collect();
    for (rid, name) in soap_ids.iter().zip(SOAP_ROLES) {
        push("sys_user_role", json!({"sys_id": rid, "name": name}));
    }
    push(
        "sys_user_role_contains",
        json!({"sys_id": id("a0a2", 0), "role": reference("sys_user_role", ROLE_MID_SERVER), "contains": reference("sys_user_role", ROLE_SOAP)}),
    );
    for (i, rid) in soap_ids.iter().enumerate() {
        push(
            "sys_user_role_contains",
            json!({"sys_id": id("a0a2", i + 1), "role": reference("sys_user_role", ROLE_SOAP), "contains": reference("sys_user_role", rid)}),
        );
    }

    // MID Servers: the last `share` reuse the users of the first `share`; `pairs` of those pairs are both down.
    let m = s.mid_servers.max(2);
    let share = (m / 40).max(1);
    let configured = m - share;
    let pairs = (s.down_mid_servers / 15).min(share);
    let mut down = vec![false; m];
    for i in 0..pairs {
        down[i] = true;
        down[configured + i] = true;
    }
    let mut more = s.down_mid_servers.saturating_sub(2 * pairs);
    let step = ((configured - pairs) / more.max(1)).max(1);
    let mut i = pairs;
    while more > 0 && i < configured {
        down[i] = true;
        more -= 1;
        i += step;
    }
    let user_of_mid = |mid: usize| if mid < configured { mid } else { mid - configured };

    // Users: 0..configured are MID users; the rest hold the role without a MID Server, some inactive.
    let r = s.role_users.max(configured);
    let unconfigured = r - configured;
    let inactive = unconfigured * 449 / 1050;
    let mut names: Vec<String> = (0..r).map(|u| format!("mid.user{u:04}")).collect();
    if s.hostile_names {
        // Unassociated and active: checked through a STARTSWITH superset.
        for (k, hostile) in ["mid.user 7", "mid,user^ORparm1ISNOTEMPTY"].iter().enumerate() {
            if let Some(n) = names.get_mut(r - 1 - k) {
                *n = hostile.to_string();
            }
        }
    }
    let active = |u: usize| u < configured || u >= configured + inactive;
    let lacks_soap_script = |u: usize| u % 37 == 5;
    for (u, name) in names.iter().enumerate() {
        let uid = id("b0b0", u);
        push(
            "sys_user",
            json!({"sys_id": uid, "user_name": name, "active": active(u).to_string(), "locked_out": (u % 53 == 3).to_string(),
                   "sys_domain": reference("sys_user_group", "global")}),
        );
        let mut held = vec![(ROLE_MID_SERVER.to_string(), "false"), (ROLE_SOAP.to_string(), "true")];
        for (k, rid) in soap_ids.iter().enumerate() {
            if !(lacks_soap_script(u) && SOAP_ROLES[k] == "soap_script") {
                held.push((rid.clone(), "true"));
            }
        }
        for (k, (rid, inherited)) in held.into_iter().enumerate() {
            push(
                "sys_user_has_role",
                json!({"sys_id": id("b1b1", u * 8 + k), "user": reference("sys_user", &uid), "role": reference("sys_user_role", &rid), "inherited": inherited}),
            );
        }
    }
    for mid in 0..m {
        let mid_id = id("c0c0", mid);
        let status = if down[mid] { "Down" } else { "Up" };
        push(
            "ecc_agent",
            json!({"sys_id": mid_id, "name": format!("mid-{mid:04}"), "status": status, "validated": "true"}),
        );
        push(
            "ecc_agent_config",
            json!({"sys_id": id("c1c1", mid * 2), "ecc_agent": reference("ecc_agent", &mid_id), "param_name": "mid.instance.username",
                   "value": names[user_of_mid(mid)], "sys_domain": reference("sys_user_group", "global")}),
        );
        push(
            "ecc_agent_config",
            json!({"sys_id": id("c1c1", mid * 2 + 1), "ecc_agent": reference("ecc_agent", &mid_id), "param_name": "mid.log.level",
                   "value": "info", "sys_domain": reference("sys_user_group", "global")}),
        );
    }
    for t in ["sysevent", "ecc_agent_issue", "sys_user_login_history"] {
        tables.entry(t.to_string()).or_default();
    }

    // Whom the check examines: B (users of down MIDs) and D (active, unconfigured role users).
    let mut on_down: Vec<usize> = (0..m).filter(|mid| down[*mid]).map(user_of_mid).collect();
    on_down.sort_unstable();
    on_down.dedup();
    let unassociated: Vec<usize> = (configured..r).filter(|u| active(*u)).collect();
    let mut plans: BTreeMap<usize, Plan> = BTreeMap::new();
    let mut b_order = on_down.clone();
    b_order.sort_by_key(|u| splitmix64(s.seed ^ *u as u64));
    let succeeded = b_order.len() * 132 / 280;
    let other = [
        Plan::Latest(LoginEventKind::Failed),
        Plan::Latest(LoginEventKind::AuthorizationFailed),
        Plan::NoEvent,
        Plan::Latest(LoginEventKind::Failed),
    ];
    for (k, u) in b_order.iter().enumerate() {
        let plan = if k < succeeded { Plan::Latest(LoginEventKind::Succeeded) } else { other[k % other.len()] };
        plans.insert(*u, plan);
    }
    let d_plans = [
        Plan::Latest(LoginEventKind::Succeeded),
        Plan::Latest(LoginEventKind::Succeeded),
        Plan::NoEvent,
        Plan::Latest(LoginEventKind::Failed),
        Plan::Latest(LoginEventKind::AuthorizationFailed),
        Plan::Latest(LoginEventKind::Succeeded),
        Plan::NoEvent,
    ];
    for u in &unassociated {
        plans.insert(*u, d_plans[(splitmix64(s.seed ^ 0xd ^ *u as u64) % d_plans.len() as u64) as usize]);
    }

    // The checked users' login events, in [start + 10 min, end - 30 s] so that a check started a little
    // after `end` sees the same events.
    let window = TimeDelta::from_std(s.window).unwrap_or(TimeDelta::hours(4));
    let lo = (s.end - window + TimeDelta::minutes(10)).timestamp();
    let hi = (s.end - TimeDelta::seconds(30)).timestamp();
    let scale = s.events as f64 / 500_000.0;
    let heavy_every = 22;
    let mut events = Events::default();
    let mut checked_login_events = 0usize;
    let mut latest: BTreeMap<usize, (i64, LoginEventKind)> = BTreeMap::new();
    let kinds = [LoginEventKind::Succeeded, LoginEventKind::Failed, LoginEventKind::AuthorizationFailed];
    for (k, (u, plan)) in plans.iter().enumerate() {
        let name = &names[*u];
        // An old event before the window, which must not count.
        if k % 5 == 0 {
            events.add(lo - 3 * 3600 - dice.below(3600) as i64, "login.failed", name, "10.1.0.9");
        }
        let Plan::Latest(kind) = plan else { continue };
        let weight = if k % heavy_every == 3 { 260.0 } else { 1.0 + (splitmix64(*u as u64) % 9) as f64 };
        let count = ((weight * scale).round() as usize).max(1);
        let last = lo + (hi - lo) / 2 + dice.below(((hi - lo) / 2) as u64) as i64;
        let parm2 = |kind: LoginEventKind| -> String {
            match kind {
                LoginEventKind::AuthorizationFailed => "soap_ecc,soap_query".to_string(),
                _ => format!("10.2.{}.{}", u / 250, u % 250),
            }
        };
        for _ in 1..count {
            let at = lo + dice.below((last - lo) as u64) as i64;
            let other = match dice.below(10) {
                0..=6 => kinds[0],
                7 | 8 => kinds[1],
                _ => kinds[2],
            };
            events.add(at, other.event_name(), name, &parm2(other));
        }
        latest.insert(*u, (last, *kind));
        // Now and then a second event in the same second: the tie is broken by sys_id, and the planned
        // kind is given to the one with the greater sys_id.
        if k % 97 == 11 {
            let twin =
                if *kind == LoginEventKind::Succeeded { LoginEventKind::Failed } else { LoginEventKind::Succeeded };
            let key = |n: u64| (u128::from(splitmix64(n)) << 64) | u128::from(n);
            let (a, b) = (events.serial + 1, events.serial + 2);
            let (first, second) = if key(b) > key(a) { (twin, *kind) } else { (*kind, twin) };
            events.add(last, first.event_name(), name, &parm2(first));
            events.add(last, second.event_name(), name, &parm2(second));
            checked_login_events += count + 1;
        } else {
            events.add(last, kind.event_name(), name, &parm2(*kind));
            checked_login_events += count;
        }
    }

    // Noise, up to `events` rows in all.
    let start = (s.end - window).timestamp();
    let noise = s.events.saturating_sub(checked_login_events + plans.len() / 5);
    let up_users: Vec<usize> = (0..configured).filter(|u| !plans.contains_key(u)).collect();
    let up_mid_users = up_users.len();
    for n in 0..noise {
        let roll = dice.below(100);
        let at = if roll == 0 {
            start - 1 - dice.below(7200) as i64
        } else {
            start + 1 + dice.below((hi - start) as u64) as i64
        };
        match roll {
            0..=29 if !up_users.is_empty() => {
                let u = up_users[dice.below(up_users.len() as u64) as usize];
                events.add(at, "login", &names[u], "10.3.0.1");
            }
            30..=31 => events.add(at, "login.failed", "-----BEGIN CERTIFICATE-----MIIDdz", "10.250.0.1"),
            32..=36 => {
                let u = plans.keys().nth(dice.below(plans.len() as u64) as usize).copied().unwrap_or(0);
                events.add(at, "session.established", &names[u], "");
            }
            37..=39 => events.add(at, "login", &format!("user{}", dice.below(20_000)), "10.4.0.1"),
            _ => {
                let name = NOISE_NAMES[n % NOISE_NAMES.len()];
                events.add(at, name, &format!("x{:x}", dice.below(50_000)), "");
            }
        }
    }
    let mut events = events.log;
    events.seal();

    let expected_findings = plans
        .iter()
        .filter(|(u, _)| {
            let on_down_mid = on_down.binary_search(u).is_ok();
            let succeeded = latest.get(u).is_some_and(|(_, k)| *k == LoginEventKind::Succeeded);
            !(on_down_mid && succeeded)
        })
        .count();
    Generated {
        dataset: Dataset { tables, events },
        checked_users: plans.len(),
        expected_findings,
        checked_login_events,
        up_mid_users,
    }
}

/// A reference value as the Table API answers it.
fn reference_to(table: &str, id: &str) -> Value {
    json!({"link": format!("https://generated.service-now.com/api/now/table/{table}/{id}"), "value": id})
}

/// `n` users with the mid_server role, each configured on its own down MID Server, none logging in.
pub fn down_users(n: usize) -> Dataset {
    let role = "a0000000000000000000000000000001";
    let mut tables: Vec<(&str, Vec<Value>)> = vec![
        ("sys_user_role", vec![json!({"sys_id": role, "name": "mid_server"})]),
        ("sys_user_role_contains", vec![]),
        ("sys_user", vec![]),
        ("sys_user_has_role", vec![]),
        ("ecc_agent", vec![]),
        ("ecc_agent_config", vec![]),
        ("sysevent", vec![]),
        ("sys_user_login_history", vec![]),
        ("ecc_agent_issue", vec![]),
    ];
    for i in 0..n {
        let (uid, mid) = (format!("b{i:031}"), format!("c{i:031}"));
        let name = format!("mid.user{i:04}");
        tables[2].1.push(json!({"sys_id": uid, "user_name": name, "active": "true", "locked_out": "false", "sys_domain": reference_to("sys_user_group", "global")}));
        tables[3].1.push(json!({"sys_id": format!("d{i:031}"), "user": reference_to("sys_user", &uid), "role": reference_to("sys_user_role", role), "inherited": "false"}));
        tables[4].1.push(json!({"sys_id": mid, "name": format!("mid-{i:04}"), "status": "Down"}));
        tables[5].1.push(json!({"sys_id": format!("e{i:031}"), "ecc_agent": reference_to("ecc_agent", &mid), "param_name": "mid.instance.username", "value": name}));
    }
    let mut d = Dataset::default();
    for (table, rows) in tables {
        d.insert_fixture(table, &json!({ "result": rows }).to_string())
            .unwrap_or_else(|e| panic!("the generated rows are a table: {e}"));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_large_scenario_has_the_issues_shape() {
        let end = crate::shared::sn_time::parse("2026-11-22 12:00:00").unwrap_or_else(|| panic!("time"));
        let g = generate(&Scenario::large(50_000, end));
        assert_eq!(g.checked_users, 881);
        assert_eq!(g.expected_findings, 749);
        let t = &g.dataset.tables;
        assert_eq!(t["ecc_agent"].len(), 2000);
        assert_eq!(t["ecc_agent"].iter().filter(|r| r["status"] == "Down").count(), 300);
        assert_eq!(t["sys_user"].len(), 3000);
        assert!(
            g.dataset.events.len() >= 50_000 - 200 && g.dataset.events.len() <= 50_000 + 200,
            "{}",
            g.dataset.events.len()
        );
    }
}
