//! [`Client`]: one instance's Table API and Batch API over HTTP, and its options.
//!
//! - `read.rs`: paged reads (offset and keyset cursors, reads that stop early);
//! - `write.rs`: creates, updates and Batch API calls;
//! - `transport.rs`: one request with its credentials, its body read up to a size limit and then classified
//!   (`answer.rs`), so that only data reaches the caller;
//! - `stats.rs`: the counters of what was sent;
//! - `clock.rs`: the instance's clock, read from the `Date` header of its answers.

mod clock;
mod read;
mod stats;
mod transport;
mod write;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use url::Url;

use super::auth::{Auth, Credentials};
use super::deadline::Pending;
use super::retry::RetryPolicy;
pub(crate) use clock::DateReading;
pub use stats::Stats;

/// The largest answer read by default. A page of 10,000 `sysevent` rows with midwatch's fields is
/// a few MB; a bigger answer means a page size the instance should not be asked for.
pub(crate) const DEFAULT_RESPONSE_LIMIT: u64 = 64 * 1024 * 1024;

/// How to reach and authenticate to one instance.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub base_url: Url,
    pub auth: Credentials,
    pub timeout: Duration,
    pub page_size: u32,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub proxy: Option<Url>,
    /// PEM file of an extra CA to trust (a TLS-inspecting proxy, an on-premise instance); a certificate in it
    /// that is exactly the one the server presents is trusted as it is (`tls.rs`).
    pub extra_ca: Option<PathBuf>,
}

/// A Table API client for one instance.
#[derive(Clone)]
pub struct Client {
    pub(super) http: reqwest::Client,
    pub(super) opts: Arc<ClientOptions>,
    auth: Arc<Auth>,
    permits: Arc<Semaphore>,
    stats: Arc<Stats>,
    clock: Arc<clock::InstanceClock>,
    pub(super) pending: Arc<Pending>,
    response_limit: u64,
}

/// Why a [`Client`] could not be built from its options.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read [instance] ca_file {}: {error}", path.display())]
    CaFileUnreadable { path: PathBuf, error: std::io::Error },
    #[error("[instance] ca_file {} is not a PEM certificate: {error}", path.display())]
    CaFileNotPem { path: PathBuf, error: rustls::pki_types::pem::Error },
    #[error("[instance] ca_file {} holds no PEM certificate", path.display())]
    CaFileEmpty { path: PathBuf },
    /// The TLS trust (the system's roots and `ca_file`) could not be set up.
    #[error("cannot set up TLS for the instance: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP client (its proxy, its TLS configuration) could not be set up.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base_url", &self.opts.base_url.as_str()).finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(15)))
            .user_agent(concat!("midwatch/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(proxy) = &opts.proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy.as_str())?);
        }
        let mut listed = Vec::new();
        if let Some(path) = &opts.extra_ca {
            let pem =
                std::fs::read(path).map_err(|error| ClientError::CaFileUnreadable { path: path.clone(), error })?;
            // Every certificate of the file (a chain or several CAs), as the config check validated it.
            listed = crate::tls::certificates(&pem)
                .map_err(|error| ClientError::CaFileNotPem { path: path.clone(), error })?;
            if listed.is_empty() {
                return Err(ClientError::CaFileEmpty { path: path.clone() });
            }
        }
        // `tls.rs`: the system's roots and `ca_file`, whose certificate is trusted as it is when it is exactly
        // the one presented (reqwest's own verifier would refuse one marked as a CA).
        let mut tls = crate::tls::Verifier::new(listed)?.client_config()?;
        // What reqwest offers by itself without its http2 feature.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = builder.tls_backend_preconfigured(tls).build()?;
        let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        let auth = Arc::new(Auth::new(&opts.auth, http.clone(), &opts.base_url, opts.timeout));
        Ok(Client {
            http,
            auth,
            opts: Arc::new(opts),
            permits,
            stats: Arc::default(),
            clock: Arc::default(),
            pending: Arc::default(),
            response_limit: DEFAULT_RESPONSE_LIMIT,
        })
    }

    /// The same client with another limit on the size of one answer (default `DEFAULT_RESPONSE_LIMIT`, 64 MiB).
    pub fn with_response_limit(mut self, bytes: u64) -> Client {
        self.response_limit = bytes.max(1);
        self
    }

    /// The same client, saying in a refusal of its credentials where each secret came from (the notes of
    /// `[instance]`). Called before the first request: the credentials' standing and token start afresh.
    pub(crate) fn noting_secrets(mut self, notes: &[String]) -> Client {
        let o = &self.opts;
        self.auth = Arc::new(Auth::new(&o.auth, self.http.clone(), &o.base_url, o.timeout).noting(notes));
        self
    }

    /// How requests sign in (one OAuth token shared by every clone of this client).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The requests in flight now (`waiting for sysevent page 3; …`), empty when idle.
    pub(crate) fn pending(&self) -> String {
        self.pending.describe()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The instance's clock as the `Date` header of its latest successful answer read it, if any carried one.
    pub(crate) fn date_reading(&self) -> Option<DateReading> {
        self.clock.latest()
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.opts.page_size
    }

    /// How many of `n` independent GETs go in one Batch API call: the instance serves a call's sub-requests
    /// one after another, so they are spread over `[instance] concurrency` calls, at most `max` each. `None`
    /// where a call would carry fewer than two (it would save no round trip): each goes on its own.
    pub(crate) fn batch_share(&self, n: usize, max: usize) -> Option<usize> {
        let per = n.div_ceil(self.opts.concurrency.max(1)).min(max);
        (per >= 2).then_some(per)
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.opts.base_url.clone();
        url.set_path(path);
        url
    }
}
