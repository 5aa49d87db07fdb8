//! The configuration file: raw TOML parsed once, then validated into a [`Config`] the rest of the
//! code can trust. Validation names every problem with its key and what is expected, not just the
//! first. Secrets may come inline, from a `*_file` (what systemd's `LoadCredential=` provides) or
//! from an environment variable; they are held as [`SecretString`] and never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::domain::MIN_WINDOW;
use crate::domain::MessageStyle;

/// The default config path, overridden by `--config` or `$MIDWATCH_CONFIG`.
pub const DEFAULT_PATH: &str = "/etc/midwatch/midwatch.toml";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    instance: Option<RawInstance>,
    #[serde(default)]
    check: RawCheck,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    metrics: RawMetrics,
    email: Option<crate::notify::RawEmail>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    url: Option<String>,
    name: Option<String>,
    auth: Option<String>,
    user: Option<String>,
    password: Option<SecretString>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    timeout: Option<String>,
    page_size: Option<i64>,
    concurrency: Option<i64>,
    proxy: Option<String>,
    ca_file: Option<PathBuf>,
    batch: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    window: Option<String>,
    schedule: Option<String>,
    messages: Option<String>,
    write_issues: Option<bool>,
    issue_source: Option<String>,
    jitter: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    directory: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    textfile: Option<PathBuf>,
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
    pub email: Option<crate::notify::EmailConfig>,
}

#[derive(Debug, Clone)]
pub struct InstanceConfig {
    pub url: Url,
    /// The short name used in reports (`acme` for `https://acme.service-now.com`).
    pub name: String,
    pub user: String,
    pub password: SecretString,
    pub timeout: Duration,
    pub page_size: u32,
    pub concurrency: usize,
    pub proxy: Option<Url>,
    pub ca_file: Option<PathBuf>,
    /// Write `ecc_agent_issue` through the Batch API (falls back to one request per record).
    pub batch: bool,
}

#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub window: Duration,
    pub schedule: String,
    pub messages: MessageStyle,
    pub write_issues: bool,
    pub issue_source: String,
    /// `midwatch run` waits a random delay in `0..jitter` before each scheduled cycle.
    pub jitter: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// `[metrics]`: the Prometheus textfile `midwatch run` rewrites after each cycle.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    pub textfile: Option<PathBuf>,
}

pub const DEFAULT_WINDOW: Duration = Duration::from_secs(4 * 3600);
pub const DEFAULT_SCHEDULE: &str = "0 0 */4 * * *";
pub const DEFAULT_ISSUE_SOURCE: &str = "midwatch";
pub const DEFAULT_STATE_DIRECTORY: &str = "/var/lib/midwatch";

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
        let instance = validate_instance(raw.instance.unwrap_or_default(), env, &mut problems);
        let check = validate_check(raw.check, &mut problems);
        let log = validate_log(raw.log, &mut problems);
        let metrics = validate_metrics(raw.metrics, &mut problems);
        let email = raw.email.and_then(|e| crate::notify::validate_email(e, env, &mut problems));
        // systemd's StateDirectory= sets $STATE_DIRECTORY (colon-separated if several), so one
        // config works for midwatch.service and every midwatch@%i.service.
        let state_directory = raw.state.directory.unwrap_or_else(|| {
            env.var("STATE_DIRECTORY")
                .and_then(|dirs| dirs.split(':').next().filter(|d| !d.is_empty()).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIRECTORY))
        });
        match (instance, check, log) {
            (Some(instance), Some(check), Some(log)) if problems.is_empty() => {
                Ok(Config { instance, check, state_directory, log, metrics, email })
            }
            _ => Err(fail(problems)),
        }
    }
}

