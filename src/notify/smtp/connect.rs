//! Opening the SMTP connection: greeting (first read by `greeting.rs`, which tells another service from an SMTP
//! server), STARTTLS or implicit TLS, the SIZE the server offers (RFC 1870), AUTH. A failure is either the server being
//! unavailable (try again next cycle) or the configuration keeping the mail from going, such as a refused
//! certificate (`certificate.rs`): that one is said with what to fix, and never called "unavailable".
//!
//! The server's certificate is checked by `tls.rs`, as the instance's is: the system's roots and `[email]
//! ca_file`, whose certificate is trusted as it is when it is exactly the server's. lettre builds its rustls
//! configuration itself and takes no verifier of ours, so lettre's handshake checks only what it proves by
//! itself: that the server holds the private key of the certificate it presents (the handshake signature).
//! [`verify_peer`] then checks that certificate, once the handshake is done and before anything but EHLO (the
//! same EHLO the plaintext part of STARTTLS already sent) goes over the connection: no password, no envelope,
//! no message reaches a server whose certificate is refused.

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::CertificateDer;
use secrecy::ExposeSecret as _;

use super::{Fail, certificate, classify, greeting, reply_of};
use crate::config::{EmailConfig, TlsMode};

/// Why no connection could be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The server did not answer, broke off, or refused for now: the mail waits for the next cycle.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The configuration keeps the mail from going: the mail stays queued and is tried again each cycle, but
    /// cannot go until the configuration (or the server's certificate) is fixed.
    #[error(transparent)]
    Configuration(#[from] Misconfigured),
}

/// The server is unavailable for now.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unavailable {
    /// Connecting, or the STARTTLS handshake (`step` is `STARTTLS failed: ` then), failed: `reply` says how.
    #[error("{step}{reply}")]
    Handshake { step: &'static str, reply: String },
    #[error("the server does not offer STARTTLS, which tls = \"required\" needs")]
    NoStartTls,
    #[error(
        "the server did not offer STARTTLS: refusing to send the password in clear (tls = \"opportunistic\"); use \
         tls = \"required\" or an smtps:// url"
    )]
    PasswordInClear,
    #[error("authentication as {user} refused: {reply}")]
    AuthenticationRefused { user: String, reply: String },
    #[error("no greeting/EHLO/STARTTLS/AUTH within {}", humantime::format_duration(*within))]
    NoAnswer { within: Duration },
    /// The server said nothing after connecting (`greeting.rs`): an HTTP server waits so for a request.
    #[error(
        "no SMTP greeting from {server} within {}: is this an SMTP port? (an SMTP server greets at once; an HTTP \
         server, for one, waits in silence for a request)",
        humantime::format_duration(*within)
    )]
    NoGreeting { server: String, within: Duration },
}

/// What in the configuration keeps the mail from going, worded with what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Misconfigured {
    #[error("[email] ca_file {} cannot be read: {source}; fix the file or its permissions", path.display())]
    CaFileUnreadable { path: PathBuf, source: std::io::Error },
    #[error(
        "[email] ca_file {} is not a valid PEM certificate file ({source}); run `midwatch config check --offline`",
        path.display()
    )]
    CaFileInvalid { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("[email] ca_file {} holds no PEM certificate; run `midwatch config check --offline`", path.display())]
    CaFileEmpty { path: PathBuf },
    #[error("cannot set up TLS for {host}: {source}")]
    Tls { host: String, source: lettre::transport::smtp::Error },
    /// The trusted roots (the system's and `ca_file`) could not be set up.
    #[error("cannot set up TLS for {host}: {source}")]
    Trust { host: String, source: rustls::Error },
    /// The server's certificate was refused (not trusted, not valid for the host, expired…): the wording of
    /// `certificate.rs`.
    #[error("{0}")]
    Certificate(String),
    /// The server's first line is not an SMTP reply (`greeting.rs`): another service listens on the port.
    #[error(
        "the server at {server} does not speak SMTP: it answered `{answered}`; check the port in [email] url (587 \
         for submission with STARTTLS, 465 for smtps://, 25 for a relay)"
    )]
    NotSmtp { server: String, answered: String },
}

impl Misconfigured {
    /// Whether the text already names the `[email]` setting it is about.
    pub(super) fn names_its_setting(&self) -> bool {
        matches!(
            self,
            Misconfigured::CaFileUnreadable { .. }
                | Misconfigured::CaFileInvalid { .. }
                | Misconfigured::CaFileEmpty { .. }
        )
    }
}

/// The TLS parameters for the configured host: lettre checks the handshake, [`verify_peer`] the certificate.
fn tls_parameters(cfg: &EmailConfig) -> Result<TlsParameters, ConnectError> {
    // Not trusting any certificate: `verify_peer` decides, before anything is sent (see the module's doc).
    TlsParameters::builder(cfg.host.clone())
        .dangerous_accept_invalid_certs(true)
        .dangerous_accept_invalid_hostnames(true)
        .build()
        .map_err(|source| Misconfigured::Tls { host: cfg.host.clone(), source }.into())
}

