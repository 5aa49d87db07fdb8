//! [`ApiError`]: why a request to the instance failed, worded for the person who has to fix it,
//! and what the client and the write-back may do about it (retry, look first, fall back).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::answer::{Class, RedirectKind};
use super::retry::RetryAfter;
use crate::domain::sn_time;
use crate::escape::clean;

/// Why a Table API call failed, worded for the person who has to fix it. Every value that came
/// from the instance is shown with its control characters escaped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the instance refused the credentials (HTTP 401 on {table}): check [instance] user and password; a Basic-auth \
         account may also need web_service_access_only or the snc_basic_auth_api_access role"
    )]
    Unauthorized { table: String },
    /// No OAuth token could be obtained (`auth.rs`).
    #[error("{error}")]
    Token { table: String, error: super::auth::TokenError },
    /// The API refused an OAuth token twice, with a renewal in between.
    #[error(
        "the instance refused a freshly issued OAuth token on {table} (HTTP 401 again after renewing it): check on \
         the instance that {who} is active and not locked out, and that no REST API access policy or token \
         restriction (the Application Registry entry's Enforce Token Restrictions, a REST API Auth Scope) keeps its \
         tokens from the Table API and the Batch API"
    )]
    TokenRefused { table: String, who: String },
    #[error(
        "the account may not read table {table} (HTTP 403: {message}): grant it a role whose ACLs allow reading {table}"
    )]
    Forbidden { table: String, message: String },
    #[error(
        "table {table} does not exist on the instance (HTTP 400 Invalid table): check the instance URL, or install the \
         plugin that provides it"
    )]
    InvalidTable { table: String },
    #[error(
        "the instance answered {table} with an HTML page instead of JSON (HTTP {status}{}): a developer instance may be \
         hibernating (wake it up), or an SSO/login page was served (check [instance] url and that the account can use \
         Basic auth)",
        titled(.title)
    )]
    NotJson { table: String, status: u16, title: Option<String> },
    #[error("{}", redirected(.table, *.status, .location, *.kind))]
    Redirected { table: String, status: u16, location: Option<String>, kind: RedirectKind },
    #[error("the instance's answer for {table} is not valid Table API JSON ({reason}); if it persists, report it")]
    Malformed { table: String, reason: String },
    #[error(
        "the instance's answer for {table} ended with an error (HTTP {status}: {message}); the rows it carried were not \
         used"
    )]
    Incomplete { table: String, status: u16, message: String },
    #[error("{}", rate_limited(.table, .until, .detail))]
    RateLimited { table: String, until: Option<DateTime<Utc>>, retry_after: Option<Duration>, detail: String },
    #[error(
        "the instance cancelled the request for {table} at its 60 s REST transaction quota ({message}){}; lower \
         [instance] page_size (now {page_size}), or ask the instance's administrator about the \"REST Table API request \
         timeout\" quota rule",
        smaller_pages(*.page_size, *.smallest)
    )]
    QuotaExceeded { table: String, message: String, page_size: u32, smallest: u32 },
    #[error("HTTP {status} from the instance for {table}: {message}{}", status_hint(*.status))]
    Status { table: String, status: u16, message: String },
    #[error(
        "the instance's answer for {table} was cut off after {received} bytes ({reason}); the instance or a proxy or \
         load balancer in front of it closed the connection: try again, or lower [instance] page_size"
    )]
    CutOff { table: String, received: u64, reason: String },
    #[error(
        "the instance's answer for {table} is larger than midwatch's limit of {} (reading stopped there); lower \
         [instance] page_size (now {page_size})",
        size(*.limit)
    )]
    TooLarge { table: String, limit: u64, page_size: u32 },
    #[error(
        "no answer from the instance for {table} within {timeout:?}; check the network, or raise [instance] timeout"
    )]
    Timeout { table: String, timeout: Duration },
    #[error(
        "could not reach the instance for {table}: {reason}; check [instance] url, DNS, the proxy and the firewall"
    )]
    Connect { table: String, reason: String },
    /// The TLS handshake refused the instance's (or a proxy's) certificate: no request was sent.
    #[error(
        "the TLS certificate presented for the instance was not accepted ({reason}) while reading {table}: if the \
         instance, or a TLS-inspecting proxy in front of it, uses a private CA, set [instance] ca_file to that CA's \
         PEM certificate; otherwise check [instance] url and the proxy"
    )]
    Certificate { table: String, reason: String },
    /// The instance asked to wait (`Retry-After`) longer than the cycle's deadline leaves.
    #[error(
        "the instance asked midwatch to wait {} before trying {table} again (HTTP 429 Retry-After), longer than \
         the {} left of the check's deadline: run the check later, or raise --timeout / [check] timeout",
        humantime::format_duration(Duration::from_secs(.wait.as_secs())),
        humantime::format_duration(Duration::from_secs(.left.as_secs()))
    )]
    WaitBeyondDeadline { table: String, wait: Duration, left: Duration },
}

