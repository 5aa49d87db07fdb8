//! The configuration file: raw TOML parsed once, then validated into a [`Config`] the rest of the
//! code can trust. Validation names every problem with its key and what is expected, not just the
//! first. Secrets may come inline, from a `*_file` (what systemd's `LoadCredential=` provides) or
//! from an environment variable; they are held as [`SecretString`](secrecy::SecretString) and never printed.
//!
//! Every rule about a configuration value lives here, one file per section:
//!
//! - `mod.rs`: [`Config`], `Config::load` / [`Config::parse`], [`ConfigError`], [`Environment`];
//! - `instance.rs`: `[instance]` (`InstanceConfig`, `parse_instance_url`);
//! - `check.rs`: `[check]` (`CheckConfig`), the `--window` argument (`parse_window`) and the cron
//!   schedule rule (`validate_schedule`);
//! - `email.rs`: `[email]` ([`EmailConfig`], [`TlsMode`], [`SendPolicy`], [`SmtpCredentials`]);
//! - `alertmanager.rs`: `[alertmanager]` (`AlertmanagerConfig`: the peers, their credentials and CA);
//! - `state.rs`, `log.rs`, `metrics.rs`: `[state]`, `[log]` (`LogConfig`), `[metrics]` (`MetricsConfig`);
//! - `secret.rs`: inline / `*_file` / `*_env` secrets (`SecretSource`), read one way for every section (a
//!   byte-order mark and one line ending removed; a relative file in `$CREDENTIALS_DIRECTORY`, then next to the
//!   configuration file);
//! - `duration.rs`: a humantime duration within bounds (`Bounded`), the same for every duration key and for
//!   `--window`, `--timeout` and `--every`.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use alertmanager::RawAlertmanager;
use check::RawCheck;
use email::RawEmail;
use instance::RawInstance;
use log::RawLog;
use metrics::RawMetrics;
use raw::RawFile;
use state::RawState;

mod alertmanager;
mod check;
mod duration;
mod email;
mod instance;
mod log;
mod metrics;
mod raw;
mod secret;
mod state;

pub(crate) use alertmanager::{AlertmanagerConfig, PeerAuth};
pub(crate) use check::{CheckConfig, parse_timeout, parse_window, validate_schedule};
// The defaults the demo's config is built from (a config file gets them when it leaves a key out).
#[cfg(any(test, feature = "demo"))]
pub(crate) use check::{DEFAULT_ISSUE_SOURCE, DEFAULT_SCHEDULE, DEFAULT_TIMEOUT, DEFAULT_WINDOW};
pub(crate) use duration::Bounded;
pub use email::{EmailConfig, SendPolicy, SmtpCredentials, TlsMode};
pub(crate) use instance::InstanceConfig;
#[cfg(any(test, feature = "demo"))]
pub(crate) use instance::parse_instance_url;
pub(crate) use log::{LogConfig, LogFormat};
pub(crate) use metrics::MetricsConfig;

/// The default config path, overridden by `--config` or `$MIDWATCH_CONFIG`.
pub(crate) const DEFAULT_PATH: &str = "/etc/midwatch/midwatch.toml";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub instance: InstanceConfig,
    pub check: CheckConfig,
    pub state_directory: PathBuf,
    pub(crate) log: LogConfig,
    pub metrics: MetricsConfig,
    /// `None` when the file has no `[email]` section: no email is sent.
    pub email: Option<EmailConfig>,
    /// `None` when the file has no `[alertmanager]` section: no alert is posted.
    pub(crate) alertmanager: Option<AlertmanagerConfig>,
    /// What is valid but unwise (a secret file others can read); `config check` prints them, `check` and `run`
    /// log them when they load the file.
    pub(crate) warnings: Vec<String>,
}

/// Every problem found in a config file, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| format!("{}: {p}", .source_name)).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub(crate) source_name: String,
    pub(crate) problems: Vec<String>,
}

