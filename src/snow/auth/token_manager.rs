//! The token manager: one token shared by every request, renewed by one request at a time shortly before it
//! expires, and renewed once more for the requests whose token the API refused.

use secrecy::ExposeSecret as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

use super::header::{Authorization, bearer};
use super::token_endpoint::{GrantRequest, TOKEN_PATH, TokenAnswer, TokenEndpoint};
use super::{DEFAULT_LIFETIME, Grant, TokenError, TokenInfo};

/// The longest lifetime taken from an answer: a longer (or absurd) `expires_in` is taken as this.
pub(super) const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A token is never renewed sooner than this after it was asked for, except after a 401.
pub(super) const MIN_RENEWAL: Duration = Duration::from_millis(500);

/// `expires_in` taken as a hint within bounds: absent or zero means the instance's default, more than
/// [`MAX_LIFETIME`] means that; each is logged at warn, so a misconfigured endpoint is visible.
pub(super) fn sane_lifetime(expires_in: Option<Duration>) -> Duration {
    match expires_in {
        Some(d) if d.is_zero() => {
            tracing::warn!("the token endpoint said expires_in 0; assuming the default lifetime of 30 minutes");
            DEFAULT_LIFETIME
        }
        Some(d) if d > MAX_LIFETIME => {
            tracing::warn!(
                expires_in_seconds = d.as_secs(),
                "the token endpoint's expires_in is over 24 hours; taking 24 hours"
            );
            MAX_LIFETIME
        }
        Some(d) => d,
        None => DEFAULT_LIFETIME,
    }
}

/// Which grant the configuration asks for.
pub(super) enum Flow {
    ClientCredentials,
    Password { user: String, password: SecretString },
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
pub(super) fn margin(lifetime: Duration) -> Duration {
    (lifetime / 4).min(Duration::from_secs(60))
}

pub(crate) struct TokenManager {
    endpoint: Box<dyn TokenEndpoint>,
    flow: Flow,
    pub(super) client_id: String,
    /// Whom the calls run as, for the error of a token the API refused twice.
    pub(super) account: String,
    state: tokio::sync::Mutex<TokenState>,
    /// How many token requests were sent.
    pub(super) requests: AtomicU64,
}

impl TokenManager {
    pub(super) fn new(flow: Flow, client_id: &str, account: String, endpoint: Box<dyn TokenEndpoint>) -> TokenManager {
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
    pub(super) async fn authorization(&self) -> Result<Authorization, TokenError> {
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
    pub(super) async fn renew_refused(&self, generation: u64) -> Result<Authorization, TokenError> {
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

    pub(super) async fn sign_in(&self) -> Result<TokenInfo, TokenError> {
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
        // Quoted answers are shown without them from now on (`crate::redact`).
        crate::redact::register_in("access_token", answer.access_token.expose_secret());
        if let Some(refresh) = &answer.refresh_token {
            crate::redact::register_in("refresh_token", refresh.expose_secret());
        }
        if answer.refresh_token.is_some() {
            state.refresh = answer.refresh_token;
        }
        let lifetime = sane_lifetime(answer.expires_in);
        let expires_at = asked_at.checked_add(lifetime).unwrap_or(asked_at);
        state.generation += 1;
        tracing::debug!(
            grant = grant.name(),
            lifetime_seconds = lifetime.as_secs(),
            generation = state.generation,
            refresh_token = state.refresh.is_some(),
            "OAuth token obtained"
        );
        let info = TokenInfo { grant, lifetime, lifetime_stated: answer.expires_in.is_some_and(|d| !d.is_zero()) };
        let token = Token {
            access: answer.access_token,
            generation: state.generation,
            info,
            // Never sooner than MIN_RENEWAL after asking, whatever the lifetime (a 401 still renews at once).
            renew_at: expires_at.checked_sub(margin(lifetime)).unwrap_or(asked_at).max(asked_at + MIN_RENEWAL),
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
