//! `[instance]`: which ServiceNow instance, how to sign in, and how to talk to it.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::{Host, Url};

use super::duration::{Bounded, KEY_EXAMPLES};
use super::secret::{Secret, SecretSource};
use super::{Environment, check_ca_file, int_key, is_loopback_host, without_userinfo};
use crate::snow::auth::{Credentials, OAuthClient};

/// `[instance] timeout`: its default and bounds.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const TIMEOUTS: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(600);

#[derive(Debug, Deserialize, Default)]
pub(super) struct RawInstance {
    url: Option<String>,
    name: Option<String>,
    auth: Option<String>,
    user: Option<String>,
    password: Option<SecretString>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    timeout: Option<String>,
    page_size: Option<i64>,
    concurrency: Option<i64>,
    proxy: Option<String>,
    ca_file: Option<PathBuf>,
    batch: Option<bool>,
}

/// A validated `[instance]` section. `Debug` shows no secret (password, client secret) and no password in
/// the proxy URL.
#[derive(Clone)]
pub struct InstanceConfig {
    pub(crate) url: Url,
    /// The short name used in reports (`acme` for `https://acme.service-now.com`).
    pub name: String,
    /// How midwatch signs in (`auth` and its keys).
    pub auth: Credentials,
    pub timeout: Duration,
    pub(crate) page_size: u32,
    pub concurrency: usize,
    pub(crate) proxy: Option<Url>,
    pub ca_file: Option<PathBuf>,
    /// Write `ecc_agent_issue` through the Batch API (falls back to one request per record).
    pub batch: bool,
    /// Where each secret of `auth` came from and its stray characters (never the secret), for the message of
    /// refused credentials.
    pub(crate) secret_notes: Vec<String>,
}

impl std::fmt::Debug for InstanceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let InstanceConfig { url, name, auth, timeout, page_size, concurrency, proxy, ca_file, batch, secret_notes } =
            self;
        f.debug_struct("InstanceConfig")
            .field("url", &url.as_str())
            .field("name", name)
            .field("auth", auth)
            .field("timeout", timeout)
            .field("page_size", page_size)
            .field("concurrency", concurrency)
            .field("proxy", &proxy.as_ref().map(|p| without_userinfo(p.as_str())))
            .field("ca_file", ca_file)
            .field("batch", batch)
            .field("secret_notes", secret_notes)
            .finish()
    }
}

