//! The latest event per user, folded from whatever rows the reads return, and what was tallied of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::domain::{EventActivity, LoginEvent, LoginEventKind, UserKey, UserName, Window};
use crate::snow::Row;

/// The latest event per user, folded from whatever rows the reads return. A row is a wanted user's when its
/// `parm1` has that user's [`UserKey`]: the instance's queries select every spelling, and so do these folds.
pub(super) struct Latest<'a> {
    pub(super) window: &'a Window,
    pub(super) wanted: &'a BTreeSet<UserKey>,
    pub(super) events: Mutex<BTreeMap<UserKey, LoginEvent>>,
    pub(super) rows_read: Mutex<u64>,
    /// Per user and event name, what the reads that see all of a user's events (no counts) tallied.
    pub(super) tallied: Mutex<BTreeMap<UserKey, BTreeMap<String, EventActivity>>>,
}

/// Adds one event to a user's activity by name: the count, and the last one (its `parm2` when known).
pub(super) fn tally(
    into: &mut BTreeMap<String, EventActivity>,
    name: &str,
    count: u64,
    last: Option<DateTime<Utc>>,
    detail: Option<String>,
) {
    let a = into.entry(name.to_string()).or_insert_with(|| EventActivity {
        name: name.to_string(),
        count: 0,
        last: None,
        last_detail: None,
    });
    a.count += count;
    if last > a.last {
        a.last = last;
        a.last_detail = detail;
    }
}

impl Latest<'_> {
    /// As [`Latest::fold`], and tallies every event of a wanted user in the window by name (login and SSO):
    /// for reads that see all of a user's events because the Aggregate API could not count them.
    pub(super) fn fold_tallying(&self, rows: &[Row]) {
        if let Ok(mut tallied) = self.tallied.lock() {
            for r in rows {
                let (user, at) = (UserKey::of(&r.text("parm1")), r.time("sys_created_on"));
                if !self.wanted.contains(&user) || !at.is_some_and(|at| self.window.contains(at)) {
                    continue;
                }
                let detail = Some(r.text("parm2")).filter(|d| !d.is_empty());
                tally(tallied.entry(user).or_default(), &r.text("name"), 1, at, detail);
            }
        }
        self.fold(rows);
    }

    /// Offers rows; keeps, per wanted user, the event with the greatest `(sys_created_on, sys_id)`.
    pub(super) fn fold(&self, rows: &[Row]) {
        if let Ok(mut n) = self.rows_read.lock() {
            *n += rows.len() as u64;
        }
        let Ok(mut events) = self.events.lock() else { return };
        for r in rows {
            let Some(e) = self.event(r) else { continue };
            let user = UserKey::of(&e.user_name);
            match events.get(&user) {
                Some(kept) if (kept.created_on, &kept.sys_id) >= (e.created_on, &e.sys_id) => {}
                _ => {
                    events.insert(user, e);
                }
            }
        }
    }

    /// A row as a login event of a wanted user inside the window; the match on the user (by [`UserKey`])
    /// happens here, whatever the query selected.
    fn event(&self, r: &Row) -> Option<LoginEvent> {
        let e = LoginEvent {
            sys_id: r.sys_id("sys_id")?,
            kind: LoginEventKind::from_event_name(&r.text("name"))?,
            user_name: UserName::new(r.text("parm1")),
            parm2: r.text("parm2"),
            created_on: r.time("sys_created_on")?,
        };
        (self.wanted.contains(&UserKey::of(&e.user_name)) && self.window.contains(e.created_on)).then_some(e)
    }

    /// The latest event's time of `user` (in any case) folded so far.
    pub(super) fn latest_of(&self, user: &str) -> Option<DateTime<Utc>> {
        self.events.lock().ok()?.get(&UserKey::of(user)).map(|e| e.created_on)
    }
}