/// Where secrets that are not inline come from, and the files the config names; tests pass their own.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
    /// A file's permission bits, when it has any (`None` where they cannot be read).
    fn file_mode(&self, path: &Path) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).ok().map(|m| m.permissions().mode())
    }
    /// A file that need not be text (`[instance] ca_file`).
    fn read_bytes(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.read_file(path).map(String::into_bytes)
    }
    /// The configuration file's directory, where a relative `*_file` secret is looked up after
    /// `$CREDENTIALS_DIRECTORY`; `None` when the text did not come from a file.
    fn config_directory(&self) -> Option<PathBuf> {
        None
    }
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

    fn read_bytes(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// The process environment for the configuration file in `directory`.
struct BesideFile {
    directory: PathBuf,
}

impl Environment for BesideFile {
    fn var(&self, name: &str) -> Option<String> {
        ProcessEnvironment.var(name)
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        ProcessEnvironment.read_file(path)
    }

    fn read_bytes(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        ProcessEnvironment.read_bytes(path)
    }

    fn config_directory(&self) -> Option<PathBuf> {
        Some(self.directory.clone())
    }
}

impl Config {
    /// Logs [`Config::warnings`] once, where the file is loaded for a check or the service.
    pub(crate) fn log_warnings(&self) {
        for warning in &self.warnings {
            tracing::warn!("{}", crate::escape::Shown(warning));
        }
    }

    /// Reads and validates the file at `path`.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            problems: vec![format!(
                "cannot read the config file ({e}); pass --config PATH or set MIDWATCH_CONFIG \
                 (config/midwatch.example.toml documents every key)"
            )],
        })?;
        // `midwatch.toml` given as a bare name is in the working directory; a relative secret file is found
        // beside it wherever the process runs from later.
        let directory = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            None => std::env::current_dir().unwrap_or_default(),
        };
        Config::parse(&name, &text, &BesideFile { directory })
    }

    /// Parses and validates TOML text, naming every problem of the file: unknown sections and keys, values
    /// of the wrong type, and every value a section's rules refuse.
    pub fn parse(source_name: &str, text: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError { source_name: source_name.to_string(), problems };
        let mut file = RawFile::parse(text).map_err(|problem| fail(vec![problem]))?;
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let w = &mut warnings;
        let p = &mut problems;
        let instance = file.section::<RawInstance>("instance", p).validate(p, |raw, p| raw.validate(env, p, w));
        let check = file.section::<RawCheck>("check", p).validate(p, RawCheck::validate);
        let email = file.section::<RawEmail>("email", p);
        let email = if email.is_present() { email.validate(p, |raw, p| raw.validate(env, p, w)) } else { None };
        let alertmanager = file.section::<RawAlertmanager>("alertmanager", p);
        let alertmanager =
            if alertmanager.is_present() { alertmanager.validate(p, |raw, p| raw.validate(env, p, w)) } else { None };
        let state_directory = file.section::<RawState>("state", p).validate(p, |raw, _| raw.directory(env));
        let log = file.section::<RawLog>("log", p).validate(p, RawLog::validate);
        let metrics = file.section::<RawMetrics>("metrics", p).validate(p, RawMetrics::validate);
        file.finish(p);
        match (instance, check, log) {
            (Some(instance), Some(check), Some(log)) if problems.is_empty() => {
                Ok(Config { instance, check, state_directory, log, metrics, email, alertmanager, warnings })
            }
            _ => Err(fail(problems)),
        }
    }
}

/// Whether a host (a URL's host, with or without the brackets of an IPv6 address) is this machine: an address
/// in 127.0.0.0/8, `::1`, or `localhost`. The host is parsed here rather than taken from [`url::Url::host`],
/// which for a scheme the `url` crate does not know (`smtp://`) returns every host as an opaque name.
fn is_loopback_host(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// A URL as text, with any `user:password@` replaced by `…@`, for messages; also when the scheme is missing
/// (`user:password@mycorp`).
fn without_userinfo(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        let authority_end = u.find(['/', '?', '#']).unwrap_or(u.len());
        return match u[..authority_end].rfind('@') {
            Some(at) => format!("…@{}", &u[at + 1..]),
            None => u.to_string(),
        };
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
        None => u.to_string(),
    }
}

/// An extra CA (`[instance] ca_file`, `[email] ca_file`, `[alertmanager] ca_file`, named by `key`) must be a PEM file holding at least one
/// certificate; every certificate of a bundle is trusted. Checked here, offline: the TLS clients silently trust
/// nothing extra when a PEM file holds no certificate. (Whether a decoded block is a
/// well-formed X.509 certificate is left to the client, which refuses it when it is built.)
fn check_ca_file(key: &str, path: &Path, env: &dyn Environment) -> Result<(), String> {
    let convert = "expected the CA certificate in PEM (-----BEGIN CERTIFICATE----- blocks); convert a DER file \
                   with `openssl x509 -inform der -in ca.der -out ca.pem`";
    let bytes = env.read_bytes(path).map_err(|e| format!("{key} {} cannot be read: {e}", path.display()))?;
    match reqwest::Certificate::from_pem_bundle(&bytes) {
        Ok(certificates) if !certificates.is_empty() => Ok(()),
        Ok(_) => Err(format!("{key} {} holds no PEM certificate: {convert}", path.display())),
        Err(_) => Err(format!(
            "{key} {} is not a valid PEM certificate file (a certificate block does not decode): \
             {convert}",
            path.display()
        )),
    }
}

/// An integer key, `default` when absent; a value outside `range` is named in `problems`.
fn int_key(
    key: &str,
    value: Option<i64>,
    default: i64,
    range: RangeInclusive<i64>,
    problems: &mut Vec<String>,
) -> Option<i64> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Some(v)
    } else {
        problems.push(format!("{key} = {v} is out of range: expected {} to {}", range.start(), range.end()));
        None
    }
}

#[cfg(test)]
mod tests;
