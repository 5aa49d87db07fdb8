//! Whom midwatch trusts over TLS, one [`Verifier`] for the instance (`snow::Client`, through reqwest) and the
//! SMTP server (`notify::smtp`, through lettre).
//!
//! First the platform verifier (rustls-platform-verifier, which reqwest and lettre use by themselves): the
//! system's roots plus every certificate of the `ca_file`. It refuses a server certificate that is marked as a
//! CA even when that very certificate is in `ca_file` (webpki's `CaUsedAsEndEntity`), and a listed certificate
//! whose issuer is not trusted; `openssl req -x509` makes such certificates (OpenSSL 3 marks them CA:TRUE), and
//! curl, Python and Postfix accept them from their trust file. So a certificate of `ca_file` that is exactly the
//! certificate the server presents is trusted as it is, its host name and dates still checked.
//!
//! A refusal stays a rustls [`CertificateError`] ([`refusal`] finds it along an error's sources), so that each
//! side words it with the setting that fixes it; a server certificate marked as a CA and not listed is
//! [`MarkedAsCa`]. The platform verifier logs every refusal, even one overridden here: `logging.rs` keeps the
//! TLS libraries' lines out of the output.

use std::error::Error;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

/// The certificates of a PEM file (`ca_file`), in order.
pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    CertificateDer::pem_slice_iter(pem).collect()
}

/// A server certificate marked as a CA (basicConstraints CA:TRUE) that `ca_file` does not hold as it is.
#[derive(Debug, thiserror::Error)]
#[error("the server's certificate is itself marked as a CA")]
pub(crate) struct MarkedAsCa;

/// Whether `problem` is [`MarkedAsCa`].
pub(crate) fn is_marked_as_ca(problem: &CertificateError) -> bool {
    matches!(problem, CertificateError::Other(OtherError(e)) if e.downcast_ref::<MarkedAsCa>().is_some())
}

/// rustls' verdict on the peer's certificate, found along `e`'s sources. An `io::Error` carries its inner
/// error in `get_ref`, not in `source` (which skips to the inner error's own source), and hyper's connection
/// error holds an `io::Error` around tokio-rustls' own: both ways are followed.
pub(crate) fn refusal<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a CertificateError> {
    if let Some(rustls::Error::InvalidCertificate(problem)) = e.downcast_ref::<rustls::Error>() {
        return Some(problem);
    }
    let wrapped = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|i| i as &(dyn Error + 'static));
    wrapped.and_then(refusal).or_else(|| e.source().and_then(refusal))
}

/// The crypto provider of both TLS clients (aws-lc-rs, the one reqwest and lettre are built with).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The platform's verifier, then the certificates of `ca_file` as they are.
#[derive(Debug)]
pub(crate) struct Verifier {
    platform: rustls_platform_verifier::Verifier,
    /// The certificates of `ca_file`.
    listed: Vec<CertificateDer<'static>>,
}

impl Verifier {
    /// Trusts the system's roots and every certificate of `listed` (a `ca_file`'s, maybe none). Fails when no
    /// root at all could be loaded, or a listed certificate is not a usable trust anchor.
    pub(crate) fn new(listed: Vec<CertificateDer<'static>>) -> Result<Verifier, rustls::Error> {
        let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(listed.clone(), provider())?;
        Ok(Verifier { platform, listed })
    }

    /// A client configuration verifying servers with this verifier (TLS 1.2 and 1.3, no client certificate).
    pub(crate) fn client_config(self) -> Result<rustls::ClientConfig, rustls::Error> {
        Ok(rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth())
    }

    /// Verifies the chain a server presented (its own certificate first) for `host`, now: for a check made
    /// after the handshake, whose signature proved that the server holds the key of `chain[0]`.
    pub(crate) fn verify_chain(&self, chain: &[CertificateDer<'_>], host: &str) -> Result<(), rustls::Error> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        let name = ServerName::try_from(host).map_err(|e| rustls::Error::General(e.to_string()))?;
        self.verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now()).map(|_| ())
    }

    /// The exception: `end_entity` is byte for byte a certificate of `ca_file`. Sound because the person who
    /// configured midwatch named this exact certificate as trusted (what a trust anchor is), and the TLS
    /// handshake proves the server holds its private key (rustls verifies the handshake signature with this
    /// certificate, `verify_tls12_signature` / `verify_tls13_signature` below): no chain is needed, and neither
    /// its CA mark nor its issuer matters. What can still differ between the listed certificate and this
    /// connection is checked: the dates, then the host name asked for.
    fn listed_as_is(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (not_before, not_after) = validity(end_entity).ok_or(CertificateError::BadEncoding)?;
        if now.as_secs() < not_before.as_secs() {
            return Err(CertificateError::NotValidYetContext { time: now, not_before }.into());
        }
        if now.as_secs() > not_after.as_secs() {
            return Err(CertificateError::ExpiredContext { time: now, not_after }.into());
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }
}

/// Whether a refusal of the platform verifier is webpki's `CaUsedAsEndEntity`.
fn ca_used_as_end_entity(problem: &CertificateError) -> bool {
    matches!(problem, CertificateError::Other(OtherError(e))
        if matches!(e.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)))
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.platform.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(verified) => return Ok(verified),
            Err(rustls::Error::InvalidCertificate(problem)) => problem,
            Err(other) => return Err(other),
        };
        let marked_as_ca = ca_used_as_end_entity(&refused);
        if marked_as_ca || refused == CertificateError::UnknownIssuer {
            if self.listed.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
                return self.listed_as_is(end_entity, server_name, now);
            }
            if marked_as_ca {
                return Err(CertificateError::Other(OtherError(Arc::new(MarkedAsCa))).into());
            }
        }
        Err(refused.into())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.platform.supported_verify_schemes()
    }
}

/// One DER element at the start of `input`: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let (bytes, rest) = rest.split_at_checked(usize::from(first & 0x7f))?;
        if bytes.is_empty() || bytes.len() > 4 {
            return None;
        }
        (bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)), rest)
    };
    let (contents, rest) = rest.split_at_checked(length)?;
    Some((tag, contents, rest))
}

/// A certificate's validity (notBefore, notAfter), read from its DER (RFC 5280 §4.1): `Certificate ::=
/// SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity
/// SEQUENCE { notBefore Time, notAfter Time }, … }, … }`. `None` when it cannot be read.
fn validity(der: &[u8]) -> Option<(UnixTime, UnixTime)> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    let (SEQUENCE, certificate, _) = element(der)? else { return None };
    let (SEQUENCE, tbs, _) = element(certificate)? else { return None };
    let mut rest = match element(tbs)? {
        (VERSION, _, after) => after,
        _ => tbs,
    };
    for _serial_signature_issuer in 0..3 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, dates, _) = element(rest)? else { return None };
    let (before_tag, before, after_dates) = element(dates)?;
    let (after_tag, after, _) = element(after_dates)?;
    Some((time(before_tag, before)?, time(after_tag, after)?))
}

/// An X.509 `Time`: UTCTime (`YYMMDDHHMMSSZ`, 19YY from 50 on) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, value: &[u8]) -> Option<UnixTime> {
    let text = std::str::from_utf8(value).ok()?;
    let full = match tag {
        0x17 => format!("{}{text}", if text.get(..2)? >= "50" { "19" } else { "20" }),
        0x18 => text.to_string(),
        _ => return None,
    };
    let at = chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%SZ").ok()?.and_utc();
    // A date before 1970 is the epoch: only its order against now matters.
    let secs = u64::try_from(at.timestamp()).unwrap_or(0);
    Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests;
