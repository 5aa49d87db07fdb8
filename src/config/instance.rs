//! `[instance]`: which ServiceNow instance, how to sign in, and how to talk to it.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::secret::resolve_secret;
use super::{Environment, duration_key, int_key, is_loopback};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
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

impl RawInstance {
    pub(super) fn validate(self, env: &dyn Environment, problems: &mut Vec<String>) -> Option<InstanceConfig> {
        let raw = self;
        let url = match raw.url.as_deref() {
            None => {
                problems.push("[instance] url is required, e.g. url = \"https://acme.service-now.com\"".into());
                None
            }
            Some(u) => parse_instance_url(u).map_err(|p| problems.push(format!("[instance] url {p}"))).ok(),
        };
        match raw.auth.as_deref() {
            None | Some("basic") => {}
            Some(other) => problems
                .push(format!("[instance] auth = \"{other}\" is not supported by this version: expected \"basic\"")),
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
