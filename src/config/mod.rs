//! The configuration file: raw TOML parsed once, then validated into a [`Config`] the rest of the
//! code can trust. Validation names every problem with its key and what is expected, not just the
//! first. Secrets may come inline, from a `*_file` (what systemd's `LoadCredential=` provides) or
//! from an environment variable; they are held as [`SecretString`](secrecy::SecretString) and never printed.
//!
//! Every rule about a configuration value lives here, one file per section:
//!
//! - `mod.rs`: [`Config`], [`Config::load`] / [`Config::parse`], [`ConfigError`], [`Environment`];
//! - `instance.rs`: `[instance]` ([`InstanceConfig`], [`parse_instance_url`]);
//! - `check.rs`: `[check]` ([`CheckConfig`]), the `--window` argument ([`parse_window`]) and the cron
//!   schedule rule ([`validate_schedule`]);
//! - `email.rs`: `[email]` ([`EmailConfig`], [`TlsMode`], [`SendPolicy`], [`SmtpCredentials`]);
//! - `state.rs`, `log.rs`, `metrics.rs`: `[state]`, `[log]` ([`LogConfig`]), `[metrics]` ([`MetricsConfig`]);
//! - `secret.rs`: inline / `*_file` / `*_env` secrets, the same for every section.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

mod check;
mod email;
mod instance;
mod log;
mod metrics;
mod secret;
mod state;

pub use check::{
    CheckConfig, DEFAULT_ISSUE_SOURCE, DEFAULT_SCHEDULE, DEFAULT_WINDOW, parse_window, validate_schedule,
    validate_window,
};
pub use email::{DEFAULT_SMTP_TIMEOUT, EmailConfig, SendPolicy, SmtpCredentials, TlsMode};
pub use instance::{InstanceConfig, parse_instance_url};
pub use log::{LogConfig, LogFormat};
pub use metrics::MetricsConfig;
pub use state::DEFAULT_STATE_DIRECTORY;

/// The default config path, overridden by `--config` or `$MIDWATCH_CONFIG`.
pub const DEFAULT_PATH: &str = "/etc/midwatch/midwatch.toml";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    instance: Option<instance::RawInstance>,
    #[serde(default)]
    check: check::RawCheck,
    #[serde(default)]
    state: state::RawState,
    #[serde(default)]
    log: log::RawLog,
    #[serde(default)]
    metrics: metrics::RawMetrics,
    email: Option<email::RawEmail>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub instance: InstanceConfig,
    pub check: CheckConfig,
    pub state_directory: PathBuf,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    /// `None` when the file has no `[email]` section: no email is sent.
    pub email: Option<EmailConfig>,
}

/// Every problem found in a config file, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| format!("{}: {p}", .source_name)).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<String>,
}

/// Where secrets that are not inline come from; tests pass their own.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
}

/// The process environment and file system.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            problems: vec![format!(
                "cannot read the config file ({e}); pass --config PATH or set MIDWATCH_CONFIG \
                 (config/midwatch.example.toml documents every key)"
            )],
        })?;
        Config::parse(&name, &text, &ProcessEnvironment)
    }

    /// Parses and validates TOML text.
    pub fn parse(source_name: &str, text: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError { source_name: source_name.to_string(), problems };
        let raw: RawConfig = toml::from_str(text).map_err(|e| fail(vec![e.to_string().trim_end().to_string()]))?;
        let mut problems = Vec::new();
        let instance = raw.instance.unwrap_or_default().validate(env, &mut problems);
        let check = raw.check.validate(&mut problems);
        let log = raw.log.validate(&mut problems);
        let metrics = raw.metrics.validate(&mut problems);
        let email = raw.email.and_then(|e| e.validate(env, &mut problems));
        let state_directory = raw.state.directory(env);
        match (instance, check, log) {
            (Some(instance), Some(check), Some(log)) if problems.is_empty() => {
                Ok(Config { instance, check, state_directory, log, metrics, email })
            }
            _ => Err(fail(problems)),
        }
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn duration_key(key: &str, value: Option<&str>, default: Duration, problems: &mut Vec<String>) -> Option<Duration> {
    match value {
        None => Some(default),
        Some(v) => humantime::parse_duration(v)
            .map_err(|e| {
                problems.push(format!("{key} = \"{v}\" is not a duration ({e}): expected e.g. \"30s\", \"5m\", \"4h\""))
            })
            .ok(),
    }
}

fn int_key(key: &str, value: Option<i64>, default: i64, min: i64, max: i64, problems: &mut Vec<String>) -> Option<i64> {
    let v = value.unwrap_or(default);
    if (min..=max).contains(&v) {
        Some(v)
    } else {
        problems.push(format!("{key} = {v} is out of range: expected {min} to {max}"));
        None
    }
}

#[cfg(test)]
mod tests;
