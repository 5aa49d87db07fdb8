//! Signing in to the instance: Basic auth, or an OAuth 2.0 bearer token (`docs/servicenow.md` §5).
//!
//! [`Auth`] gives every request its `Authorization` header, marked sensitive so that the HTTP stack never
//! logs it. With OAuth the token comes from `POST <url>/oauth_token.do` (form-encoded), is held in memory
//! only, is reused until shortly before its `expires_in` runs out, and is then renewed by the request that
//! needs it:
//!
//! - **One renewal at a time.** The token state sits behind a [`tokio::sync::Mutex`] that is held across the
//!   token request, so requests that find the token expired queue behind the one renewal and take its token.
//! - **A refused token is renewed once.** A request whose token the API answered 401 asks for a renewal of
//!   *that* token (its generation); when another request has replaced it meanwhile, the newer token is taken
//!   without a token request. The request is repeated once; a second 401 is final ([`ApiError::TokenRefused`]).
//! - **Client credentials** come with no refresh token: a new token is minted each time. **Password grant**:
//!   the refresh token is used while the instance accepts it; once it is refused, a new password grant follows.
//!
//! Nothing here logs or formats a secret: the client secret, the password and both tokens are
//! [`SecretString`]s, and [`TokenError`] messages name the client id and the user, never a credential.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::ApiError;

/// How midwatch signs in, as configured (`[instance] auth`).
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `auth = "basic"`: the account's user name and password on every request.
    Basic { user: String, password: SecretString },
    /// `auth = "oauth_client_credentials"`: the calls run as the client's OAuth Application User.
    OAuthClientCredentials { client: OAuthClient },
    /// `auth = "oauth_password"`: a token for `user`, renewed with the refresh token.
    OAuthPassword { client: OAuthClient, user: String, password: SecretString },
}

/// An Application Registry entry of the instance ("OAuth API endpoint for external clients").
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub id: String,
    pub secret: SecretString,
}

impl Credentials {
    /// The value of `[instance] auth` this is.
    pub fn method(&self) -> &'static str {
        match self {
            Credentials::Basic { .. } => "basic",
            Credentials::OAuthClientCredentials { .. } => "oauth_client_credentials",
            Credentials::OAuthPassword { .. } => "oauth_password",
        }
    }

    /// Whom the instance sees making the calls, for log lines and messages.
    pub fn account(&self) -> String {
        match self {
            Credentials::Basic { user, .. } => user.clone(),
            Credentials::OAuthClientCredentials { client } => {
                format!("the OAuth Application User of client_id \"{}\"", client.id)
            }
            Credentials::OAuthPassword { client, user, .. } => format!("{user} (OAuth client_id \"{}\")", client.id),
        }
    }
}

/// An OAuth grant type, as `grant_type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials,
    Password,
    RefreshToken,
}

impl Grant {
    pub fn name(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::RefreshToken => "refresh_token",
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `config check` says about the token it obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// The grant that produced the token.
    pub grant: Grant,
    /// How long the token is valid, from the answer's `expires_in` (or [`DEFAULT_LIFETIME`]).
    pub lifetime: Duration,
    /// False when the answer had no `expires_in` and [`DEFAULT_LIFETIME`] was assumed.
    pub lifetime_stated: bool,
}

/// The instance's default access-token lifetime (Application Registry, "Access Token Lifespan"), assumed when
/// an answer states none.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(1800);

/// The path of the token endpoint, relative to the instance root.
pub const TOKEN_PATH: &str = "/oauth_token.do";

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
    /// True for what a retry may cure: a lost connection, a timeout, a gateway error.
    pub fn is_transient(&self) -> bool {
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

// ---------------------------------------------------------------------------------------------------------------
// The authenticator a client holds

/// The `Authorization` header of one request, and which token it carried.
#[derive(Debug, Clone)]
pub(crate) struct Authorization {
    pub(crate) header: HeaderValue,
    /// The token's generation; `None` for Basic auth.
    generation: Option<u64>,
}

/// Gives each request its credentials. Shared by every clone of a [`super::Client`], so that all its requests
/// use (and renew) one token.
pub struct Auth {
    kind: Kind,
}

enum Kind {
    Basic(HeaderValue),
    OAuth(Box<TokenManager>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Basic(_) => f.write_str("Auth::Basic"),
            Kind::OAuth(tokens) => f
                .debug_struct("Auth::OAuth")
                .field("client_id", &tokens.client_id)
                .field("account", &tokens.account)
                .finish_non_exhaustive(),
        }
    }
}

impl Auth {
    /// The authenticator for `credentials`; OAuth tokens are asked for at `base_url` + [`TOKEN_PATH`] with
    /// `http` (the API's own client: same proxy, CA and timeout).
    pub(crate) fn new(credentials: &Credentials, http: reqwest::Client, base_url: &Url, timeout: Duration) -> Auth {
        let mut url = base_url.clone();
        url.set_path(TOKEN_PATH);
        let endpoint = |client: &OAuthClient| {
            Box::new(HttpEndpoint { http, url, client: client.clone(), timeout }) as Box<dyn TokenEndpoint>
        };
        let kind = match credentials {
            Credentials::Basic { user, password } => Kind::Basic(basic(user, password)),
            Credentials::OAuthClientCredentials { client } => Kind::OAuth(Box::new(TokenManager::new(
                Flow::ClientCredentials,
                &client.id,
                credentials.account(),
                endpoint(client),
            ))),
            Credentials::OAuthPassword { client, user, password } => Kind::OAuth(Box::new(TokenManager::new(
                Flow::Password { user: user.clone(), password: password.clone() },
                &client.id,
                credentials.account(),
                endpoint(client),
            ))),
        };
        Auth { kind }
    }

