//! [`ApiError`]: why a request to the instance failed, worded for the person who has to fix it,
//! and what the client and the write-back may do about it (retry, look first, fall back).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::answer::{Class, RedirectKind};
use super::retry::RetryAfter;
use super::text::joined;
use crate::domain::sn_time;
use crate::escape::clean;

/// Why a Table API call failed: the table (or API) it was for, and what went wrong ([`ApiError::kind`]).
/// Worded for the person who has to fix it; every value that came from the instance is shown with its
/// control characters escaped.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", wording(.table, .kind))]
pub struct ApiError {
    pub(super) table: String,
    pub(super) kind: ApiErrorKind,
}

/// What went wrong with a Table API call, for callers that branch on it.
#[derive(Debug, Clone)]
pub enum ApiErrorKind {
    /// HTTP 401 with Basic auth: the credentials were refused. `who` names the account (`user svc.midwatch`),
    /// `secrets` where its password came from and its stray characters (each empty where not known).
    Unauthorized {
        who: String,
        secrets: String,
    },
    /// No OAuth token could be obtained (`auth/`); `secrets` says where the secrets came from, for a refusal.
    Token {
        error: Box<super::auth::TokenError>,
        secrets: String,
    },
    /// The API refused an OAuth token twice, with a renewal in between.
    TokenRefused {
        who: String,
    },
    /// HTTP 403: the account's ACLs do not allow the read.
    Forbidden {
        message: String,
    },
    /// HTTP 400 "Invalid table": the table does not exist on the instance.
    InvalidTable,
    /// An HTML page instead of JSON.
    NotJson {
        status: u16,
        title: Option<String>,
    },
    /// A 3xx: midwatch does not follow redirects. `location` has no credentials and no query string.
    Redirected {
        status: u16,
        location: Option<String>,
        target: RedirectKind,
    },
    /// A complete answer that is not the Table API's JSON.
    Malformed {
        reason: String,
    },
    /// A 2xx that ended with an error: the rows it carried are not the answer.
    Incomplete {
        status: u16,
        message: String,
    },
    /// HTTP 429, until the given time when the answer said.
    RateLimited {
        until: Option<DateTime<Utc>>,
        retry_after: Option<Duration>,
        detail: String,
    },
    /// The REST transaction quota cancelled the request, also with pages of `smallest` rows.
    QuotaExceeded {
        message: String,
        page_size: u32,
        smallest: u32,
    },
    /// Any other HTTP status that is not data.
    Status {
        status: u16,
        message: String,
    },
    /// The answer ended early: its connection closed before its body did, or a 2xx's JSON stops half way (or
    /// is empty). A read retries it; after a write, the write may have happened (`ApiError::outcome_unknown`).
    CutOff {
        received: u64,
        reason: String,
    },
    /// The answer is larger than the client's limit.
    TooLarge {
        limit: u64,
        page_size: u32,
    },
    Timeout {
        timeout: Duration,
    },
    Connect {
        /// The whole chain of causes (a URL in it without its query string).
        reason: String,
        /// The innermost cause alone (`Connection refused (os error 111)`), for a message about the instance as
        /// a whole.
        cause: String,
    },
    /// The TLS handshake refused the instance's (or a proxy's) certificate: no request was sent.
    Certificate {
        reason: String,
    },
    /// The instance asked to wait (`Retry-After`) longer than the cycle's deadline leaves.
    WaitBeyondDeadline {
        wait: Duration,
        left: Duration,
    },
}

