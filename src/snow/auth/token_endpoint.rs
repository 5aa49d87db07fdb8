//! The instance's token endpoint, `POST <url>/oauth_token.do`: the request of each grant and what its answer
//! means (`docs/servicenow.md` §5).

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::{Grant, OAuthClient, TokenError};
use crate::snow::answer::is_html;
use crate::snow::text::{joined, shown, shown_body, shown_location, transport_text};

/// The path of the token endpoint, relative to the instance root.
pub(crate) const TOKEN_PATH: &str = "/oauth_token.do";

/// One token request, with what it carries besides the client's id and secret.
pub(crate) enum GrantRequest<'a> {
    ClientCredentials,
    Password { user: &'a str, password: &'a SecretString },
    RefreshToken { token: &'a SecretString },
}

impl GrantRequest<'_> {
    pub(super) fn grant(&self) -> Grant {
        match self {
            GrantRequest::ClientCredentials => Grant::ClientCredentials,
            GrantRequest::Password { .. } => Grant::Password,
            GrantRequest::RefreshToken { .. } => Grant::RefreshToken,
        }
    }
}

/// A successful answer of the token endpoint.
pub(crate) struct TokenAnswer {
    pub(super) access_token: SecretString,
    pub(super) refresh_token: Option<SecretString>,
    pub(super) expires_in: Option<Duration>,
}

/// Where tokens come from: the instance's `/oauth_token.do`, or a test's stand-in.
pub(crate) trait TokenEndpoint: Send + Sync {
    fn request<'a>(&'a self, grant: GrantRequest<'a>) -> BoxFuture<'a, Result<TokenAnswer, TokenError>>;
}

/// `POST <url>/oauth_token.do`, form-encoded: a JSON body gives an unspecified error (`docs/servicenow.md` §5).
pub(super) struct HttpEndpoint {
    pub(super) http: reqwest::Client,
    pub(super) url: Url,
    pub(super) client: OAuthClient,
    pub(super) timeout: Duration,
}

/// The most bytes of a token endpoint's answer midwatch reads.
pub(super) const TOKEN_ANSWER_LIMIT: usize = 64 * 1024;

impl TokenEndpoint for HttpEndpoint {
    fn request<'a>(&'a self, grant: GrantRequest<'a>) -> BoxFuture<'a, Result<TokenAnswer, TokenError>> {
        Box::pin(self.post(grant))
    }
}

impl HttpEndpoint {
    async fn post(&self, grant: GrantRequest<'_>) -> Result<TokenAnswer, TokenError> {
        let kind = grant.grant();
        let response = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(self.form(&grant))
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = self.read_bounded(response).await?;
        let user = match &grant {
            GrantRequest::Password { user, .. } => Some(user.to_string()),
            _ => None,
        };
        self.answer(kind, user, status, &headers, &body)
    }

    /// The answer's body, read incrementally and never beyond [`TOKEN_ANSWER_LIMIT`] (decompressed): a token
    /// answer is a few hundred bytes, so anything much larger is not one.
    async fn read_bounded(&self, mut response: reqwest::Response) -> Result<Vec<u8>, TokenError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(&e))? {
            if body.len() + chunk.len() > TOKEN_ANSWER_LIMIT {
                return Err(TokenError::Malformed {
                    reason: format!(
                        "the answer is larger than {} KiB, so it is not a token answer",
                        TOKEN_ANSWER_LIMIT / 1024
                    ),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The request body: `grant_type`, the client's id and secret, and what the grant carries.
    fn form(&self, grant: &GrantRequest<'_>) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", grant.grant().name());
        form.append_pair("client_id", &self.client.id);
        form.append_pair("client_secret", self.client.secret.expose_secret());
        match grant {
            GrantRequest::ClientCredentials => {}
            GrantRequest::Password { user, password } => {
                form.append_pair("username", user);
                form.append_pair("password", password.expose_secret());
            }
            GrantRequest::RefreshToken { token } => {
                form.append_pair("refresh_token", token.expose_secret());
            }
        }
        form.finish()
    }

    /// What the endpoint's answer means.
    fn answer(
        &self,
        grant: Grant,
        user: Option<String>,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<TokenAnswer, TokenError> {
        let url = self.url.to_string();
        if (300..400).contains(&status) {
            let location = headers.get(LOCATION).and_then(|l| l.to_str().ok());
            let location = location.map_or_else(|| "an unnamed page".to_string(), shown_location);
            return Err(TokenError::Redirected { url, status, location });
        }
        if is_html(headers, body) {
            return Err(match status {
                500..=599 => TokenError::Status { status, answer: "an HTML error page".into() },
                _ => TokenError::Html { url, status },
            });
        }
        if (200..300).contains(&status) {
            return parse_answer(body);
        }
        let (error, description) = error_fields(body);
        let answer = match joined(&error, &description) {
            both_empty if both_empty.is_empty() => shown_body(body),
            answer => answer,
        };
        let client_id = self.client.id.clone();
        Err(match (status, error.as_str()) {
            (400, "unsupported_grant_type") => TokenError::UnsupportedGrant { grant },
            (401, _) | (400, "invalid_grant" | "invalid_client") => {
                TokenError::Refused { grant, client_id, user, status, answer }
            }
            (404, _) => TokenError::NoEndpoint { url },
            (400..=499, _) => TokenError::Rejected { grant, status, answer },
            _ => TokenError::Status { status, answer },
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> TokenError {
        let url = self.url.to_string();
        if e.is_timeout() {
            return TokenError::Timeout { url, timeout: self.timeout };
        }
        TokenError::Connect { url, reason: transport_text(e) }
    }
}

/// `{"access_token", "refresh_token"?, "expires_in", "token_type": "Bearer", "scope"}`; `expires_in` may be a
/// number or a string of digits. Read as a JSON value, so that no parse error can quote a token.
pub(super) fn parse_answer(body: &[u8]) -> Result<TokenAnswer, TokenError> {
    let malformed = |reason: &str| TokenError::Malformed { reason: reason.to_string() };
    let value: Value = serde_json::from_slice(body).map_err(|e| TokenError::Malformed { reason: format!("{e}") })?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    let access_token = text("access_token").ok_or_else(|| malformed("no access_token"))?;
    if let Some(kind) = text("token_type")
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenError::Malformed { reason: format!("token_type is {kind:?}, not Bearer") });
    }
    // A number or a string of digits; anything else (negative, fractional garbage, `1e300`) is either taken as
    // whole seconds or left out, never a value that overflows a clock.
    let expires_in = match value.get("expires_in") {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f.min(u64::MAX as f64) as u64)),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    Ok(TokenAnswer {
        access_token: SecretString::from(access_token),
        refresh_token: text("refresh_token").map(SecretString::from),
        expires_in: expires_in.map(Duration::from_secs),
    })
}

/// `{"error": "...", "error_description": "..."}`, decoded, then redacted and bounded (`crate::redact`: a
/// secret a proxy echoed is taken out in its decoded form, whatever JSON escapes it came in).
fn error_fields(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |key: &str| shown(value.get(key).and_then(Value::as_str).unwrap_or_default().trim());
    (field("error"), field("error_description"))
}
