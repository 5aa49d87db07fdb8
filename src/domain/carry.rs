//! A later round of `check --until-ok` reads only the events after the previous round's; what the previous
//! round read and is still inside the window is carried over, so that the round judges the whole window.

use std::collections::BTreeSet;

use super::{LoginHistory, Snapshot, Window};

impl Snapshot {
    /// Adds to this snapshot (read after `previous.read_until`) what `previous` read that is still inside
    /// `window`: its login events and login history rows. The event counts are added up: they count every
    /// event since the watch began (a count cannot be taken back when its events leave the window).
    pub(crate) fn carry_from(&mut self, previous: &Snapshot, window: &Window) {
        self.read_from = previous.read_from.or(self.read_from);
        let known: BTreeSet<_> = self.login_events.iter().map(|e| e.sys_id.clone()).collect();
        self.login_events.extend(
            previous
                .login_events
                .iter()
                .filter(|e| window.contains(e.created_on) && !known.contains(&e.sys_id))
                .cloned(),
        );
        for (user, before) in &previous.event_activity {
            let now = self.event_activity.entry(user.clone()).or_default();
            for old in before {
                match now.iter_mut().find(|a| a.name == old.name) {
                    Some(new) => {
                        new.count = new.count.saturating_add(old.count);
                        if new.last.is_none() {
                            new.last = old.last;
                            new.last_detail.clone_from(&old.last_detail);
                        }
                    }
                    None => now.push(old.clone()),
                }
            }
            now.sort_by(|a, b| a.name.cmp(&b.name));
        }
        if let (LoginHistory::Rows(rows), LoginHistory::Rows(old)) = (&mut self.login_history, &previous.login_history)
        {
            let mut seen: BTreeSet<_> = rows.iter().map(|r| (r.user.clone(), r.created_on)).collect();
            for r in old.iter().filter(|r| window.contains(r.created_on)) {
                if seen.insert((r.user.clone(), r.created_on)) {
                    rows.push(r.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::domain::{EventActivity, LoginEvent, LoginEventKind, SysId, UserKey};

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    fn event(id: &str, minutes: i64) -> LoginEvent {
        LoginEvent {
            sys_id: SysId::from(id),
            kind: LoginEventKind::Failed,
            user_name: "u".into(),
            parm2: String::new(),
            created_on: at(minutes),
        }
    }

    fn activity(count: u64, last: i64) -> BTreeMap<UserKey, Vec<EventActivity>> {
        let a = EventActivity { name: "login.failed".into(), count, last: Some(at(last)), last_detail: None };
        BTreeMap::from([(UserKey::of("u"), vec![a])])
    }

    #[test]
    fn a_later_round_keeps_the_earlier_events_still_in_the_window_once_and_adds_up_the_counts() {
        let previous = Snapshot {
            login_events: vec![event("old", 0), event("kept", 4)],
            event_activity: activity(2, 4),
            read_from: Some(at(-6)),
            read_until: Some(at(5)),
            ..Snapshot::default()
        };
        let mut later = Snapshot {
            login_events: vec![event("new", 6), event("kept", 4)],
            event_activity: activity(1, 6),
            read_from: Some(at(5)),
            read_until: Some(at(7)),
            ..Snapshot::default()
        };
        // The window of the later round: (1, 7].
        let window = Window { start: at(1), end: at(7), length: std::time::Duration::from_secs(300) };
        later.carry_from(&previous, &window);
        let mut ids: Vec<&str> = later.login_events.iter().map(|e| e.sys_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["kept", "new"], "the event that left the window is dropped, none is doubled");
        let counted = &later.event_activity[&UserKey::of("u")];
        assert_eq!((counted[0].count, counted[0].last), (3, Some(at(6))));
        assert_eq!(later.read_from, Some(at(-6)), "the counts cover everything since the first round's start");
    }
}
