//! What midwatch signs in with, as configured (`[instance] auth`), and what `config check` says about a token.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

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
    pub(crate) id: String,
    pub(crate) secret: SecretString,
}

impl Credentials {
    /// The value of `[instance] auth` this is.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Credentials::Basic { .. } => "basic",
            Credentials::OAuthClientCredentials { .. } => "oauth_client_credentials",
            Credentials::OAuthPassword { .. } => "oauth_password",
        }
    }

    /// Whom the instance sees making the calls, for log lines and messages.
    pub(crate) fn account(&self) -> String {
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
    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct TokenInfo {
    /// The grant that produced the token.
    pub(crate) grant: Grant,
    /// How long the token is valid, from the answer's `expires_in` (or [`DEFAULT_LIFETIME`]).
    pub(crate) lifetime: Duration,
    /// False when the answer had no `expires_in` and [`DEFAULT_LIFETIME`] was assumed.
    pub(crate) lifetime_stated: bool,
}

/// The instance's default access-token lifetime (Application Registry, "Access Token Lifespan"), assumed when
/// an answer states none.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(1800);