fn validate_instance(raw: RawInstance, env: &dyn Environment, problems: &mut Vec<String>) -> Option<InstanceConfig> {
    let url = match raw.url.as_deref() {
        None => {
            problems.push("[instance] url is required, e.g. url = \"https://acme.service-now.com\"".into());
            None
        }
        Some(u) => parse_instance_url(u).map_err(|p| problems.push(format!("[instance] url {p}"))).ok(),
    };
    match raw.auth.as_deref() {
        None | Some("basic") => {}
        Some(other) => {
            problems.push(format!("[instance] auth = \"{other}\" is not supported by this version: expected \"basic\""))
        }
    }
    let user = match raw.user.filter(|u| !u.trim().is_empty()) {
        Some(u) => Some(u),
        None => {
            problems.push("[instance] user is required: the ServiceNow account midwatch signs in as".into());
            None
        }
    };
    let password =
        resolve_secret("[instance] password", raw.password, raw.password_file, raw.password_env, env, problems);
    let timeout = duration_key("[instance] timeout", raw.timeout.as_deref(), Duration::from_secs(30), problems);
    if timeout.is_some_and(|t| t < Duration::from_secs(1) || t > Duration::from_secs(600)) {
        problems.push("[instance] timeout must be between 1s and 10m".into());
    }
    let page_size = int_key("[instance] page_size", raw.page_size, 1000, 1, 10_000, problems);
    let concurrency = int_key("[instance] concurrency", raw.concurrency, 4, 1, 16, problems);
    let proxy = raw.proxy.as_deref().and_then(|p| {
        Url::parse(p)
            .map_err(|e| {
                problems.push(format!(
                    "[instance] proxy \"{p}\" is not a URL ({e}): expected e.g. \"http://proxy.corp:3128\""
                ))
            })
            .ok()
    });
    if let Some(ca) = &raw.ca_file
        && let Err(e) = env.read_file(ca)
    {
        problems.push(format!("[instance] ca_file {} cannot be read: {e}", ca.display()));
    }
    let url = url?;
    let name = raw.name.unwrap_or_else(|| {
        let host = url.host_str().unwrap_or("instance");
        host.split('.').next().unwrap_or(host).to_string()
    });
    Some(InstanceConfig {
        url,
        name,
        user: user?,
        password: password?,
        timeout: timeout?,
        page_size: u32::try_from(page_size?).ok()?,
        concurrency: usize::try_from(concurrency?).ok()?,
        proxy,
        ca_file: raw.ca_file,
        batch: raw.batch.unwrap_or(true),
    })
}

