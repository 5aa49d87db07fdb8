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
//!   without a token request. The request is repeated once; a second 401 is final ([`ApiErrorKind::TokenRefused`]).
//! - **Client credentials** come with no refresh token: a new token is minted each time. **Password grant**:
//!   the refresh token is used while the instance accepts it; once it is refused, a new password grant follows.
//!
//! **One refused login, not one per request.** Until an answer proves the credentials, requests go one at a
//! time; the first refusal (a 401 with Basic auth, a refused token request, or a 401 after the one renewal) is
//! what every later request gets, without being sent (`standing.rs`). The instance counts each refused login
//! toward the account's lockout. The refusal names the account and where its secrets came from
//! (`Auth::noting`).
//!
//! Nothing here logs or formats a secret: the client secret, the password and both tokens are
//! [`SecretString`](secrecy::SecretString)s, and `TokenError` messages name the client id and the user, never a credential.
//!
//! - `credentials.rs`: [`Credentials`] as configured, and `TokenInfo` for `config check`;
//! - `header.rs`: the `Basic` and `Bearer` headers;
//! - `token_manager.rs`: the token state, its renewal and the single flight;
//! - `token_endpoint.rs`: the `/oauth_token.do` request and what its answer means;
//! - `token_error.rs`: `TokenError`, worded for the instance's administrator;
//! - `standing.rs`: whether the instance has accepted the credentials, refused them, or not said yet.

mod credentials;
mod header;
mod standing;
mod token_endpoint;
mod token_error;
mod token_manager;

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::HeaderValue;
use url::Url;

pub use credentials::{Credentials, Grant, OAuthClient};
pub(crate) use credentials::{DEFAULT_LIFETIME, TokenInfo};
use header::{Authorization, basic};
use standing::Standing;
use token_endpoint::{HttpEndpoint, TOKEN_PATH, TokenEndpoint};
pub(crate) use token_error::TokenError;
use token_manager::{Flow, TokenManager};

use super::{ApiError, ApiErrorKind};

/// Gives each request its credentials. Shared by every clone of a [`super::Client`], so that all its requests
/// use (and renew) one token.
pub struct Auth {
    kind: Kind,
    /// Whose credentials: `user svc.midwatch`, or the OAuth account.
    who: String,
    /// Where the secrets came from and their stray characters ([`Auth::noting`]); empty when not known.
    secrets: String,
    standing: Standing,
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
    /// The authenticator for `credentials`; OAuth tokens are asked for at `base_url` + `TOKEN_PATH` with
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
        let who = match credentials {
            Credentials::Basic { user, .. } => format!("user {user}"),
            _ => credentials.account(),
        };
        Auth { kind, who, secrets: String::new(), standing: Standing::default() }
    }

    /// The same, saying in a refusal where each secret came from (`the password from [instance] password_file
    /// /etc/midwatch/pw has trailing spaces`).
    pub(crate) fn noting(mut self, notes: &[String]) -> Auth {
        self.secrets = notes.join("; ");
        self
    }

    /// From now on, prove the credentials again with one request before others are sent: a new cycle of the
    /// service, after which a refusal costs one more refused login.
    pub(crate) fn reprove(&self) {
        self.standing.reset();
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
    pub(crate) async fn sign_in(&self) -> Result<Option<TokenInfo>, ApiError> {
        let Kind::OAuth(tokens) = &self.kind else { return Ok(None) };
        let _turn = self.standing.turn().await?;
        tokens.sign_in().await.map(Some).map_err(|error| {
            let e = self.token_error(TOKEN_PATH, error);
            if e.refuses_credentials() {
                self.standing.refused(&e);
            }
            e
        })
    }

    fn token_error(&self, table: &str, error: TokenError) -> ApiError {
        ApiError::new(table, ApiErrorKind::Token { error: Box::new(error), secrets: self.secrets.clone() })
    }

    /// The credentials of the next request.
    async fn authorization(&self) -> Result<Authorization, TokenError> {
        match &self.kind {
            Kind::Basic(header) => Ok(Authorization { header: header.clone(), generation: None }),
            Kind::OAuth(tokens) => tokens.authorization().await,
        }
    }

    /// Runs `send` (one request) in its turn ([`Standing`]) with the current credentials; `status` tells an
    /// answer's HTTP status. A refusal of the credentials is remembered and returned to every later request
    /// without sending it; an answer the instance could only give to accepted credentials proves them.
    pub(super) async fn send<T, F, Fut>(&self, table: &str, status: impl Fn(&T) -> u16, send: F) -> Result<T, ApiError>
    where
        F: FnMut(HeaderValue) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let _turn = self.standing.turn().await?;
        let result = self.signed(table, &status, send).await;
        match &result {
            Err(e) if e.refuses_credentials() => self.standing.refused(e),
            Ok(answer) if matches!(status(answer), 200..=299 | 400 | 403 | 404) => self.standing.proven(),
            _ => {}
        }
        result
    }

    /// Runs `send` with the current credentials. When the API refuses an OAuth token (a 401), the token is renewed
    /// once and `send` runs once more; a second 401 is [`ApiErrorKind::TokenRefused`]. With Basic auth `send` runs
    /// once, and a 401 is [`ApiErrorKind::Unauthorized`].
    async fn signed<T, F, Fut>(&self, table: &str, status: &impl Fn(&T) -> u16, mut send: F) -> Result<T, ApiError>
    where
        F: FnMut(HeaderValue) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let first = self.authorization().await.map_err(|error| self.token_error(table, error))?;
        let result = send(first.header).await;
        if !matches!(&result, Ok(answer) if status(answer) == 401) {
            return result;
        }
        let (Kind::OAuth(tokens), Some(generation)) = (&self.kind, first.generation) else {
            let (who, secrets) = (self.who.clone(), self.secrets.clone());
            return Err(ApiError::new(table, ApiErrorKind::Unauthorized { who, secrets }));
        };
        tracing::debug!(table, "the instance refused the OAuth token (HTTP 401); renewing it once");
        let renewed = tokens.renew_refused(generation).await.map_err(|error| self.token_error(table, error))?;
        match send(renewed.header).await {
            Ok(answer) if status(&answer) == 401 => {
                Err(ApiError::new(table, ApiErrorKind::TokenRefused { who: tokens.account.clone() }))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
