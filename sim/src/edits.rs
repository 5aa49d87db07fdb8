//! What changes in the demo data set while it is served, as an administrator or a MID Server would change it:
//! midserver2 fixed (its account unlocked, a successful login recorded), and a login event recorded. Used by
//! `midwatch demo`, by `midwatch-sim` on SIGUSR1, and by the tests.

use chrono::{DateTime, Utc};

use crate::shared::sn_time;

/// The sys_id of the `login` event [`fix_midserver2`] records.
pub const FIX_EVENT_SYS_ID: &str = "e7e7ffff000000000000000000000001";

/// The tables of the simulated instance, by name.
pub type Tables = std::collections::BTreeMap<String, Vec<serde_json::Map<String, serde_json::Value>>>;

/// Unlocks midserver2 and records a successful login of it at `at`.
pub fn fix_midserver2(tables: &mut Tables, at: DateTime<Utc>) {
    use serde_json::Value;
    for user in tables.get_mut("sys_user").into_iter().flatten() {
        if user.get("user_name").and_then(Value::as_str) == Some("midserver2") {
            user.insert("locked_out".into(), Value::String("false".into()));
        }
    }
    let login = SyseventRow { sys_id: FIX_EVENT_SYS_ID, name: "login", user: "midserver2", parm2: "10.20.30.41", at };
    record_login_event(tables, &login);
}

/// A login event as [`record_login_event`] records it in `sysevent`.
#[derive(Debug, Clone, Copy)]
pub struct SyseventRow<'a> {
    pub sys_id: &'a str,
    /// `login`, `login.failed`, …
    pub name: &'a str,
    /// The user name (`parm1`).
    pub user: &'a str,
    /// Where from (the IP address).
    pub parm2: &'a str,
    pub at: DateTime<Utc>,
}

/// Records a `sysevent` row: the login event `name` (`login`, `login.failed`, …) of `user` from `parm2` at `at`,
/// shaped as the demo data's rows are.
pub fn record_login_event(tables: &mut Tables, event: &SyseventRow<'_>) {
    let row = serde_json::json!({
        "sys_id": event.sys_id,
        "name": event.name,
        "parm1": event.user,
        "parm2": event.parm2,
        "instance": "",
        "table": "",
        "state": "processed",
        "queue": "",
        "sys_created_on": sn_time::format(event.at),
        "sys_created_by": event.user,
    });
    if let (Some(events), serde_json::Value::Object(row)) = (tables.get_mut("sysevent"), row) {
        events.push(row);
    }
}