/// The verifier of `tls.rs` for the system's roots and every certificate of `ca_file`.
fn verifier(cfg: &EmailConfig) -> Result<crate::tls::Verifier, ConnectError> {
    let mut listed = Vec::new();
    if let Some(path) = &cfg.ca_file {
        // Validated when the config was loaded; read again here, as the file may have changed since.
        let pem =
            std::fs::read(path).map_err(|source| Misconfigured::CaFileUnreadable { path: path.clone(), source })?;
        listed = crate::tls::certificates(&pem)
            .map_err(|source| Misconfigured::CaFileInvalid { path: path.clone(), source })?;
        if listed.is_empty() {
            return Err(Misconfigured::CaFileEmpty { path: path.clone() }.into());
        }
    }
    Ok(crate::tls::Verifier::new(listed).map_err(|source| Misconfigured::Trust { host: cfg.host.clone(), source })?)
}

/// Checks the certificate the server presented in the handshake just made; a refused one ends the connection
/// there, worded by `certificate.rs`.
async fn verify_peer(
    cfg: &EmailConfig,
    verifier: &crate::tls::Verifier,
    conn: &mut AsyncSmtpConnection,
) -> Result<(), ConnectError> {
    let verdict = match conn.certificate_chain() {
        Ok(chain) => {
            let chain: Vec<CertificateDer<'_>> = chain.into_iter().map(CertificateDer::from).collect();
            verifier.verify_chain(&chain, &cfg.host)
        }
        Err(e) => Err(rustls::Error::General(reply_of(&e))),
    };
    match verdict {
        Ok(()) => Ok(()),
        Err(e) => {
            conn.abort().await;
            Err(Misconfigured::Certificate(certificate::worded(cfg, &e)).into())
        }
    }
}

/// A failed TLS handshake (or any failure of the step that makes one): a configuration error when the
/// server's certificate was refused, else the server being unavailable.
fn handshake_failed(cfg: &EmailConfig, e: &lettre::transport::smtp::Error, step: &'static str) -> ConnectError {
    match certificate::refused(cfg, e) {
        Some(wording) => Misconfigured::Certificate(wording).into(),
        None => Unavailable::Handshake { step, reply: reply_of(e) }.into(),
    }
}

/// An open connection, and what the server's EHLO offers of the SIZE extension.
pub(super) struct Relay {
    pub(super) conn: AsyncSmtpConnection,
    pub(super) size: SizeOffer,
}

/// The SIZE extension (RFC 1870) as the server's EHLO offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SizeOffer {
    NotOffered,
    /// `SIZE` or `SIZE 0`: offered, without a fixed limit.
    NoLimit,
    /// `SIZE 10240000`: a larger message is refused.
    Limit(usize),
}

impl SizeOffer {
    /// What the lines of an EHLO reply say (after its code): the `SIZE` line, if one.
    pub(super) fn of<'a>(lines: impl IntoIterator<Item = &'a str>) -> SizeOffer {
        let mut offer = SizeOffer::NotOffered;
        for line in lines {
            let mut words = line.split_whitespace();
            if words.next().is_some_and(|w| w.eq_ignore_ascii_case("SIZE")) {
                offer = match words.next().map(str::parse::<usize>) {
                    Some(Ok(limit)) if limit > 0 => SizeOffer::Limit(limit),
                    _ => SizeOffer::NoLimit,
                };
            }
        }
        offer
    }

    /// Whether the server said it refuses a message of `bytes`.
    pub(super) fn refuses(self, bytes: usize) -> bool {
        matches!(self, SizeOffer::Limit(limit) if bytes > limit)
    }
}

/// The SIZE the server offers. lettre keeps no SIZE of the EHLO it sends, so EHLO is sent once more (RFC 5321
/// §4.1.4 allows it; it resets no more than `RSET`), after STARTTLS (whose EHLO is the one that counts) and
/// before AUTH. A server that refuses it offers no SIZE; one that hangs up is unavailable.
async fn size_offer(conn: &mut AsyncSmtpConnection, hello: &ClientId) -> Result<SizeOffer, ConnectError> {
    match conn.command(Ehlo::new(hello.clone())).await {
        Ok(reply) => Ok(SizeOffer::of(reply.message())),
        Err(e) => match classify(&e) {
            Fail::Transient(_) | Fail::Permanent(_) => Ok(SizeOffer::NotOffered),
            Fail::Broken(reply) => Err(Unavailable::Handshake { step: "EHLO failed: ", reply }.into()),
        },
    }
}