impl RawInstance {
    pub(super) fn validate(
        mut self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<InstanceConfig> {
        let url = match self.url.as_deref() {
            None => {
                problems.push("[instance] url is required, e.g. url = \"https://acme.service-now.com\"".into());
                None
            }
            Some(u) => parse_instance_url(u).map_err(|p| problems.push(format!("[instance] url {p}"))).ok(),
        };
        let auth = self.credentials(env, problems, warnings);
        let timeout = Bounded::new(TIMEOUTS, KEY_EXAMPLES, &|_| "[instance] timeout must be between 1s and 10m".into())
            .key_or("[instance] timeout", self.timeout.as_deref(), DEFAULT_TIMEOUT, problems);
        let page_size = int_key("[instance] page_size", self.page_size, 1000, 1..=10_000, problems);
        let concurrency = int_key("[instance] concurrency", self.concurrency, 4, 1..=16, problems);
        let proxy = self.proxy.as_deref().and_then(|p| parse_proxy(p).map_err(|e| problems.push(e)).ok());
        if let Some(ca) = &self.ca_file
            && let Err(e) = check_ca_file("[instance] ca_file", ca, env)
        {
            problems.push(e);
        }
        let url = url?;
        let name = self.name.unwrap_or_else(|| short_name(&url));
        let (auth, secret_notes) = auth?;
        Some(InstanceConfig {
            url,
            name,
            auth,
            timeout: timeout?,
            page_size: u32::try_from(page_size?).ok()?,
            concurrency: usize::try_from(concurrency?).ok()?,
            proxy,
            ca_file: self.ca_file,
            batch: self.batch.unwrap_or(true),
            secret_notes,
        })
    }
}

/// The values `[instance] auth` takes.
const AUTH_METHODS: &str = "\"basic\", \"oauth_client_credentials\" or \"oauth_password\"";

impl RawInstance {
    /// `auth` and the keys it needs: `user` and a password for `basic`; `client_id` and a client secret for
    /// `oauth_client_credentials`; all four for `oauth_password`. A key the method does not use is refused, so
    /// that a half-edited file does not sign in differently than its author thinks. With the credentials, the
    /// note of each secret ([`Secret::note`]).
    fn credentials(
        &mut self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<(Credentials, Vec<String>)> {
        let method = self.auth.clone().unwrap_or_else(|| "basic".into());
        let (user_keys, client_keys) = match method.as_str() {
            "basic" => (true, false),
            "oauth_client_credentials" => (false, true),
            "oauth_password" => (true, true),
            other => {
                let hint = if other.to_ascii_lowercase().contains("oauth") {
                    ": OAuth is \"oauth_client_credentials\" (Washington DC or later) or \"oauth_password\""
                } else {
                    ""
                };
                problems.push(format!("[instance] auth = \"{other}\" is not known: expected {AUTH_METHODS}{hint}"));
                return None;
            }
        };
        let unused = |key: &str, why: &str| format!("[instance] {key} is not used with auth = \"{method}\": {why}");
        if !user_keys {
            let why = "the calls run as the OAuth Application User named on the instance's Application Registry \
                       entry; remove it";
            for (key, set) in [
                ("user", self.user.is_some()),
                ("password", self.password.is_some()),
                ("password_file", self.password_file.is_some()),
                ("password_env", self.password_env.is_some()),
            ] {
                if set {
                    problems.push(unused(key, why));
                }
            }
        }
        if !client_keys {
            let why = "it belongs to OAuth (auth = \"oauth_client_credentials\" or \"oauth_password\"); remove it, \
                       or set auth";
            for (key, set) in [
                ("client_id", self.client_id.is_some()),
                ("client_secret", self.client_secret.is_some()),
                ("client_secret_file", self.client_secret_file.is_some()),
                ("client_secret_env", self.client_secret_env.is_some()),
            ] {
                if set {
                    problems.push(unused(key, why));
                }
            }
        }
        let account = user_keys.then(|| self.account(env, problems, warnings));
        let client = client_keys.then(|| self.client(env, problems, warnings));
        match (account, client) {
            (Some(account), None) => {
                let (user, password) = account?;
                Some((Credentials::Basic { user, password: password.value }, vec![password.note]))
            }
            (None, Some(client)) => {
                let (client, note) = client?;
                Some((Credentials::OAuthClientCredentials { client }, vec![note]))
            }
            (Some(account), Some(client)) => {
                let ((user, password), (client, note)) = (account?, client?);
                Some((Credentials::OAuthPassword { client, user, password: password.value }, vec![note, password.note]))
            }
            (None, None) => None,
        }
    }

    /// `user` and one password source.
    fn account(
        &mut self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<(String, Secret)> {
        let user = match self.user.take().filter(|u| !u.trim().is_empty()) {
            Some(u) => Some(u),
            None => {
                problems.push("[instance] user is required: the ServiceNow account midwatch signs in as".into());
                None
            }
        };
        let password = SecretSource {
            key: "[instance] password",
            inline: self.password.take(),
            file: self.password_file.take(),
            env_var: self.password_env.take(),
        }
        .resolve(env, problems, warnings);
        Some((user?, password?))
    }

    /// `client_id` and one client secret source, and the secret's note.
    fn client(
        &mut self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<(OAuthClient, String)> {
        let id = match self.client_id.take().map(|id| id.trim().to_string()).filter(|id| !id.is_empty()) {
            Some(id) => Some(id),
            None => {
                problems.push(
                    "[instance] client_id is required with OAuth: the Client ID of the instance's Application \
                     Registry entry (System OAuth > Application Registry)"
                        .into(),
                );
                None
            }
        };
        let secret = SecretSource {
            key: "[instance] client_secret",
            inline: self.client_secret.take(),
            file: self.client_secret_file.take(),
            env_var: self.client_secret_env.take(),
        }
        .resolve(env, problems, warnings);
        let secret = secret?;
        Some((OAuthClient { id: id?, secret: secret.value }, secret.note))
    }
}

/// The name reports use when `[instance] name` is not set: the first label of a host name (`acme` for
/// `acme.service-now.com`), or the whole address when the host is an IP address.
fn short_name(url: &Url) -> String {
    match url.host() {
        Some(Host::Domain(host)) => host.split('.').next().unwrap_or(host).to_string(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        None => "instance".to_string(),
    }
}

/// `https://` anywhere, `http://` only for loopback; no path, query or credentials. What is refused is said
/// in words, with the URL to write instead, built from what was written (`mycorp` →
/// `https://mycorp.service-now.com`; a path removed).
pub(crate) fn parse_instance_url(u: &str) -> Result<Url, String> {
    let url = Url::parse(u.trim()).map_err(|e| not_a_url(u, e))?;
    if url.host_str().is_none_or(str::is_empty) {
        // `mycorp.service-now.com:443` reads as the scheme `mycorp.service-now.com`.
        return Err(format!("\"{}\" has no host name: write \"{}\"", without_userinfo(u), example_instance_url(u)));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials: set [instance] user and password_file instead".into());
    }
    let root = |scheme: &str| {
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!("{scheme}://{}{port}", url.host_str().unwrap_or_default())
    };
    if url.path() != "/" && !url.path().is_empty() || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "\"{u}\" must be the instance root, without a path: write \"{}\" (midwatch adds /api/now/… itself)",
            root(url.scheme())
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(url),
        "http" => Err(format!(
            "\"{u}\" uses plain http: only https is accepted, except for loopback addresses (127.0.0.1, ::1, \
             localhost): write \"{}\"",
            root("https")
        )),
        other => Err(format!("\"{u}\" has scheme {other}: expected https, e.g. \"{}\"", root("https"))),
    }
}

/// Why `u` is not a URL, in words, and the instance URL it most likely means.
fn not_a_url(u: &str, e: url::ParseError) -> String {
    use url::ParseError as P;
    let shown = without_userinfo(u);
    let example = example_instance_url(u);
    let why = match e {
        P::RelativeUrlWithoutBase => {
            let needs = if u.contains('.') { "https:// in front" } else { "https:// and the whole host name" };
            return format!("\"{shown}\" is not a URL (it needs {needs}): write \"{example}\"");
        }
        P::EmptyHost => "has no host name".to_string(),
        P::InvalidPort => "has a port that is not a number from 1 to 65535".to_string(),
        P::InvalidDomainCharacter | P::IdnaError => "has a character no host name can hold".to_string(),
        P::InvalidIpv4Address | P::InvalidIpv6Address => "has an IP address that is not valid".to_string(),
        other => format!("is not a URL ({other})"),
    };
    format!("\"{shown}\" {why}: expected e.g. \"{example}\"")
}

/// The instance URL `u` most likely means: `https://` and its host name, with `.service-now.com` after a
/// bare instance name (`mycorp`); `https://acme.service-now.com` when no host name can be read from it.
fn example_instance_url(u: &str) -> String {
    let rest = u.trim().split_once("://").map_or(u.trim(), |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default().to_ascii_lowercase();
    let host = host.split(':').next().unwrap_or_default();
    let label = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !host.split('.').all(label) {
        "https://acme.service-now.com".to_string()
    } else if host.contains('.') {
        format!("https://{host}")
    } else {
        format!("https://{host}.service-now.com")
    }
}

/// An `http://` or `https://` proxy: the schemes the HTTP client is built with (it has no SOCKS support).
fn parse_proxy(p: &str) -> Result<Url, String> {
    let shown = without_userinfo(p);
    let example = "expected e.g. \"http://proxy.corp:3128\"";
    let url = Url::parse(p).map_err(|e| format!("[instance] proxy \"{shown}\" is not a URL ({e}): {example}"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        "http" | "https" => Err(format!("[instance] proxy \"{shown}\" has no host: {example}")),
        other => Err(format!(
            "[instance] proxy \"{shown}\" has scheme {other}: midwatch talks to a proxy over http:// or https:// \
             only (it is built without SOCKS support); {example}, or unset proxy"
        )),
    }
}
