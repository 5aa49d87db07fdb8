//! Where the command line meets the config file: the switches of one cycle, and the Table API client the
//! config describes.

use std::time::Duration;

use crate::config::Config;
use crate::domain::Scope;
use crate::snow::{Client, ClientError, ClientOptions, RetryPolicy};

/// How many cycles an alert outlives the cycle that posted it, as Alertmanager's client guidance asks: a
/// cycle or two may be late or fail before the alert ends by itself.
pub(crate) const ALERT_LIFETIME_CYCLES: u32 = 3;

/// What the command line overrides of the config file (`check` and `run`; `run` never has `dry_run`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--window`, instead of `[check] window`.
    pub(crate) window: Option<Duration>,
    /// `--timeout`, instead of `[check] timeout`.
    pub(crate) timeout: Option<Duration>,
    pub(crate) dry_run: bool,
    pub(crate) no_write: bool,
    pub(crate) no_email: bool,
    pub(crate) no_alerts: bool,
    /// `--user`, `--mid-server`.
    pub(crate) scope: Scope,
}

/// The switches of one cycle: the config with the overrides applied.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub window: Duration,
    pub dry_run: bool,
    /// `--no-write` or `[check] write_issues = false`.
    pub no_write: bool,
    pub no_email: bool,
    /// `--no-alerts`: post nothing to `[alertmanager]`.
    pub no_alerts: bool,
    /// How long an alert this cycle posts lasts unless a later cycle posts it again (`endsAt` = now + this):
    /// three windows by default (a `check` does not know when it runs next; its window is taken as its
    /// interval); the service sets three intervals of its schedule.
    pub alert_lifetime: Duration,
    /// The whole cycle's deadline (`--timeout`, `[check] timeout`).
    pub timeout: Duration,
    /// Everyone the built-in job checks, or a selection (`--user`, `--mid-server`).
    pub scope: Scope,
}

impl CheckOptions {
    /// The overrides applied to the config: the one place the command line and the config file meet.
    pub(crate) fn new(config: &Config, overrides: &Overrides) -> CheckOptions {
        CheckOptions {
            window: overrides.window.unwrap_or(config.check.window),
            dry_run: overrides.dry_run,
            no_write: overrides.no_write || !config.check.write_issues,
            no_email: overrides.no_email,
            no_alerts: overrides.no_alerts,
            alert_lifetime: ALERT_LIFETIME_CYCLES * overrides.window.unwrap_or(config.check.window),
            timeout: overrides.timeout.unwrap_or(config.check.timeout),
            scope: overrides.scope.clone(),
        }
    }

    /// The config as it is, nothing overridden.
    pub fn from_config(config: &Config) -> CheckOptions {
        CheckOptions::new(config, &Overrides::default())
    }
}

/// Builds the Table API client for the configured instance.
pub fn client(config: &Config, retry: RetryPolicy) -> Result<Client, ClientError> {
    let i = &config.instance;
    Client::new(ClientOptions {
        base_url: i.url.clone(),
        auth: i.auth.clone(),
        timeout: i.timeout,
        page_size: i.page_size,
        concurrency: i.concurrency,
        retry,
        proxy: i.proxy.clone(),
        extra_ca: i.ca_file.clone(),
    })
    .map(|client| client.noting_secrets(&i.secret_notes))
}