fn wording(table: &str, kind: &ApiErrorKind) -> String {
    use ApiErrorKind::*;
    match kind {
        Unauthorized { who, secrets } => unauthorized(table, who, secrets),
        Token { error, secrets } if error.is_refusal() && !secrets.is_empty() => format!("{error}; {}", clean(secrets)),
        Token { error, .. } => format!("{error}"),
        TokenRefused { who } => format!(
            "the instance refused a freshly issued OAuth token on {table} (HTTP 401 again after renewing it): check \
             on the instance that {who} is active and not locked out, and that no REST API access policy or token \
             restriction (the Application Registry entry's Enforce Token Restrictions, a REST API Auth Scope) keeps \
             its tokens from the Table API and the Batch API"
        ),
        Forbidden { message } => format!(
            "the account may not read table {table} (HTTP 403: {message}): grant it a role whose ACLs allow reading \
             {table}"
        ),
        InvalidTable => format!(
            "table {table} does not exist on the instance (HTTP 400 Invalid table): check the instance URL, or \
             install the plugin that provides it"
        ),
        NotJson { status, title } => format!(
            "the instance answered {table} with an HTML page instead of JSON (HTTP {status}{}): a developer instance \
             may be hibernating (wake it up), or an SSO/login page was served (check [instance] url and that the \
             account can use Basic auth)",
            titled(title)
        ),
        Redirected { status, location, target } => redirected(table, *status, location, *target),
        Malformed { reason } => format!(
            "the instance's answer for {table} is not valid Table API JSON ({reason}); if it persists, report it"
        ),
        Incomplete { status, message } => format!(
            "the instance's answer for {table} ended with an error (HTTP {status}: {message}); the rows it carried \
             were not used"
        ),
        RateLimited { until, detail, .. } => rate_limited(table, until, detail),
        QuotaExceeded { message, page_size, smallest } => format!(
            "the instance cancelled the request for {table} at its 60 s REST transaction quota ({message}){}; lower \
             [instance] page_size (now {page_size}), or ask the instance's administrator about the \"REST Table API \
             request timeout\" quota rule",
            smaller_pages(*page_size, *smallest)
        ),
        Status { status, message } => {
            format!("HTTP {status} from the instance for {table}: {message}{}", status_hint(*status))
        }
        CutOff { received, reason } => format!(
            "the instance's answer for {table} was cut off after {received} bytes ({reason}); the instance, or a \
             proxy or load balancer in front of it, ended it early: try again, or lower [instance] page_size"
        ),
        TooLarge { limit, page_size } => format!(
            "the instance's answer for {table} is larger than midwatch's limit of {} (reading stopped there); lower \
             [instance] page_size (now {page_size})",
            size(*limit)
        ),
        Timeout { timeout } => format!(
            "no answer from the instance for {table} within {timeout:?}; check the network, or raise [instance] \
             timeout"
        ),
        Connect { reason, .. } => format!(
            "could not reach the instance for {table}: {reason}; check [instance] url, DNS, the proxy and the \
             firewall"
        ),
        Certificate { reason } => format!(
            "the TLS certificate presented for the instance was not accepted ({reason}) while reading {table}: if \
             the instance, or a TLS-inspecting proxy in front of it, uses a private CA, set [instance] ca_file to \
             that CA's PEM certificate (for a self-signed certificate, the certificate itself); otherwise check \
             [instance] url and the proxy"
        ),
        WaitBeyondDeadline { wait, left } => format!(
            "the instance asked midwatch to wait {} before trying {table} again (HTTP 429 Retry-After), longer than \
             the {} left of the check's deadline: run the check later, or raise --timeout / [check] timeout",
            humantime::format_duration(Duration::from_secs(wait.as_secs())),
            humantime::format_duration(Duration::from_secs(left.as_secs()))
        ),
    }
}

/// What the client knew when an answer came back, for the wording.
pub(crate) struct Context<'a> {
    pub(crate) table: &'a str,
    pub(crate) page_size: u32,
    pub(crate) now: DateTime<Utc>,
}

