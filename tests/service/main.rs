//! `midwatch run`, two ways, one module each, on the helpers below.
//!
//! **In process** (`in_process`), most tests: [`midwatch::service::run`] with a channel of
//! [`midwatch::service::Event`]s that the test sends, ticks included (the configs here are scheduled
//! once a year, so the cron job stays quiet), and a log captured per test with the tokio time of each
//! line. Where a test measures the stop grace period or the jitter, tokio's clock is paused and those
//! waits pass at once.
//!
//! **As systemd runs it** (`systemd`), a few short tests: the real binary, signals sent with kill(1),
//! sd_notify datagrams on a socket the test binds, the journal's priority prefixes on a stream it names.
//!
//! `keys` parses the service's own config keys; `log` holds the log both ways capture.
//!
//! Timing is asserted from what the server saw and from the log, never from fixed sleeps; every
//! real-time wait is a poll with a generous bound, so a loaded machine slows the tests down
//! instead of failing them.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod in_process;
mod keys;
mod log;
#[path = "../support/mod.rs"]
mod support;
mod systemd;

/// Upper bound of any single real-time wait; a healthy run takes a fraction of it.
const PATIENCE: Duration = Duration::from_secs(20);
/// Never fires while a test runs (unless it runs across midnight of New Year's Eve, UTC).
const YEARLY: &str = "0 0 0 1 1 *";

/// A config for `url`; `{state}` is filled in with a private state directory.
fn config(url: &str, schedule: &str, extra: &str) -> String {
    let instance = support::instance_section(url, "20s");
    format!(
        r#"{instance}
[check]
schedule = "{schedule}"
write_issues = false

[state]
directory = "{{state}}"

[log]
level = "info,midwatch::service=debug"
{extra}
"#
    )
}

fn write_config_in(dir: &Path, config: &str) -> PathBuf {
    let path = dir.join("midwatch.toml");
    let state = dir.join("state");
    std::fs::write(&path, config.replace("{state}", &state.display().to_string())).expect("write config");
    path
}

fn is_start(line: &str, n: u64) -> bool {
    line.contains(&format!("midwatch::service: cycle {n} starting"))
}

fn is_summary(line: &str, n: u64) -> bool {
    line.contains(" INFO ") && line.contains(&format!("cycle{{n={n}}}: midwatch::service: cycle "))
}

fn is_started(line: &str) -> bool {
    line.contains("midwatch::service: midwatch ") && line.contains(" started for ")
}
