//! `midwatch demo --until-ok`: the remediation loop on the demo's data, in simulated time.
//!
//! A full check records the five findings; then `check --user midserver2 --until-ok` runs against the same
//! simulated instance with a round every simulated minute. midserver2's MID Server keeps retrying with the
//! wrong password until, after the second round, an administrator unlocks the account and fixes the
//! password; the next round sees it log in, ends the watch clear, and resolves midserver2's record.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use midwatch_sim::FakeInstance;

use midwatch_sim::edits::{SyseventRow, fix_midserver2, record_login_event};

use super::note;
use crate::config::Config;
use crate::cycle::{CheckOptions, Cycle, Outcome};
use crate::domain::Watched;
use crate::domain::{Scope, Selection};
use crate::snow::Client;
use crate::watch::{DEFAULT_EVERY, DEFAULT_WINDOW, Ticks, Wake};

/// The round after which midserver2 is fixed (round 1 is the watch's first, before any tick).
const FIXED_AFTER: u32 = 2;
/// The watch gives up after this many rounds (it ends clear before).
const ROUNDS: u32 = 10;

/// The watch's clock: a round every simulated minute; before each, the simulated MID Server tries again.
struct SimulatedMinutes<'a> {
    instance: &'a FakeInstance,
    start: DateTime<Utc>,
    round: u32,
}

impl Ticks for SimulatedMinutes<'_> {
    async fn next(&mut self) -> Wake {
        self.round += 1;
        if self.round >= ROUNDS {
            return Wake::TimedOut;
        }
        let at = self.start + Duration::minutes(i64::from(self.round));
        let tried = at - Duration::seconds(20);
        // This tick starts round `self.round + 1`.
        if self.round >= FIXED_AFTER {
            self.instance.edit(|tables| fix_midserver2(tables, tried));
        } else {
            retry_with_the_wrong_password(self.instance, tried, self.round);
        }
        self.instance.set_clock(at);
        Wake::Round(at)
    }
}

/// midserver2's MID Server tries to log in at `at` with the password the account no longer accepts.
fn retry_with_the_wrong_password(instance: &FakeInstance, at: DateTime<Utc>, n: u32) {
    let sys_id = format!("e7e7fffe{n:024x}");
    let failed = SyseventRow { sys_id: &sys_id, name: "login.failed", user: "midserver2", parm2: "10.20.30.41", at };
    instance.edit(|tables| record_login_event(tables, &failed));
}

/// The full check, then the watch of midserver2; `say` gets each round's line. The outcome is the watch's.
pub(super) async fn run(
    config: &Config,
    client: &Client,
    instance: &FakeInstance,
    now: DateTime<Utc>,
    say: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<(Outcome, Watched)> {
    let first = Cycle::new(config, client, &CheckOptions::from_config(config)).check(now).await?;
    note(&format!("a full check first: {}", crate::escape::clean(&first.report.status_line())));
    note(&first.write_back.summary());
    note(
        "now `check --user midserver2 --until-ok`, a round every (simulated) minute; midserver2 is unlocked and its \
         password fixed after round 2",
    );
    let mut opts = CheckOptions::from_config(config);
    opts.scope =
        Scope::of(Selection { users: BTreeSet::from(["midserver2".to_string()]), mid_servers: BTreeSet::new() });
    opts.window = DEFAULT_WINDOW;
    let start = now + Duration::minutes(1);
    retry_with_the_wrong_password(instance, start - Duration::seconds(20), 0);
    instance.set_clock(start);
    let mut ticks = SimulatedMinutes { instance, start, round: 0 };
    Ok(crate::watch::watch(Cycle::new(config, client, &opts), DEFAULT_EVERY, start, &mut ticks, say).await?)
}