    /// How many token requests were sent so far (0 with Basic auth).
    pub fn token_requests(&self) -> u64 {
        match &self.kind {
            Kind::Basic(_) => 0,
            Kind::OAuth(tokens) => tokens.requests.load(Ordering::Relaxed),
        }
    }

    /// Obtains a token now (or takes the current one) and says how: `None` with Basic auth, which has nothing to
    /// obtain. `config check` calls it before it probes the tables.
    pub async fn sign_in(&self) -> Result<Option<TokenInfo>, TokenError> {
        match &self.kind {
            Kind::Basic(_) => Ok(None),
            Kind::OAuth(tokens) => tokens.sign_in().await.map(Some),
        }
    }

    /// The credentials of the next request.
    async fn authorization(&self) -> Result<Authorization, TokenError> {
        match &self.kind {
            Kind::Basic(header) => Ok(Authorization { header: header.clone(), generation: None }),
            Kind::OAuth(tokens) => tokens.authorization().await,
        }
    }

    /// Runs `send` (one request) with the current credentials. When the API refuses an OAuth token (`refused`:
    /// a 401), the token is renewed once and `send` runs once more; a second 401 is [`ApiError::TokenRefused`].
    /// With Basic auth `send` runs once, and a 401 goes on to be classified as refused credentials.
    pub(super) async fn send<T, F, Fut>(
        &self,
        table: &str,
        refused: impl Fn(&T) -> bool,
        mut send: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut(HeaderValue) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let token_error = |error| ApiError::Token { table: table.into(), error };
        let first = self.authorization().await.map_err(token_error)?;
        let result = send(first.header).await;
        let (Kind::OAuth(tokens), Some(generation)) = (&self.kind, first.generation) else {
            return result;
        };
        if !matches!(&result, Ok(answer) if refused(answer)) {
            return result;
        }
        tracing::debug!(table, "the instance refused the OAuth token (HTTP 401); renewing it once");
        let renewed = tokens.renew_refused(generation).await.map_err(token_error)?;
        match send(renewed.header).await {
            Ok(answer) if refused(&answer) => {
                Err(ApiError::TokenRefused { table: table.into(), who: tokens.account.clone() })
            }
            other => other,
        }
    }
}

/// `Basic base64(user:password)`, as reqwest's `basic_auth` builds it.
fn basic(user: &str, password: &SecretString) -> HeaderValue {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose_secret()));
    // Base64 is always a valid header value.
    let mut header = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap_or(HeaderValue::from_static(""));
    header.set_sensitive(true);
    header
}

/// `Bearer <token>`, marked sensitive; `None` when the token holds a character a header cannot carry.
fn bearer(token: &SecretString) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).ok()?;
    header.set_sensitive(true);
    Some(header)
}

// ---------------------------------------------------------------------------------------------------------------
// The token manager

/// Which grant the configuration asks for.
enum Flow {
    ClientCredentials,
    Password { user: String, password: SecretString },
}

/// One token request, with what it carries besides the client's id and secret.
pub(crate) enum GrantRequest<'a> {
    ClientCredentials,
    Password { user: &'a str, password: &'a SecretString },
    RefreshToken { token: &'a SecretString },
}

impl GrantRequest<'_> {
    fn grant(&self) -> Grant {
        match self {
            GrantRequest::ClientCredentials => Grant::ClientCredentials,
            GrantRequest::Password { .. } => Grant::Password,
            GrantRequest::RefreshToken { .. } => Grant::RefreshToken,
        }
    }
}

