//! The simulated instance's OAuth: `POST /oauth_token.do` and the bearer tokens it issues.
//!
//! It behaves as `docs/servicenow.md` §5 describes the instance: a form-encoded body; the client credentials
//! grant only when enabled (the system property), and then no refresh token; the password grant for an active,
//! interactive user, answering the current access token while it is valid, with a refresh token; the refresh
//! grant answering an access token only; refusals as `401 {"error_description":"access_denied",
//! "error":"server_error"}`; an unknown grant type as `400 unsupported_grant_type`. Where the instance's
//! behaviour is not documented (how a refused refresh token or a JSON body is answered), the fake picks the
//! answer a client must handle anyway: 401 `access_denied`, and 400 `invalid_request`.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth_token.do";

/// An Application Registry entry ("OAuth API endpoint for external clients") and the instance settings
/// around it.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    /// The entry's Access Token Lifespan (the instance's default is 1800 s).
    pub access_lifetime: Duration,
    /// The entry's Refresh Token Lifespan (default 100 days).
    pub refresh_lifetime: Duration,
    /// `glide.oauth.inbound.client.credential.grant_type.enabled` is true and the entry names an OAuth
    /// Application User.
    pub client_credentials: bool,
    /// The instance's user is "Web service access only": the password grant refuses it.
    pub user_web_service_only: bool,
    /// Basic auth is refused on the API (the Basic-auth restriction enforced), so every API call that succeeds
    /// carried a bearer token.
    pub basic_refused: bool,
}

impl OAuthApp {
    /// An entry with the instance's default lifetimes, both grants usable, Basic auth refused.
    pub fn new(client_id: &str, client_secret: &str) -> OAuthApp {
        OAuthApp {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            access_lifetime: Duration::from_secs(1800),
            refresh_lifetime: Duration::from_secs(8_640_000),
            client_credentials: true,
            user_web_service_only: false,
            basic_refused: true,
        }
    }
}

#[derive(Debug)]
struct Issued {
    token: String,
    expires_at: Instant,
    revoked: bool,
    /// Issued by the password grant (or a refresh of it), for the user.
    for_user: bool,
}

impl Issued {
    fn valid(&self, now: Instant) -> bool {
        !self.revoked && now < self.expires_at
    }
}

/// The entry and the tokens issued so far.
#[derive(Debug)]
pub(super) struct OAuthState {
    pub(super) app: OAuthApp,
    access: Vec<Issued>,
    refresh: Vec<Issued>,
    counter: u64,
}

impl OAuthState {
    pub(super) fn new(app: OAuthApp) -> OAuthState {
        OAuthState { app, access: Vec::new(), refresh: Vec::new(), counter: 0 }
    }

    /// Whether `token` is an access token the instance issued, still valid.
    pub(super) fn accepts(&self, token: &str) -> bool {
        let now = Instant::now();
        self.access.iter().any(|t| t.token == token && t.valid(now))
    }

    /// Every access token stops being accepted before its time (an administrator revoked them).
    pub(super) fn revoke_access_tokens(&mut self) {
        self.access.iter_mut().for_each(|t| t.revoked = true);
    }

    pub(super) fn revoke_refresh_tokens(&mut self) {
        self.refresh.iter_mut().for_each(|t| t.revoked = true);
    }

    /// Every token issued so far, access and refresh.
    pub(super) fn issued(&self) -> Vec<String> {
        self.access.iter().chain(&self.refresh).map(|t| t.token.clone()).collect()
    }

    /// Answers one token request: `(status, JSON body)`. `account` is the instance's (only) user and password.
    pub(super) fn token_request(&mut self, content_type: &str, body: &str, account: (&str, &str)) -> (u16, String) {
        if !content_type.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
            return error(400, "invalid_request", "the request body must be application/x-www-form-urlencoded");
        }
        let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default();
        if param("client_id") != self.app.client_id || param("client_secret") != self.app.client_secret {
            return access_denied();
        }
        let now = Instant::now();
        match param("grant_type") {
            "client_credentials" if self.app.client_credentials => {
                let access = self.issue(now, false);
                answer(&access, None, self.app.access_lifetime)
            }
            "client_credentials" => access_denied(),
            "password" => {
                let (user, password) = account;
                if param("username") != user || param("password") != password || self.app.user_web_service_only {
                    return access_denied();
                }
                // Within the access token's lifetime the instance answers the current token.
                let current = self.access.iter().rev().find(|t| t.for_user && t.valid(now));
                let (access, expires_in) = match current {
                    Some(t) => (t.token.clone(), t.expires_at.saturating_duration_since(now)),
                    None => (self.issue(now, true), self.app.access_lifetime),
                };
                let refresh = match self.refresh.iter().rev().find(|t| t.valid(now)) {
                    Some(t) => t.token.clone(),
                    None => {
                        let token = self.token();
                        let expires_at = now + self.app.refresh_lifetime;
                        self.refresh.push(Issued { token: token.clone(), expires_at, revoked: false, for_user: true });
                        token
                    }
                };
                answer(&access, Some(&refresh), expires_in)
            }
            "refresh_token" => {
                let given = param("refresh_token");
                if !self.refresh.iter().any(|t| t.token == given && t.valid(now)) {
                    return access_denied();
                }
                let access = self.issue(now, true);
                answer(&access, None, self.app.access_lifetime)
            }
            other => error(400, "unsupported_grant_type", &format!("grant type {other} is not supported")),
        }
    }

    fn issue(&mut self, now: Instant, for_user: bool) -> String {
        let token = self.token();
        let expires_at = now + self.app.access_lifetime;
        self.access.push(Issued { token: token.clone(), expires_at, revoked: false, for_user });
        token
    }

    /// An opaque token no test can guess: a hash of a counter, the clock and the process.
    fn token(&mut self) -> String {
        self.counter += 1;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let digest = Sha256::digest(format!("{}:{nanos}:{}", self.counter, std::process::id()));
        digest.iter().take(24).map(|b| format!("{b:02x}")).collect()
    }
}

/// The body of a token request as the request log keeps it: the secrets replaced by `[redacted]`.
pub(super) fn redact(body: &str) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(body.as_bytes()) {
        match key.as_ref() {
            "client_secret" | "password" | "refresh_token" => out.append_pair(&key, "[redacted]"),
            _ => out.append_pair(&key, &value),
        };
    }
    out.finish()
}

fn answer(access: &str, refresh: Option<&str>, expires_in: Duration) -> (u16, String) {
    let mut body = serde_json::json!({
        "access_token": access,
        "scope": "useraccount",
        "token_type": "Bearer",
        "expires_in": expires_in.as_secs(),
    });
    if let (Some(refresh), Some(map)) = (refresh, body.as_object_mut()) {
        map.insert("refresh_token".into(), refresh.into());
    }
    (200, body.to_string())
}

/// The instance's refusal, in its key order.
fn access_denied() -> (u16, String) {
    (401, r#"{"error_description":"access_denied","error":"server_error"}"#.to_string())
}

fn error(status: u16, error: &str, description: &str) -> (u16, String) {
    (status, serde_json::json!({ "error_description": description, "error": error }).to_string())
}
