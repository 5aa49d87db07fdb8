//! A later round of `check --until-ok` reads only the events after the previous round's; what the previous
//! round read and is still inside the window is carried over, so that the round judges the whole window.

use std::collections::BTreeMap;

use super::{LoginHistory, Snapshot, Window};

impl Snapshot {
    /// Adds to this snapshot (read after `previous.read_until`) what `previous` read that is still inside
    /// `window`: its login events and login history rows. The event counts are added up: they count every
    /// event since the watch began (a count cannot be taken back when its events leave the window).
    pub(crate) fn carry_from(&mut self, previous: &Snapshot, window: &Window) {
        let known: std::collections::BTreeSet<_> = self.login_events.iter().map(|e| e.sys_id.clone()).collect();
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
            let mut seen: BTreeMap<_, ()> = rows.iter().map(|r| ((r.user.clone(), r.created_on), ())).collect();
            for r in old.iter().filter(|r| window.contains(r.created_on)) {
                if seen.insert((r.user.clone(), r.created_on), ()).is_none() {
                    rows.push(r.clone());
                }
            }
        }
    }
}