/// A successful answer of the token endpoint.
pub(crate) struct TokenAnswer {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    expires_in: Option<Duration>,
}

/// Where tokens come from: the instance's `/oauth_token.do`, or a test's stand-in.
pub(crate) trait TokenEndpoint: Send + Sync {
    fn request<'a>(&'a self, grant: GrantRequest<'a>) -> BoxFuture<'a, Result<TokenAnswer, TokenError>>;
}

/// The current token and what renews it.
#[derive(Default)]
struct TokenState {
    current: Option<Token>,
    /// From the last password grant; kept across refreshes (a refresh answers with an access token only).
    refresh: Option<SecretString>,
    /// Bumped by every token obtained.
    generation: u64,
}

struct Token {
    access: SecretString,
    generation: u64,
    info: TokenInfo,
    /// Renewed from here on, shortly before it runs out.
    renew_at: Instant,
    /// The instance stops accepting it here (by its `expires_in`, counted from when it was asked for).
    expires_at: Instant,
}

impl Token {
    fn authorization(&self) -> Result<Authorization, TokenError> {
        let header = bearer(&self.access).ok_or_else(not_a_header)?;
        Ok(Authorization { header, generation: Some(self.generation) })
    }
}

fn not_a_header() -> TokenError {
    TokenError::Malformed { reason: "the access_token holds characters an HTTP header cannot carry".into() }
}

/// How long before its end a token is renewed: a minute, or a quarter of a shorter lifetime, so that no request
/// leaves with a token that runs out on the wire.
fn margin(lifetime: Duration) -> Duration {
    (lifetime / 4).min(Duration::from_secs(60))
}

pub(crate) struct TokenManager {
    endpoint: Box<dyn TokenEndpoint>,
    flow: Flow,
    client_id: String,
    /// Whom the calls run as, for [`ApiError::TokenRefused`].
    account: String,
    state: tokio::sync::Mutex<TokenState>,
    requests: AtomicU64,
}

impl TokenManager {
    fn new(flow: Flow, client_id: &str, account: String, endpoint: Box<dyn TokenEndpoint>) -> TokenManager {
        TokenManager {
            endpoint,
            flow,
            client_id: client_id.to_string(),
            account,
            state: tokio::sync::Mutex::default(),
            requests: AtomicU64::new(0),
        }
    }

    /// The current token while it is not due for renewal, else a new one.
    async fn authorization(&self) -> Result<Authorization, TokenError> {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.current
            && Instant::now() < token.renew_at
        {
            return token.authorization();
        }
        self.renew(&mut state).await?.authorization()
    }

    /// A replacement for the token of `generation`, which the API refused: the token another request obtained
    /// meanwhile, or a new one.
    async fn renew_refused(&self, generation: u64) -> Result<Authorization, TokenError> {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.current
            && token.generation > generation
            && Instant::now() < token.expires_at
        {
            return token.authorization();
        }
        // Refused before its time: it is of no more use.
        state.current = None;
        self.renew(&mut state).await?.authorization()
    }

    async fn sign_in(&self) -> Result<TokenInfo, TokenError> {
        self.authorization().await?;
        let state = self.state.lock().await;
        state.current.as_ref().map(|t| t.info).ok_or_else(|| TokenError::Malformed { reason: "no token".into() })
    }