impl ApiError {
    pub(crate) fn new(table: impl Into<String>, kind: ApiErrorKind) -> ApiError {
        ApiError { table: table.into(), kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ApiErrorKind {
        &self.kind
    }

    /// The error for an answer that is not data.
    pub(crate) fn from_answer(class: Class, cx: &Context) -> ApiError {
        use ApiErrorKind as K;
        let kind = match class {
            Class::QuotaCancelled { message, .. } => {
                K::QuotaExceeded { message: clean(&message), page_size: cx.page_size, smallest: cx.page_size }
            }
            Class::RateLimited { retry_after, message } => K::RateLimited {
                until: retry_after.map(|r| r.until(cx.now)),
                retry_after: retry_after.map(|r: RetryAfter| r.wait(cx.now)),
                detail: clean(&message),
            },
            Class::Unavailable { status, message } => K::Status { status, message: clean(&message) },
            Class::CutOff { received, reason } => K::CutOff { received, reason: clean(&reason) },
            Class::Incomplete { status, message } => K::Incomplete { status, message: clean(&message) },
            Class::HtmlPage { status, title } => K::NotJson { status, title: title.map(|t| clean(&t)) },
            Class::Redirect { status, location, kind } => {
                K::Redirected { status, location: location.map(|l| clean(&l)), target: kind }
            }
            Class::Refused { status: 401, .. } => K::Unauthorized { who: String::new(), secrets: String::new() },
            Class::Refused { status: 403, message, .. } => K::Forbidden { message: clean(&message) },
            Class::Refused { status: 400, message, .. } if message.starts_with("Invalid table") => K::InvalidTable,
            Class::Refused { status, message, detail } => {
                let message = joined(&message, &detail);
                let message = if message.is_empty() { "no message".to_string() } else { message };
                K::Status { status, message: clean(&message) }
            }
            Class::TooLarge { limit } => K::TooLarge { limit, page_size: cx.page_size },
            Class::Malformed { reason } => K::Malformed { reason: clean(&reason) },
        };
        ApiError::new(cx.table, kind)
    }

    /// True for the failures a read retries: rate limits within the cap (or without a
    /// `Retry-After`), 5xx, a cut-off or error-ended answer, timeouts and lost connections.
    pub(crate) fn is_transient(&self, max_retry_after: Duration) -> bool {
        use ApiErrorKind as K;
        match &self.kind {
            K::RateLimited { retry_after, .. } => retry_after.is_none_or(|d| d <= max_retry_after),
            K::Status { status, .. } => *status >= 500,
            K::Timeout { .. } | K::Connect { .. } | K::CutOff { .. } | K::Incomplete { .. } => true,
            K::Token { error, .. } => error.is_transient(),
            _ => false,
        }
    }

    /// True when the instance refused the credentials themselves (a 401 with Basic auth, a refused token
    /// request, a token refused again after its renewal): every request made with them would be refused too.
    pub(crate) fn refuses_credentials(&self) -> bool {
        use ApiErrorKind as K;
        match &self.kind {
            K::Unauthorized { .. } | K::TokenRefused { .. } => true,
            K::Token { error, .. } => error.is_refusal(),
            _ => false,
        }
    }

    /// When the instance could not be reached at all (no connection, whatever the table): one message for the
    /// instance, `cannot reach https://acme.service-now.com: Connection refused (os error 111); check …`, that a
    /// caller reading many tables says once instead of once per table.
    pub(crate) fn unreachable(&self, instance: &url::Url) -> Option<String> {
        match &self.kind {
            ApiErrorKind::Connect { cause, .. } => Some(format!(
                "cannot reach {}: {cause}; check [instance] url, DNS, the proxy and the firewall",
                instance.origin().ascii_serialization()
            )),
            _ => None,
        }
    }

    /// The server's wait before trying again, if it gave one.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            ApiErrorKind::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when the instance (or a gateway in front of it) refused the request with a 4xx: it
    /// was not carried out. Every other failure of a write — a timeout, a lost connection, a 5xx,
    /// an HTML page, a redirect, a cut-off or unreadable answer — may hide a write that happened.
    pub(crate) fn was_refused(&self) -> bool {
        use ApiErrorKind as K;
        match &self.kind {
            K::Unauthorized { .. }
            | K::Forbidden { .. }
            | K::InvalidTable
            | K::RateLimited { .. }
            | K::WaitBeyondDeadline { .. }
            | K::Certificate { .. }
            | K::Token { .. }
            | K::TokenRefused { .. } => true,
            K::Status { status, .. } => (400..500).contains(status),
            _ => false,
        }
    }

    /// True when a write that failed this way may nevertheless have been applied: look before
    /// sending it again.
    pub(crate) fn outcome_unknown(&self) -> bool {
        !self.was_refused()
    }
}

/// A 401 with Basic auth: whose credentials, where the password came from, and that nothing more is sent with
/// them (each refused login counts toward the account's lockout).
fn unauthorized(table: &str, who: &str, secrets: &str) -> String {
    let of = match (who.is_empty(), secrets.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(" of {}", clean(who)),
        (false, false) => format!(" of {} ({})", clean(who), clean(secrets)),
    };
    let stopped = if who.is_empty() {
        ""
    } else {
        "; nothing more is sent with them this time, as each refused login counts toward the account's lockout"
    };
    format!(
        "the instance refused the credentials (HTTP 401 on {table}){of}: check [instance] user and password; a \
         Basic-auth account may also need web_service_access_only or the snc_basic_auth_api_access role{stopped}"
    )
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
            ApiError::new("t", ApiErrorKind::Unauthorized { who: String::new(), secrets: String::new() }),
            ApiError::new("t", ApiErrorKind::Status { status: 400, message: "x".into() }),
            ApiError::new("t", ApiErrorKind::RateLimited { until: None, retry_after: None, detail: String::new() }),
        ];
        assert!(refused.iter().all(ApiError::was_refused));
        let unknown = [
            ApiError::new("t", ApiErrorKind::NotJson { status: 200, title: None }),
            ApiError::new("t", ApiErrorKind::Status { status: 503, message: "x".into() }),
            ApiError::new("t", ApiErrorKind::Malformed { reason: "x".into() }),
            ApiError::new("t", ApiErrorKind::CutOff { received: 3, reason: "x".into() }),
            ApiError::new("t", ApiErrorKind::Timeout { timeout: Duration::from_secs(1) }),
            ApiError::new("t", ApiErrorKind::Redirected { status: 302, location: None, target: RedirectKind::SignOn }),
        ];
        assert!(unknown.iter().all(ApiError::outcome_unknown));
    }

    #[test]
    fn the_wording_names_what_to_do() {
        let too_large = ApiError::new("sysevent", ApiErrorKind::TooLarge { limit: 64 * 1024 * 1024, page_size: 1000 });
        assert_eq!(
            too_large.to_string(),
            "the instance's answer for sysevent is larger than midwatch's limit of 64 MiB (reading stopped there); \
             lower [instance] page_size (now 1000)"
        );
        let quota = ApiError::new(
            "sysevent",
            ApiErrorKind::QuotaExceeded { message: "m".into(), page_size: 1000, smallest: 125 },
        );
        assert!(quota.to_string().contains("(m), also with pages of 125 rows; lower [instance] page_size (now 1000)"));
        let empty =
            ApiError::from_answer(Class::Refused { status: 405, message: String::new(), detail: String::new() }, &cx());
        assert_eq!(empty.to_string(), "HTTP 405 from the instance for sysevent: no message");
    }
}
