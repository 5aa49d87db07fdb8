//! The peers of the Alertmanager cluster over HTTP: one request to each, all at once, each bounded by
//! `[alertmanager] timeout` and all by the cycle's deadline. `POST /api/v2/alerts` takes a cycle's alerts;
//! `GET /api/v2/status` is what `config check` asks. TLS trusts what `[instance]` trusts (`crate::tls`: the
//! system's roots and `[alertmanager] ca_file`). A failure is worded with the peer's URL and what to do, never
//! with a secret: an answer's body is quoted redacted (`crate::redact`) and short.

use std::error::Error as _;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::ExposeSecret as _;
use url::Url;

use super::alert::Alert;
use crate::config::{AlertmanagerConfig, PeerAuth};
use crate::deadline::Deadline;

/// The longest part of an answer quoted in a message.
const QUOTED: usize = 200;

/// The HTTP client of the configured peers.
#[derive(Clone)]
pub(crate) struct Peers {
    http: reqwest::Client,
    urls: Vec<Url>,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.urls.iter().map(Url::as_str).collect();
        f.debug_struct("Peers").field("urls", &urls).finish_non_exhaustive()
    }
}

/// Why the client of the peers could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeersError {
    #[error("cannot read [alertmanager] ca_file {}: {error}", path.display())]
    CaFile { path: std::path::PathBuf, error: std::io::Error },
    #[error("[alertmanager] ca_file {} holds no usable PEM certificate", path.display())]
    CaFileEmpty { path: std::path::PathBuf },
    #[error("cannot set up TLS for the Alertmanager peers: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot set up the HTTP client for the Alertmanager peers: {0}")]
    Http(#[from] reqwest::Error),
    #[error("[alertmanager] credentials cannot be sent in an HTTP header (a control character?)")]
    Header,
}

/// Why one peer did not take a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PeerError {
    #[error("cannot connect ({0})")]
    Connect(String),
    #[error("no answer within {} ([alertmanager] timeout)", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("its TLS certificate is refused ({0}): put the peer's CA in [alertmanager] ca_file")]
    Certificate(String),
    #[error(
        "it refused midwatch's credentials (HTTP {0}): check [alertmanager] bearer_token_file, or user and \
         password_file"
    )]
    Refused(u16),
    #[error("it answered HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Status { status: u16, body: String },
    #[error("the cycle's deadline passed first; the next cycle posts again")]
    DeadlinePassed,
}

/// What one peer did with one request: its URL, and its answer's body when it took it.
#[derive(Debug, Clone)]
pub(crate) struct Answered {
    pub(crate) url: Url,
    pub(crate) result: Result<String, PeerError>,
}

impl Peers {
    pub(crate) fn new(config: &AlertmanagerConfig) -> Result<Peers, PeersError> {
        let mut listed = Vec::new();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|error| PeersError::CaFile { path: path.clone(), error })?;
            listed = crate::tls::certificates(&pem).unwrap_or_default();
            if listed.is_empty() {
                return Err(PeersError::CaFileEmpty { path: path.clone() });
            }
        }
        let mut tls = crate::tls::Verifier::new(listed)?.client_config()?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("midwatch/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(tls)
            .build()?;
        let authorization = match &config.auth {
            None => None,
            Some(PeerAuth::Bearer(token)) => Some(format!("Bearer {}", token.expose_secret())),
            Some(PeerAuth::Basic { user, password }) => {
                let pair = format!("{user}:{}", password.expose_secret());
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
            }
        };
        let authorization = match authorization {
            None => None,
            Some(value) => {
                let mut header = HeaderValue::from_str(&value).map_err(|_| PeersError::Header)?;
                header.set_sensitive(true);
                Some(header)
            }
        };
        Ok(Peers { http, urls: config.urls.clone(), authorization, timeout: config.timeout })
    }

    /// How many peers there are.
    pub(crate) fn count(&self) -> usize {
        self.urls.len()
    }

    /// `POST /api/v2/alerts` with `alerts` to every peer at once, before `deadline`.
    pub(crate) async fn post(&self, alerts: &[Alert], deadline: Deadline) -> Vec<Answered> {
        let body = serde_json::to_vec(alerts).unwrap_or_default();
        let requests = self.urls.iter().map(|url| {
            let request = self
                .with_auth(self.http.post(endpoint(url, "api/v2/alerts")))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            self.answer(url, request, deadline)
        });
        futures::future::join_all(requests).await
    }

    /// `GET /api/v2/status` of every peer at once, before `deadline`.
    pub(crate) async fn status(&self, deadline: Deadline) -> Vec<Answered> {
        let requests = self.urls.iter().map(|url| {
            let request = self.with_auth(self.http.get(endpoint(url, "api/v2/status")));
            self.answer(url, request, deadline)
        });
        futures::future::join_all(requests).await
    }

    fn with_auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        }
    }

    /// One request to the peer at `url` and its answer: the body of a 2xx, else why not.
    async fn answer(&self, url: &Url, request: reqwest::RequestBuilder, deadline: Deadline) -> Answered {
        let exchange = async {
            let response = request.send().await.map_err(|e| self.transport_error(&e))?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(|e| self.transport_error(&e))?;
            match status {
                200..=299 => Ok(body),
                401 | 403 => Err(PeerError::Refused(status)),
                _ => Err(PeerError::Status { status, body: quoted(&body) }),
            }
        };
        let result = deadline.bounded(exchange).await.unwrap_or(Err(PeerError::DeadlinePassed));
        Answered { url: url.clone(), result }
    }

    fn transport_error(&self, e: &reqwest::Error) -> PeerError {
        if e.is_timeout() {
            return PeerError::Timeout(self.timeout);
        }
        if let Some(problem) = crate::tls::refusal(e) {
            let why = if crate::tls::is_marked_as_ca(problem) {
                format!("{}, and ca_file does not hold that very certificate", crate::tls::MarkedAsCa)
            } else {
                problem.to_string()
            };
            return PeerError::Certificate(crate::escape::clean(&why));
        }
        PeerError::Connect(cause(e))
    }
}

/// `path` below a peer's URL (which ends with `/`).
fn endpoint(url: &Url, path: &str) -> Url {
    url.join(path).unwrap_or_else(|_| url.clone())
}

/// What went wrong at the bottom of an error's sources (`Connection refused (os error 111)`): the message
/// names the peer's URL already, and reqwest's outer layers repeat it.
fn cause(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    crate::escape::clean(&crate::redact::redact(&text))
}

/// An answer's body fit to quote: redacted, one line, short.
fn quoted(body: &str) -> String {
    let text = crate::escape::clean(crate::redact::redact(body.trim()).as_ref());
    match text.char_indices().nth(QUOTED) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}
