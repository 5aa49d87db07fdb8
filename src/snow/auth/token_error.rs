//! [`TokenError`]: why no OAuth token could be obtained, worded for the person who has to fix it on the instance.

use std::time::Duration;

use super::Grant;

/// Why no token could be obtained, worded for the person who has to fix it on the instance.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("{}", refused(*grant, client_id, user.as_deref(), *status, answer))]
    Refused { grant: Grant, client_id: String, user: Option<String>, status: u16, answer: String },
    #[error("{}", unsupported(*grant))]
    UnsupportedGrant { grant: Grant },
    #[error(
        "no OAuth token endpoint at {url} (HTTP 404): check [instance] url, and on the instance that the OAuth 2.0 \
         plugin is active and the system property com.snc.platform.security.oauth.is.active is true"
    )]
    NoEndpoint { url: String },
    #[error(
        "the OAuth token endpoint {url} answered with an HTML page instead of a token (HTTP {status}): a developer \
         instance may be hibernating (wake it up from the developer portal), or a sign-on page was served; check \
         [instance] url"
    )]
    Html { url: String, status: u16 },
    #[error(
        "the OAuth token endpoint {url} redirected to {location} (HTTP {status}): a hibernating developer instance \
         or a sign-on page answers like this; wake the instance up, or check [instance] url"
    )]
    Redirected { url: String, status: u16, location: String },
    #[error(
        "the instance refused the OAuth {grant} grant (HTTP {status} {answer}): check [instance] client_id and the \
         client secret against the instance's Application Registry entry (System OAuth > Application Registry) \
         and that the entry is active"
    )]
    Rejected { grant: Grant, status: u16, answer: String },
    #[error(
        "the OAuth token endpoint answered HTTP {status} ({answer}): the instance may be restarting or overloaded; \
         try again later"
    )]
    Status { status: u16, answer: String },
    #[error(
        "the OAuth token endpoint's answer is not a token ({reason}); check [instance] url; if it persists, report it"
    )]
    Malformed { reason: String },
    #[error(
        "no answer from the OAuth token endpoint {url} within {timeout:?}; check the network, or raise [instance] \
         timeout"
    )]
    Timeout { url: String, timeout: Duration },
    #[error(
        "could not reach the OAuth token endpoint {url}: {reason}; check [instance] url, DNS, the proxy and the \
         firewall"
    )]
    Connect { url: String, reason: String },
}

impl TokenError {
    /// True when the instance refused the grant itself (the client, the secret, the user or the grant type):
    /// asking again with the same credentials gets the same answer, and a refused password counts toward the
    /// user's lockout.
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. } | Self::Rejected { .. } | Self::UnsupportedGrant { .. })
    }

    /// True for what a retry may cure: a lost connection, a timeout, a gateway error.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Connect { .. })
            || matches!(self, Self::Status { status, .. } if matches!(status, 502..=504))
    }
}

fn refused(grant: Grant, client_id: &str, user: Option<&str>, status: u16, answer: &str) -> String {
    let registry = "that [instance] client_id and the client secret match the instance's Application Registry entry \
                    (System OAuth > Application Registry) and that the entry is active";
    match grant {
        Grant::ClientCredentials => format!(
            "the instance refused the OAuth client credentials grant for client_id \"{client_id}\" (HTTP {status} \
             {answer}): on the instance, check {registry}; that the system property \
             glide.oauth.inbound.client.credential.grant_type.enabled exists and is true (Washington DC or later); \
             and that the entry's OAuth Application User is set to an active user"
        ),
        Grant::Password | Grant::RefreshToken => format!(
            "the instance refused the OAuth {grant} grant for client_id \"{client_id}\"{} (HTTP {status} {answer}): on \
             the instance, check {registry}, and the user's password; the user must be active and not locked out, \
             and must not be \"Web service access only\" (the password grant needs a user that may log in \
             interactively)",
            user.map(|u| format!(" and user \"{u}\"")).unwrap_or_default()
        ),
    }
}

fn unsupported(grant: Grant) -> String {
    match grant {
        Grant::ClientCredentials => "the instance does not offer the OAuth client credentials grant (HTTP 400 \
                                     unsupported_grant_type): it needs Washington DC or later and the system \
                                     property glide.oauth.inbound.client.credential.grant_type.enabled = true \
                                     (create it in sys_properties); on an older release use auth = \
                                     \"oauth_password\""
            .to_string(),
        Grant::Password | Grant::RefreshToken => format!(
            "the instance does not accept the OAuth {grant} grant (HTTP 400 unsupported_grant_type): check on the \
             instance that the OAuth 2.0 plugin is active and the system property \
             com.snc.platform.security.oauth.is.active is true, or use auth = \"oauth_client_credentials\""
        ),
    }
}
