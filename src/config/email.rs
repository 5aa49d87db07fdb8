//! `[email]`: the SMTP server, its TLS mode and credentials, the sender and recipients, and when a cycle sends
//! an email. `notify` takes the validated [`EmailConfig`]; this module knows nothing of sending.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use super::duration::Bounded;
use super::secret::SecretSource;
use super::{Environment, check_ca_file, is_loopback_host, without_userinfo};

/// The default SMTP timeout (connection and each command).
pub(crate) const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a message may wait in the outbox by default before it is dropped: a relay down for longer would
/// otherwise receive days of stale notifications in one burst when it returns.
pub(crate) const DEFAULT_OUTBOX_MAX_AGE: Duration = Duration::from_secs(3 * 24 * 3600);

/// How many messages the outbox holds by default; the oldest beyond it are dropped.
pub(crate) const DEFAULT_OUTBOX_MAX_MESSAGES: usize = 50;

/// The bounds of `[email] timeout`.
const SMTP_TIMEOUTS: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(600);

/// The bounds of `[email] outbox_max_age` and `remind_every`, and of `outbox_max_messages`.
const HOURS_TO_DAYS: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(3600)..=Duration::from_secs(90 * 24 * 3600);
const OUTBOX_MESSAGES_RANGE: std::ops::RangeInclusive<i64> = 1..=10_000;

/// The default `[email] max_size`, 1 MB: ten times below the limit relays commonly set (Postfix's
/// `message_size_limit` is 10,240,000 bytes), so a relay never refuses the email of the biggest incident.
pub(crate) const DEFAULT_MAX_SIZE: usize = 1_000_000;

/// The bounds of `[email] max_size`, in bytes.
const MAX_SIZE_RANGE: std::ops::RangeInclusive<usize> = 100_000..=100_000_000;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// `smtps://`: TLS from the first byte (usually port 465).
    Implicit,
    /// `smtp://` with `tls = "required"`: STARTTLS, and no mail if the server does not offer it.
    Required,
    /// `smtp://` with `tls = "opportunistic"`: STARTTLS when the server offers it, else plaintext.
    Opportunistic,
    /// `smtp://` with `tls = "none"`: plaintext, accepted only for loopback hosts.
    None,
}

/// When a cycle sends an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendPolicy {
    /// Only when the set of findings differs from the last email's.
    #[default]
    OnChange,
    /// Every cycle, even when nothing changed (and when everything is fine), once a first email has been sent:
    /// a cycle with no findings and no email before it sends nothing.
    Always,
    /// Never compose a message (messages already in the outbox are still delivered).
    Never,
}

/// SMTP authentication. The password is never logged nor printed (`Debug` shows `[REDACTED]`).
#[derive(Debug, Clone)]
pub struct SmtpCredentials {
    pub user: String,
    pub password: SecretString,
}

/// A validated `[email]` section.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The SMTP server's host name or IP address (without brackets).
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// PEM certificates (every one of a bundle) trusted besides the system's roots for STARTTLS and `smtps://`:
    /// a relay with a private CA or a self-signed certificate. Validated like `[instance] ca_file`.
    pub ca_file: Option<PathBuf>,
    pub credentials: Option<SmtpCredentials>,
    pub(crate) from: Mailbox,
    /// At least one recipient, each address once.
    pub to: Vec<Mailbox>,
    /// Connection timeout and the limit for every SMTP command.
    pub timeout: Duration,
    pub send: SendPolicy,
    /// Older messages are dropped from the outbox (logged at error, counted).
    pub outbox_max_age: Duration,
    /// At most this many messages wait in the outbox; the oldest beyond are dropped.
    pub outbox_max_messages: usize,
    /// With `send = "on_change"`: while findings stay open and unchanged, one reminder per interval (`None`: off).
    pub remind_every: Option<Duration>,
    /// The largest message composed, in bytes: beyond it the email shows the full detail of the first findings
    /// of each category only.
    pub max_size: usize,
}