/// `https://` anywhere, `http://` only for loopback; no path, query or credentials.
pub fn parse_instance_url(u: &str) -> Result<Url, String> {
    let url = Url::parse(u)
        .map_err(|e| format!("\"{u}\" is not a URL ({e}): expected e.g. \"https://acme.service-now.com\""))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials: set [instance] user and password_file instead".into());
    }
    if url.path() != "/" && !url.path().is_empty() || url.query().is_some() {
        return Err(format!(
            "\"{u}\" must be the instance root, without a path: e.g. \"https://acme.service-now.com\""
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "\"{u}\" uses plain http: only https is accepted, except for loopback addresses (127.0.0.1, ::1, localhost)"
        )),
        other => Err(format!("\"{u}\" has scheme {other}: expected https")),
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

/// Exactly one of inline, `_file` and `_env`. A relative `_file` is looked up in systemd's
/// `$CREDENTIALS_DIRECTORY` when that is set.
pub(crate) fn resolve_secret(
    key: &str,
    inline: Option<SecretString>,
    file: Option<PathBuf>,
    env_name: Option<String>,
    env: &dyn Environment,
    problems: &mut Vec<String>,
) -> Option<SecretString> {
    let given = usize::from(inline.is_some()) + usize::from(file.is_some()) + usize::from(env_name.is_some());
    if given != 1 {
        problems.push(format!(
            "{key}: set exactly one of {key}_file (recommended; e.g. a systemd credential), {key}_env (an environment \
             variable's name) or {key} (inline, discouraged); {given} are set"
        ));
        return None;
    }
    if let Some(s) = inline {
        return Some(s);
    }
    if let Some(path) = file {
        let path = match (path.is_relative(), env.var("CREDENTIALS_DIRECTORY")) {
            (true, Some(dir)) => Path::new(&dir).join(path),
            _ => path,
        };
        return match env.read_file(&path) {
            Ok(s) if !s.trim_end_matches(['\r', '\n']).is_empty() => {
                Some(SecretString::from(s.trim_end_matches(['\r', '\n']).to_string()))
            }
            Ok(_) => {
                problems.push(format!("{key}_file {} is empty", path.display()));
                None
            }
            Err(e) => {
                problems.push(format!("{key}_file {} cannot be read: {e}", path.display()));
                None
            }
        };
    }
    let name = env_name.unwrap_or_default();
    match env.var(&name).filter(|v| !v.is_empty()) {
        Some(v) => Some(SecretString::from(v)),
        None => {
            problems.push(format!("{key}_env names the environment variable {name}, which is not set or empty"));
            None
        }
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

/// Refuses a window below the MID Server heartbeat interval.
pub fn validate_window(window: Duration) -> Result<Duration, String> {
    if window < MIN_WINDOW {
        Err(format!(
            "a window of {} is below the 5-minute minimum: the MID Server heartbeat runs every 5 minutes, so a \
             shorter window reports healthy MID Servers as silent",
            humantime::format_duration(window)
        ))
    } else {
        Ok(window)
    }
}

fn validate_check(raw: RawCheck, problems: &mut Vec<String>) -> Option<CheckConfig> {
    let window = duration_key("[check] window", raw.window.as_deref(), DEFAULT_WINDOW, problems)
        .and_then(|w| validate_window(w).map_err(|e| problems.push(format!("[check] window: {e}"))).ok());
    let messages = match raw.messages.as_deref() {
        None | Some("documented") => Some(MessageStyle::Documented),
        Some("instance") => Some(MessageStyle::Instance),
        Some(other) => {
            problems.push(format!("[check] messages = \"{other}\": expected \"documented\" or \"instance\""));
            None
        }
    };
    let issue_source = raw.issue_source.unwrap_or_else(|| DEFAULT_ISSUE_SOURCE.to_string());
    if !crate::snow::query::is_safe_value(&issue_source) || issue_source.len() > 40 {
        problems.push(format!(
            "[check] issue_source = \"{issue_source}\": expected 1 to 40 letters, digits, '.', '_' or '-' (it is used in queries)"
        ));
    }
    let schedule = raw.schedule.unwrap_or_else(|| DEFAULT_SCHEDULE.to_string());
    if schedule.split_whitespace().count() < 6 && !schedule.starts_with('@') {
        problems.push(format!(
            "[check] schedule = \"{schedule}\" needs 6 fields, seconds first (e.g. \"0 0 */4 * * *\" for every 4 hours)"
        ));
    } else if let Err(e) = validate_schedule(&schedule) {
        problems.push(format!("[check] schedule = \"{schedule}\" {e}"));
    }
    let jitter = duration_key("[check] jitter", raw.jitter.as_deref(), Duration::ZERO, problems);
    if jitter.is_some_and(|j| j > Duration::from_secs(24 * 3600)) {
        problems.push("[check] jitter must be at most 1d".into());
    }
    Some(CheckConfig {
        window: window?,
        schedule,
        messages: messages?,
        write_issues: raw.write_issues.unwrap_or(true),
        issue_source,
        jitter: jitter?,
    })
}

/// A cron expression as `midwatch run` schedules it (tokio-cron-scheduler: 6 or 7 fields, seconds
/// first, UTC), that fires at least once more.
pub fn validate_schedule(expression: &str) -> Result<(), String> {
    let mut job = tokio_cron_scheduler::Job::new_async(expression, |_, _| Box::pin(async {})).map_err(|_| {
        "is not a cron expression: expected 6 fields, seconds first, in UTC \
         (sec min hour day-of-month month day-of-week, e.g. \"0 0 */4 * * *\" for every 4 hours)"
            .to_string()
    })?;
    match job.job_data() {
        Ok(data) if data.next_tick == 0 => Err("never fires again".into()),
        _ => Ok(()),
    }
}

fn validate_metrics(raw: RawMetrics, problems: &mut Vec<String>) -> MetricsConfig {
    if let Some(path) = &raw.textfile
        && path.extension().is_none_or(|e| e != "prom")
    {
        problems.push(format!(
            "[metrics] textfile = \"{}\": expected a file name ending in .prom (the node_exporter textfile \
             collector reads only *.prom)",
            path.display()
        ));
    }
    MetricsConfig { textfile: raw.textfile }
}

fn validate_log(raw: RawLog, problems: &mut Vec<String>) -> Option<LogConfig> {
    let format = match raw.format.as_deref() {
        None | Some("text") => Some(LogFormat::Text),
        Some("json") => Some(LogFormat::Json),
        Some(other) => {
            problems.push(format!("[log] format = \"{other}\": expected \"text\" or \"json\""));
            None
        }
    };
    let level = raw.level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        problems.push(format!("[log] level = \"{level}\": expected error, warn, info, debug or trace"));
    }
    Some(LogConfig { format: format?, level })
}

#[cfg(test)]
mod tests;