/// What the client knew when an answer came back, for the wording.
pub(crate) struct Context<'a> {
    pub table: &'a str,
    pub page_size: u32,
    pub now: DateTime<Utc>,
}

impl ApiError {
    /// The error for an answer that is not data.
    pub(crate) fn from_answer(class: Class, cx: &Context) -> ApiError {
        let table = cx.table.to_string();
        match class {
            Class::QuotaCancelled { message, .. } => ApiError::QuotaExceeded {
                table,
                message: clean(&message),
                page_size: cx.page_size,
                smallest: cx.page_size,
            },
            Class::RateLimited { retry_after, message } => ApiError::RateLimited {
                table,
                until: retry_after.map(|r| r.until(cx.now)),
                retry_after: retry_after.map(|r: RetryAfter| r.wait(cx.now)),
                detail: clean(&message),
            },
            Class::Unavailable { status, message } => ApiError::Status { table, status, message: clean(&message) },
            Class::CutOff { received, reason } => ApiError::CutOff { table, received, reason: clean(&reason) },
            Class::Incomplete { status, message } => ApiError::Incomplete { table, status, message: clean(&message) },
            Class::HtmlPage { status, title } => ApiError::NotJson { table, status, title: title.map(|t| clean(&t)) },
            Class::Redirect { status, location, kind } => {
                ApiError::Redirected { table, status, location: location.map(|l| clean(&l)), kind }
            }
            Class::Refused { status: 401, .. } => ApiError::Unauthorized { table },
            Class::Refused { status: 403, message, .. } => ApiError::Forbidden { table, message: clean(&message) },
            Class::Refused { status: 400, message, .. } if message.starts_with("Invalid table") => {
                ApiError::InvalidTable { table }
            }
            Class::Refused { status, message, detail } => {
                let message = match (message.is_empty(), detail.is_empty()) {
                    (true, true) => "no message".to_string(),
                    (false, true) => message,
                    (true, false) => detail,
                    (false, false) => format!("{message}: {detail}"),
                };
                ApiError::Status { table, status, message: clean(&message) }
            }
            Class::TooLarge { limit } => ApiError::TooLarge { table, limit, page_size: cx.page_size },
            Class::Malformed { reason } => ApiError::Malformed { table, reason: clean(&reason) },
        }
    }

    /// True for the failures a read retries: rate limits within the cap (or without a
    /// `Retry-After`), 5xx, a cut-off or error-ended answer, timeouts and lost connections.
    pub(crate) fn is_transient(&self, max_retry_after: Duration) -> bool {
        match self {
            Self::RateLimited { retry_after, .. } => retry_after.is_none_or(|d| d <= max_retry_after),
            Self::Status { status, .. } => *status >= 500,
            Self::Timeout { .. } | Self::Connect { .. } | Self::CutOff { .. } | Self::Incomplete { .. } => true,
            Self::Token { error, .. } => error.is_transient(),
            _ => false,
        }
    }

    /// The server's wait before trying again, if it gave one.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when the instance (or a gateway in front of it) refused the request with a 4xx: it
    /// was not carried out. Every other failure of a write — a timeout, a lost connection, a 5xx,
    /// an HTML page, a redirect, a cut-off or unreadable answer — may hide a write that happened.
    pub fn was_refused(&self) -> bool {
        match self {
            Self::Unauthorized { .. }
            | Self::Forbidden { .. }
            | Self::InvalidTable { .. }
            | Self::RateLimited { .. }
            | Self::WaitBeyondDeadline { .. }
            | Self::Certificate { .. }
            | Self::Token { .. }
            | Self::TokenRefused { .. } => true,
            Self::Status { status, .. } => (400..500).contains(status),
            _ => false,
        }
    }

    /// True when a write that failed this way may nevertheless have been applied: look before
    /// sending it again.
    pub fn outcome_unknown(&self) -> bool {
        !self.was_refused()
    }
}

fn titled(title: &Option<String>) -> String {
    title.as_ref().map(|t| format!(", \"{t}\"")).unwrap_or_default()
}

