//! What the service adds to a cycle's alerts (`[alertmanager]`): an alert lasts three of its schedule's
//! intervals, not three windows, and a cycle that fails raises `MidwatchCheckFailed` from here, where the
//! failure is seen.

use chrono::Utc;

use super::{CycleFailed, Service, schedule};
use crate::alerts::AlertsOutcome;
use crate::cycle::{CheckOptions, Cycle, Outcome};

impl Service {
    /// The options of the next cycle: the config with the command line's overrides, and the alerts' lifetime
    /// from the schedule.
    pub(super) fn check_options(&self) -> CheckOptions {
        let mut opts = CheckOptions::new(&self.config, &self.overrides);
        let check = &self.config.check;
        opts.alert_lifetime = schedule::alert_lifetime(&check.schedule, check.jitter).unwrap_or(opts.alert_lifetime);
        opts
    }

    /// `MidwatchCheckFailed` for a cycle that did not complete (nothing for one that did): its summary is the
    /// status line the cycle would have printed as a `check`.
    pub(super) async fn alert_failure(&self, result: &Result<Outcome, CycleFailed>) -> Option<AlertsOutcome> {
        let Err(e) = result else { return None };
        let line = format!("MIDWATCH UNKNOWN - {e} on {}", crate::escape::clean(&self.config.instance.name));
        let opts = self.check_options();
        let cycle = Cycle::new(&self.config, &self.client, &opts);
        cycle.failed(&line, Utc::now(), cycle.deadline()).await
    }
}