    /// Obtains a new token; called with the state locked, so that concurrent requests share it.
    async fn renew<'s>(&self, state: &'s mut TokenState) -> Result<&'s Token, TokenError> {
        let asked_at = Instant::now();
        let (grant, answer) = match &self.flow {
            Flow::ClientCredentials => (Grant::ClientCredentials, self.ask(GrantRequest::ClientCredentials).await?),
            Flow::Password { user, password } => {
                let refreshed = match &state.refresh {
                    Some(token) => match self.ask(GrantRequest::RefreshToken { token }).await {
                        Ok(answer) => Some(answer),
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => {
                            tracing::debug!(error = %e, "the refresh token was refused; asking for a new password grant");
                            None
                        }
                    },
                    None => None,
                };
                match refreshed {
                    Some(answer) => (Grant::RefreshToken, answer),
                    None => {
                        state.refresh = None;
                        let answer = self.ask(GrantRequest::Password { user, password }).await?;
                        (Grant::Password, answer)
                    }
                }
            }
        };
        if bearer(&answer.access_token).is_none() {
            return Err(not_a_header());
        }
        if answer.refresh_token.is_some() {
            state.refresh = answer.refresh_token;
        }
        let lifetime = answer.expires_in.unwrap_or(DEFAULT_LIFETIME);
        let expires_at = asked_at + lifetime;
        state.generation += 1;
        tracing::debug!(
            grant = grant.name(),
            lifetime_seconds = lifetime.as_secs(),
            generation = state.generation,
            refresh_token = state.refresh.is_some(),
            "OAuth token obtained"
        );
        let info = TokenInfo { grant, lifetime, lifetime_stated: answer.expires_in.is_some() };
        let token = Token {
            access: answer.access_token,
            generation: state.generation,
            info,
            renew_at: expires_at - margin(lifetime),
            expires_at,
        };
        Ok(state.current.insert(token))
    }

    async fn ask(&self, grant: GrantRequest<'_>) -> Result<TokenAnswer, TokenError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(grant = grant.grant().name(), client_id = self.client_id, "POST {TOKEN_PATH}");
        self.endpoint.request(grant).await
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The instance's token endpoint

/// `POST <url>/oauth_token.do`, form-encoded: a JSON body gives an unspecified error (`docs/servicenow.md` §5).
struct HttpEndpoint {
    http: reqwest::Client,
    url: Url,
    client: OAuthClient,
    timeout: Duration,
}

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
        let body = response.bytes().await.map_err(|e| self.transport_error(&e))?;
        let user = match &grant {
            GrantRequest::Password { user, .. } => Some(user.to_string()),
            _ => None,
        };
        if (200..300).contains(&status) {
            return self.answer(kind, user, status, &headers, &body);
        }
        self.answer(kind, user, status, &headers, self.scrub(&body, &grant).as_bytes())
    }

    /// An error answer with every secret of the request taken out (a proxy's error page might echo the request),
    /// before any of it is quoted in a message.
    fn scrub(&self, body: &[u8], grant: &GrantRequest<'_>) -> String {
        let mut secrets = vec![self.client.secret.expose_secret()];
        match grant {
            GrantRequest::Password { password, .. } => secrets.push(password.expose_secret()),
            GrantRequest::RefreshToken { token } => secrets.push(token.expose_secret()),
            GrantRequest::ClientCredentials => {}
        }
        let mut text = String::from_utf8_lossy(body).into_owned();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            text = text.replace(secret, "[redacted]").replace(&encoded, "[redacted]");
        }
        text
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
            let location = headers.get(LOCATION).and_then(|l| l.to_str().ok()).unwrap_or("an unnamed page");
            // The query of a sign-on URL is of no use in a message.
            let location = location.split(['?', '#']).next().unwrap_or_default().to_string();
            return Err(TokenError::Redirected { url, status, location });
        }
        if super::answer::is_html(headers, body) {
            return Err(match status {
                500..=599 => TokenError::Status { status, answer: "an HTML error page".into() },
                _ => TokenError::Html { url, status },
            });
        }
        if (200..300).contains(&status) {
            return parse_answer(body);
        }
        let (error, description) = error_fields(body);
        let answer = match (error.is_empty(), description.is_empty()) {
            (true, true) => String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string(),
            (false, true) => error.clone(),
            (true, false) => description.clone(),
            (false, false) => format!("{error}: {description}"),
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
        let mut parts = vec![e.to_string()];
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            parts.push(s.to_string());
            source = s.source();
        }
        parts.dedup();
        TokenError::Connect { url, reason: parts.join(": ") }
    }
}

/// `{"access_token", "refresh_token"?, "expires_in", "token_type": "Bearer", "scope"}`; `expires_in` may be a
/// number or a string of digits. Read as a JSON value, so that no parse error can quote a token.
fn parse_answer(body: &[u8]) -> Result<TokenAnswer, TokenError> {
    let malformed = |reason: &str| TokenError::Malformed { reason: reason.to_string() };
    let value: Value = serde_json::from_slice(body).map_err(|e| TokenError::Malformed { reason: format!("{e}") })?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    let access_token = text("access_token").ok_or_else(|| malformed("no access_token"))?;
    if let Some(kind) = text("token_type")
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenError::Malformed { reason: format!("token_type is {kind:?}, not Bearer") });
    }
    let expires_in = match value.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    Ok(TokenAnswer {
        access_token: SecretString::from(access_token),
        refresh_token: text("refresh_token").map(SecretString::from),
        expires_in: expires_in.map(Duration::from_secs),
    })
}

/// `{"error": "...", "error_description": "..."}`, each cut to 200 characters.
fn error_fields(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |key: &str| {
        value.get(key).and_then(Value::as_str).unwrap_or_default().trim().chars().take(200).collect::<String>()
    };
    (field("error"), field("error_description"))
}

#[cfg(test)]
mod tests;
