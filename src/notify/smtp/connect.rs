//! Opening the SMTP connection: greeting, STARTTLS or implicit TLS (trusting `[email] ca_file` besides the
//! system's roots), AUTH. A failure is either the server being unavailable (try again next cycle) or the
//! configuration keeping the mail from going, such as a refused certificate (`certificate.rs`): that one is
//! said with what to fix, and never called "unavailable".

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret as _;

use super::certificate;
use super::reply_of;
use crate::notify::{EmailConfig, TlsMode};

/// Why no connection could be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectError {
    /// The server did not answer, broke off, or refused for now: the mail waits for the next cycle.
    Unavailable(String),
    /// The configuration keeps the mail from going (a certificate that is not trusted or not valid for the
    /// host, an unreadable `ca_file`): worded with what to do. The mail stays queued and is tried again each
    /// cycle, but cannot go until the configuration (or the server's certificate) is fixed.
    Configuration(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Unavailable(e) | ConnectError::Configuration(e) => f.write_str(e),
        }
    }
}

/// The TLS parameters for the configured host: the system's roots, plus every certificate of `ca_file`.
fn tls_parameters(cfg: &EmailConfig) -> Result<TlsParameters, ConnectError> {
    let mut builder = TlsParameters::builder(cfg.host.clone());
    if let Some(path) = &cfg.ca_file {
        // Validated when the config was loaded; read again here, as the file may have changed since.
        let pem = std::fs::read(path).map_err(|e| {
            ConnectError::Configuration(format!(
                "[email] ca_file {} cannot be read: {e}; fix the file or its permissions",
                path.display()
            ))
        })?;
        // lettre takes every certificate of the PEM file into one `Certificate`.
        let certificate = Certificate::from_pem(&pem).map_err(|e| {
            ConnectError::Configuration(format!(
                "[email] ca_file {} is not a valid PEM certificate file ({e}); run `midwatch config check --offline`",
                path.display()
            ))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().map_err(|e| ConnectError::Configuration(format!("cannot set up TLS for {}: {e}", cfg.host)))
}

/// A failed TLS handshake (or any failure of the step that makes one): a configuration error when the
/// server's certificate was refused, else the server being unavailable.
fn handshake_failed(cfg: &EmailConfig, e: &lettre::transport::smtp::Error, what: &str) -> ConnectError {
    match certificate::refused(cfg, e) {
        Some(wording) => ConnectError::Configuration(wording),
        None => ConnectError::Unavailable(format!("{what}{}", reply_of(e))),
    }
}

/// Connects, greets, secures the connection as configured and authenticates.
pub(super) async fn connect(cfg: &EmailConfig) -> Result<AsyncSmtpConnection, ConnectError> {
    use ConnectError::Unavailable;
    let work = async {
        let hello = ClientId::default();
        let implicit = if cfg.tls == TlsMode::Implicit { Some(tls_parameters(cfg)?) } else { None };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (cfg.host.as_str(), cfg.port),
            Some(cfg.timeout),
            &hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| handshake_failed(cfg, &e, ""))?;
        match cfg.tls {
            TlsMode::Required if !conn.can_starttls() => {
                conn.abort().await;
                return Err(Unavailable(
                    "the server does not offer STARTTLS, which tls = \"required\" needs".to_string(),
                ));
            }
            TlsMode::Required | TlsMode::Opportunistic if conn.can_starttls() => {
                conn.starttls(tls_parameters(cfg)?, &hello)
                    .await
                    .map_err(|e| handshake_failed(cfg, &e, "STARTTLS failed: "))?;
            }
            _ => {}
        }
        if let Some(c) = &cfg.credentials {
            if !conn.is_encrypted() && cfg.tls != TlsMode::None {
                conn.abort().await;
                return Err(Unavailable(
                    "the server did not offer STARTTLS: refusing to send the password in clear \
                     (tls = \"opportunistic\"); use tls = \"required\" or an smtps:// url"
                        .to_string(),
                ));
            }
            let credentials = Credentials::new(c.user.clone(), c.password.expose_secret().to_string());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|e| Unavailable(format!("authentication as {} refused: {}", c.user, reply_of(&e))))?;
        }
        Ok(conn)
    };
    match tokio::time::timeout(cfg.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Unavailable(format!(
            "no greeting/EHLO/STARTTLS/AUTH within {}",
            humantime::format_duration(cfg.timeout)
        ))),
    }
}