/// Connects, greets, secures the connection as configured, learns the SIZE offered and authenticates.
pub(super) async fn connect(cfg: &EmailConfig) -> Result<Relay, ConnectError> {
    let work = async {
        let hello = ClientId::default();
        // smtps://: TLS from the first byte, its certificate checked as soon as the connection is made.
        let (implicit, implicit_verifier) = match cfg.tls {
            TlsMode::Implicit => (Some(tls_parameters(cfg)?), Some(verifier(cfg)?)),
            _ => (None, None),
        };
        let connected = match implicit {
            Some(tls) => {
                let server = (cfg.host.as_str(), cfg.port);
                AsyncSmtpConnection::connect_tokio1(server, Some(cfg.timeout), &hello, Some(tls), None).await
            }
            // smtp://: its greeting read first, to tell another service from an SMTP server at once.
            None => AsyncSmtpConnection::connect_with_transport(Box::new(greeting::open(cfg).await?), &hello).await,
        };
        let mut conn = connected.map_err(|e| handshake_failed(cfg, &e, ""))?;
        if let Some(verifier) = &implicit_verifier {
            verify_peer(cfg, verifier, &mut conn).await?;
        }
        match cfg.tls {
            TlsMode::Required if !conn.can_starttls() => {
                conn.abort().await;
                return Err(Unavailable::NoStartTls.into());
            }
            TlsMode::Required | TlsMode::Opportunistic if conn.can_starttls() => {
                let verifier = verifier(cfg)?;
                conn.starttls(tls_parameters(cfg)?, &hello)
                    .await
                    .map_err(|e| handshake_failed(cfg, &e, "STARTTLS failed: "))?;
                verify_peer(cfg, &verifier, &mut conn).await?;
            }
            _ => {}
        }
        let size = size_offer(&mut conn, &hello).await?;
        if let Some(c) = &cfg.credentials {
            if !conn.is_encrypted() && cfg.tls != TlsMode::None {
                conn.abort().await;
                return Err(Unavailable::PasswordInClear.into());
            }
            let credentials = Credentials::new(c.user.clone(), c.password.expose_secret().to_string());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|e| Unavailable::AuthenticationRefused { user: c.user.clone(), reply: reply_of(&e) })?;
        }
        Ok(Relay { conn, size })
    };
    match tokio::time::timeout(cfg.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Unavailable::NoAnswer { within: cfg.timeout }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_server_is_said_as_before() {
        assert_eq!(
            ConnectError::from(Unavailable::PasswordInClear).to_string(),
            "the server did not offer STARTTLS: refusing to send the password in clear (tls = \"opportunistic\"); \
             use tls = \"required\" or an smtps:// url"
        );
        assert_eq!(
            Unavailable::NoStartTls.to_string(),
            "the server does not offer STARTTLS, which tls = \"required\" needs"
        );
        assert_eq!(
            Unavailable::NoAnswer { within: Duration::from_secs(30) }.to_string(),
            "no greeting/EHLO/STARTTLS/AUTH within 30s"
        );
        let starttls =
            Unavailable::Handshake { step: "STARTTLS failed: ", reply: "454 4.7.0 TLS not available".into() };
        assert_eq!(starttls.to_string(), "STARTTLS failed: 454 4.7.0 TLS not available");
    }

    #[test]
    fn the_size_offered_is_read_from_the_ehlo_reply() {
        let ehlo = |lines: &[&str]| SizeOffer::of(lines.iter().copied());
        assert_eq!(ehlo(&["localhost", "8BITMIME", "SIZE 10240000", "STARTTLS"]), SizeOffer::Limit(10_240_000));
        assert_eq!(ehlo(&["mx.acme.com Hello", "size 52428800"]), SizeOffer::Limit(52_428_800));
        assert_eq!(ehlo(&["localhost", "SIZE"]), SizeOffer::NoLimit);
        assert_eq!(ehlo(&["localhost", "SIZE 0"]), SizeOffer::NoLimit);
        assert_eq!(ehlo(&["localhost", "SIZE lots"]), SizeOffer::NoLimit);
        assert_eq!(ehlo(&["localhost", "8BITMIME", "SIZES 5"]), SizeOffer::NotOffered);
        assert_eq!(ehlo(&[]), SizeOffer::NotOffered);
        assert!(SizeOffer::Limit(100).refuses(101));
        assert!(!SizeOffer::Limit(100).refuses(100));
        assert!(!SizeOffer::NoLimit.refuses(usize::MAX));
        assert!(!SizeOffer::NotOffered.refuses(usize::MAX));
    }

    #[test]
    fn only_the_ca_file_problems_name_their_setting() {
        let unreadable = Misconfigured::CaFileUnreadable {
            path: "/etc/midwatch/ca.pem".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(unreadable.names_its_setting());
        assert!(unreadable.to_string().starts_with("[email] ca_file /etc/midwatch/ca.pem cannot be read: "));
        let refused = Misconfigured::Certificate("the TLS certificate of smtp://mx:587 has expired".into());
        assert!(!refused.names_its_setting());
        assert_eq!(refused.to_string(), "the TLS certificate of smtp://mx:587 has expired");
    }
}