impl EmailConfig {
    /// A plaintext connection to an SMTP server on `127.0.0.1:port` (the demo's and the tests' SMTP sink).
    pub fn loopback(port: u16, from: Mailbox, to: Vec<Mailbox>) -> EmailConfig {
        EmailConfig {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::None,
            ca_file: None,
            credentials: None,
            from,
            to,
            timeout: Duration::from_secs(10),
            send: SendPolicy::OnChange,
            outbox_max_age: DEFAULT_OUTBOX_MAX_AGE,
            outbox_max_messages: DEFAULT_OUTBOX_MAX_MESSAGES,
            remind_every: None,
            max_size: DEFAULT_MAX_SIZE,
        }
    }

    /// The server as a URL, for messages: `smtp://host:port` or `smtps://host:port`.
    pub fn server_url(&self) -> String {
        let scheme = if self.tls == TlsMode::Implicit { "smtps" } else { "smtp" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// `to` accepts one address or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "expected an address or a list of addresses, e.g. to = [\"mid-admins@acme.com\"]")]
enum RawRecipients {
    One(String),
    Many(Vec<String>),
}

/// `max_size` is a number of bytes or a text with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "expected a size, e.g. max_size = \"1MB\" or max_size = 1000000 (bytes)")]
enum RawSize {
    Bytes(i64),
    Text(String),
}

/// The `[email]` section as written in the file; [`RawEmail::validate`] turns it into an [`EmailConfig`].
#[derive(Debug, Deserialize, Default)]
pub(super) struct RawEmail {
    url: Option<String>,
    tls: Option<String>,
    ca_file: Option<PathBuf>,
    user: Option<String>,
    password: Option<SecretString>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    from: Option<String>,
    to: Option<RawRecipients>,
    timeout: Option<String>,
    send: Option<String>,
    outbox_max_age: Option<String>,
    remind_every: Option<String>,
    outbox_max_messages: Option<i64>,
    max_size: Option<RawSize>,
}

impl RawEmail {
    /// Validates `[email]`, naming every problem with its key: the server, its CA and the credentials, the
    /// sender and the recipients, then when messages are sent and how long they may wait in the outbox.
    pub(super) fn validate(
        self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<EmailConfig> {
        let before = problems.len();
        let server = validate_server(self.url.as_deref(), self.tls.as_deref(), problems);
        if let Some(ca) = &self.ca_file
            && let Err(e) = check_ca_file("[email] ca_file", ca, env)
        {
            problems.push(e);
        }
        let password = SecretSource {
            key: "[email] password",
            inline: self.password,
            file: self.password_file,
            env_var: self.password_env,
        };
        let credentials = validate_credentials(self.user, password, env, problems, warnings);
        let from = validate_sender(self.from.as_deref(), problems);
        let to = validate_recipients(self.to, problems);
        let timeout = validate_smtp_timeout(self.timeout.as_deref(), problems);
        let send = validate_send(self.send.as_deref(), problems);
        let outbox_max_age = match self.outbox_max_age.as_deref() {
            None => Some(DEFAULT_OUTBOX_MAX_AGE),
            Some(t) => hours_to_days("outbox_max_age", t, "3d", "", problems),
        };
        let remind_every = match self.remind_every.as_deref() {
            None | Some("off") => Some(None),
            Some(t) => hours_to_days("remind_every", t, "24h", ", or \"off\"", problems).map(Some),
        };
        let outbox_max_messages = validate_outbox_max_messages(self.outbox_max_messages, problems);
        let max_size = validate_max_size(self.max_size, problems);
        let (host, port, tls) = server?;
        if tls == TlsMode::None && self.ca_file.is_some() {
            warnings.push(
                "[email] ca_file is not used with tls = \"none\" (no TLS connection is made): remove it, or use \
                 tls = \"required\""
                    .into(),
            );
        }
        let config = EmailConfig {
            host,
            port,
            tls,
            ca_file: self.ca_file,
            credentials,
            from: from?,
            to: to?,
            timeout: timeout?,
            send: send?,
            outbox_max_age: outbox_max_age?,
            outbox_max_messages: outbox_max_messages?,
            remind_every: remind_every?,
            max_size: max_size?,
        };
        (problems.len() == before).then_some(config)
    }
}

/// `url` (required) with `tls`: the host, the port and the TLS mode.
fn validate_server(url: Option<&str>, tls: Option<&str>, problems: &mut Vec<String>) -> Option<(String, u16, TlsMode)> {
    match url {
        None => {
            problems.push(
                "[email] url is required, e.g. url = \"smtp://smtp.acme.com:587\" (STARTTLS) or \
                 \"smtps://smtp.acme.com\" (implicit TLS)"
                    .into(),
            );
            None
        }
        Some(u) => parse_smtp_url(u, tls).map_err(|p| problems.push(p)).ok(),
    }
}

/// `user` and one password source, or neither: a password without a user is refused.
fn validate_credentials(
    user: Option<String>,
    password: SecretSource<'_>,
    env: &dyn Environment,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<SmtpCredentials> {
    match user.filter(|u| !u.trim().is_empty()) {
        Some(user) => password.resolve(env, problems, warnings).map(|p| SmtpCredentials { user, password: p.value }),
        None => {
            if password.is_set() {
                problems.push(
                    "[email] a password is set but [email] user is not: set user too, or remove the password".into(),
                );
            }
            None
        }
    }
}

/// `from` (required): one address.
fn validate_sender(from: Option<&str>, problems: &mut Vec<String>) -> Option<Mailbox> {
    match from {
        None => {
            problems.push("[email] from is required, e.g. from = \"midwatch <midwatch@acme.com>\"".into());
            None
        }
        Some(f) => f
            .trim()
            .parse::<Mailbox>()
            .map_err(|e| {
                problems.push(format!(
                    "[email] from = \"{f}\" is not a valid address ({e}): expected e.g. \"midwatch <midwatch@acme.com>\""
                ))
            })
            .ok(),
    }
}

/// `timeout`, within [`SMTP_TIMEOUTS`].
fn validate_smtp_timeout(value: Option<&str>, problems: &mut Vec<String>) -> Option<Duration> {
    let Some(t) = value else {
        return Some(DEFAULT_SMTP_TIMEOUT);
    };
    Bounded::new(SMTP_TIMEOUTS, "\"30s\"", &|_| format!("[email] timeout = \"{t}\" must be between 1s and 10m")).key(
        "[email] timeout",
        t,
        problems,
    )
}

/// `send`: `on_change` (the default), `always` or `never`.
fn validate_send(send: Option<&str>, problems: &mut Vec<String>) -> Option<SendPolicy> {
    match send {
        None | Some("on_change") => Some(SendPolicy::OnChange),
        Some("always") => Some(SendPolicy::Always),
        Some("never") => Some(SendPolicy::Never),
        Some(other) => {
            problems.push(format!("[email] send = \"{other}\": expected \"on_change\", \"always\" or \"never\""));
            None
        }
    }
}

/// `outbox_max_messages`, within [`OUTBOX_MESSAGES_RANGE`].
fn validate_outbox_max_messages(value: Option<i64>, problems: &mut Vec<String>) -> Option<usize> {
    match value {
        None => Some(DEFAULT_OUTBOX_MAX_MESSAGES),
        Some(n) if OUTBOX_MESSAGES_RANGE.contains(&n) => usize::try_from(n).ok(),
        Some(n) => {
            problems.push(format!("[email] outbox_max_messages = {n} must be between 1 and 10000"));
            None
        }
    }
}

/// `max_size`: bytes, or a text with a unit (`"1MB"`, `"500kB"`, `"10MiB"`), within [`MAX_SIZE_RANGE`].
fn validate_max_size(value: Option<RawSize>, problems: &mut Vec<String>) -> Option<usize> {
    let (shown, bytes) = match value {
        None => return Some(DEFAULT_MAX_SIZE),
        Some(RawSize::Bytes(n)) => (n.to_string(), usize::try_from(n).ok()),
        Some(RawSize::Text(t)) => match parse_size(&t) {
            Some(n) => (format!("\"{t}\""), Some(n)),
            None => {
                problems.push(format!(
                    "[email] max_size = \"{t}\" is not a size: expected e.g. \"1MB\", \"500kB\" or a number of bytes"
                ));
                return None;
            }
        },
    };
    match bytes.filter(|n| MAX_SIZE_RANGE.contains(n)) {
        Some(n) => Some(n),
        None => {
            problems.push(format!("[email] max_size = {shown} must be between 100kB and 100MB"));
            None
        }
    }
}

/// A size with an optional unit: `B`, `kB` (1000), `MB`, `KiB` (1024) or `MiB`, case aside; `None` when the text
/// is not one (or overflows).
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: usize = text[..digits].parse().ok()?;
    let unit: usize = match text[digits..].trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1_000_000,
        "kib" => 1024,
        "mib" => 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(unit)
}

/// `[email] key = "t"`, a duration from 1h to 90d; `example` is offered when it is not a duration, and `extra`
/// ends both messages (another value the key takes).
fn hours_to_days(key: &str, t: &str, example: &str, extra: &str, problems: &mut Vec<String>) -> Option<Duration> {
    let examples = format!("\"{example}\"{extra}");
    Bounded::new(HOURS_TO_DAYS, &examples, &|_| format!("[email] {key} = \"{t}\" must be between 1h and 90d{extra}"))
        .key(&format!("[email] {key}"), t, problems)
}

fn validate_recipients(raw: Option<RawRecipients>, problems: &mut Vec<String>) -> Option<Vec<Mailbox>> {
    let list = match raw {
        None => Vec::new(),
        Some(RawRecipients::One(s)) => vec![s],
        Some(RawRecipients::Many(v)) => v,
    };
    if list.is_empty() {
        problems.push("[email] to needs at least one address, e.g. to = [\"mid-admins@acme.com\"]".into());
        return None;
    }
    let mut ok = true;
    let mut to: Vec<Mailbox> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match s.trim().parse::<Mailbox>() {
            Ok(m) => {
                let address = m.email.to_string().to_ascii_lowercase();
                if !to.iter().any(|t| t.email.to_string().to_ascii_lowercase() == address) {
                    to.push(m);
                }
            }
            Err(e) => {
                ok = false;
                problems.push(format!(
                    "[email] to[{i}] = \"{s}\" is not a valid address ({e}): expected e.g. \"mid-admins@acme.com\""
                ));
            }
        }
    }
    ok.then_some(to)
}

/// `smtp://host[:port]` (default port 25) with `tls` required (default) / opportunistic / none (loopback only),
/// or `smtps://host[:port]` (default port 465, implicit TLS).
fn parse_smtp_url(u: &str, tls: Option<&str>) -> Result<(String, u16, TlsMode), String> {
    let example = "expected e.g. \"smtp://smtp.acme.com:587\" or \"smtps://smtp.acme.com\"";
    let url = Url::parse(u).map_err(|e| match e {
        // `smtp.acme.com`: the host alone.
        url::ParseError::RelativeUrlWithoutBase => {
            let host = u.trim().rsplit('@').next().unwrap_or_default();
            format!(
                "[email] url = \"{}\" needs smtp:// or smtps:// in front: write \"smtp://{host}:587\" (STARTTLS) \
                 or \"smtps://{host}\" (implicit TLS)",
                without_userinfo(u)
            )
        }
        e => format!("[email] url = \"{}\" is not a URL ({e}): {example}", without_userinfo(u)),
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("[email] url must not contain credentials: set [email] user and password_file instead".to_string());
    }
    if (!url.path().is_empty() && url.path() != "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("[email] url = \"{u}\" must not have a path or query: {example}"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(format!("[email] url = \"{u}\" has no host: {example}")),
    };
    let (default_port, mode) = match url.scheme() {
        "smtps" => {
            return match tls {
                None | Some("required") => Ok((host, url.port().unwrap_or(465), TlsMode::Implicit)),
                Some(other) => Err(format!(
                    "[email] tls = \"{other}\" does not apply to smtps:// (implicit TLS, always encrypted): remove \
                     tls, or use an smtp:// url"
                )),
            };
        }
        "smtp" => (
            25,
            match tls {
                None | Some("required") => TlsMode::Required,
                Some("opportunistic") => TlsMode::Opportunistic,
                Some("none") => TlsMode::None,
                Some(other) => {
                    return Err(format!(
                        "[email] tls = \"{other}\": expected \"required\" (STARTTLS), \"opportunistic\" or \"none\""
                    ));
                }
            },
        ),
        other => return Err(format!("[email] url = \"{u}\" has scheme {other}: {example}")),
    };
    if mode == TlsMode::None && !is_loopback_host(&host) {
        return Err(format!(
            "[email] tls = \"none\" sends mail (and any password) in clear, so it is accepted only for loopback \
             hosts (127.0.0.1, ::1, localhost), not {host}: use tls = \"required\" or \"opportunistic\""
        ));
    }
    Ok((host, url.port().unwrap_or(default_port), mode))
}