fn redirected(table: &str, status: u16, location: &Option<String>, kind: RedirectKind) -> String {
    let to = match location {
        Some(l) => format!("HTTP {status} to {l}"),
        None => format!("HTTP {status} without a Location"),
    };
    match kind {
        RedirectKind::SignOn => format!(
            "the instance sent the request for {table} to a sign-on page ({to}) instead of answering it: the Table API \
             is not reachable with these credentials this way; check [instance] url, and that the account can use \
             Basic auth (an SSO-only account cannot)"
        ),
        RedirectKind::WakeUp => format!(
            "the instance sent the request for {table} to a wake-up page ({to}): a developer instance is hibernating; \
             wake it up and run the check again"
        ),
        RedirectKind::Elsewhere => format!(
            "the instance redirected the request for {table} ({to}); midwatch does not follow redirects: set \
             [instance] url to the address the instance answers on (https://<name>.service-now.com)"
        ),
    }
}

fn rate_limited(table: &str, until: &Option<DateTime<Utc>>, detail: &str) -> String {
    let advice = "run the check later, or raise the rate-limit rule (sys_rate_limit_rules) for this account";
    match until {
        Some(t) => format!(
            "rate limited by the instance on {table} until {} UTC (HTTP 429: {detail}); {advice}",
            sn_time::format(*t)
        ),
        None => format!(
            "rate limited by the instance on {table} (HTTP 429 without Retry-After: {detail}); its API queue may be \
             full: lower [instance] concurrency, or {advice}"
        ),
    }
}

fn smaller_pages(page_size: u32, smallest: u32) -> String {
    if smallest < page_size { format!(", also with pages of {smallest} rows") } else { String::new() }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        500..=599 => "; the instance, or a load balancer in front of it, is failing: try again later",
        404 => "; check [instance] url",
        _ => "",
    }
}

fn size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) { format!("{} MiB", bytes / MIB) } else { format!("{bytes} bytes") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context<'static> {
        Context { table: "sysevent", page_size: 1000, now: Utc::now() }
    }

    #[test]
    fn control_characters_from_the_instance_never_reach_a_message() {
        let class = Class::Refused { status: 403, message: "no\r\nMIDWATCH OK - fine".into(), detail: String::new() };
        let text = ApiError::from_answer(class, &cx()).to_string();
        assert!(!text.contains('\n') && !text.contains('\r'), "{text}");
        let class = Class::Redirect {
            status: 302,
            location: Some("https://x/\u{1b}[2Jlogin.do".into()),
            kind: RedirectKind::SignOn,
        };
        assert!(!ApiError::from_answer(class, &cx()).to_string().contains('\u{1b}'));
    }

    #[test]
    fn a_refusal_is_known_not_to_have_been_applied_and_anything_else_is_not() {
        let refused = [
            ApiError::Unauthorized { table: "t".into() },
            ApiError::Status { table: "t".into(), status: 400, message: "x".into() },
            ApiError::RateLimited { table: "t".into(), until: None, retry_after: None, detail: String::new() },
        ];
        assert!(refused.iter().all(ApiError::was_refused));
        let unknown = [
            ApiError::NotJson { table: "t".into(), status: 200, title: None },
            ApiError::Status { table: "t".into(), status: 503, message: "x".into() },
            ApiError::Malformed { table: "t".into(), reason: "x".into() },
            ApiError::CutOff { table: "t".into(), received: 3, reason: "x".into() },
            ApiError::Timeout { table: "t".into(), timeout: Duration::from_secs(1) },
            ApiError::Redirected { table: "t".into(), status: 302, location: None, kind: RedirectKind::SignOn },
        ];
        assert!(unknown.iter().all(ApiError::outcome_unknown));
    }

    #[test]
    fn the_wording_names_what_to_do() {
        let too_large = ApiError::TooLarge { table: "sysevent".into(), limit: 64 * 1024 * 1024, page_size: 1000 };
        assert_eq!(
            too_large.to_string(),
            "the instance's answer for sysevent is larger than midwatch's limit of 64 MiB (reading stopped there); \
             lower [instance] page_size (now 1000)"
        );
        let quota =
            ApiError::QuotaExceeded { table: "sysevent".into(), message: "m".into(), page_size: 1000, smallest: 125 };
        assert!(quota.to_string().contains("(m), also with pages of 125 rows; lower [instance] page_size (now 1000)"));
        let empty =
            ApiError::from_answer(Class::Refused { status: 405, message: String::new(), detail: String::new() }, &cx());
        assert_eq!(empty.to_string(), "HTTP 405 from the instance for sysevent: no message");
    }
}
