//! A refused SMTP server certificate, recognised and worded as the configuration error it is: what is wrong
//! with the certificate, and what to do (`[email] ca_file`, the host name the certificate is valid for, or
//! plaintext over loopback). The same words go to the log, the cycle's report and `config check`.

use rustls::CertificateError;

use crate::config::EmailConfig;

/// The wording of a certificate refusal, when `e` (a failed connect, STARTTLS or implicit-TLS handshake) is
/// one; `None` for any other failure.
pub(super) fn refused(cfg: &EmailConfig, e: &lettre::transport::smtp::Error) -> Option<String> {
    // The typed error is reached through lettre's source (tokio-rustls' `io::Error`, holding rustls' error).
    if let Some(problem) = crate::tls::refusal(e) {
        return Some(wording(cfg, &Refusal::Typed(problem)));
    }
    // Should a layer ever hide it, rustls' own text still says what happened.
    let text = super::reply_of(e);
    text.to_ascii_lowercase().contains("invalid peer certificate").then(|| wording(cfg, &Refusal::Text(text)))
}

/// The wording of the verdict of `tls.rs` on the certificate the server presented.
pub(super) fn worded(cfg: &EmailConfig, e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(problem) => wording(cfg, &Refusal::Typed(problem)),
        other => wording(cfg, &Refusal::Text(other.to_string())),
    }
}

enum Refusal<'a> {
    Typed(&'a CertificateError),
    /// Only rustls' text was found.
    Text(String),
}

/// A name the certificate presents, as rustls passes it on (`DnsName("mx.acme.com")`, `IpAddress(10.0.0.5)`),
/// shown bare (`mx.acme.com`), its control characters escaped: it comes from the server.
fn shown_name(presented: &str) -> String {
    let bare = presented
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| presented.strip_prefix("IpAddress(").and_then(|n| n.strip_suffix(')')))
        .unwrap_or(presented);
    crate::escape::clean(bare)
}

/// `2026-11-22 12:00:00 UTC` for a certificate's validity bound.
fn date(t: rustls::pki_types::UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| format!("{} (UNIX time)", t.as_secs()), |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn wording(cfg: &EmailConfig, refusal: &Refusal) -> String {
    let server = cfg.server_url();
    let host = &cfg.host;
    let loopback = ", or, when the SMTP server runs on this machine, connect to it over loopback without TLS \
                    (url = \"smtp://127.0.0.1:25\" with tls = \"none\")";
    let ca_file = match &cfg.ca_file {
        Some(path) => format!("neither among this machine's trusted roots nor in [email] ca_file {}", path.display()),
        None => "not among this machine's trusted roots".to_string(),
    };
    let untrusted = |why: &str| {
        format!(
            "the TLS certificate of {server} is not trusted ({why}): it is self-signed, or issued by a CA that is \
             {ca_file}. Set [email] ca_file to the PEM certificate of the CA that issued it (for a self-signed \
             certificate, the certificate itself){loopback}. The email stays in the outbox until then"
        )
    };
    let other = |what: String| {
        format!(
            "the TLS certificate of {server} was refused ({what}): if the server uses a private CA, set [email] \
             ca_file to its PEM certificate; check that the host of [email] url ({host}) is a name the certificate \
             is valid for{loopback}. The email stays in the outbox until then"
        )
    };
    let problem = match refusal {
        Refusal::Typed(p) => *p,
        Refusal::Text(text) => return other(crate::escape::clean(text)),
    };
    match problem {
        p if crate::tls::is_marked_as_ca(p) => {
            let listed = match &cfg.ca_file {
                Some(path) => format!("[email] ca_file {} does not hold it", path.display()),
                None => "[email] ca_file is not set".to_string(),
            };
            format!(
                "the TLS certificate of {server} is itself marked as a CA (CA:TRUE, as `openssl req -x509` makes \
                 certificates), and {listed}: such a certificate is trusted only as it is. Set [email] ca_file to \
                 the server's certificate itself, or have it made without CA:TRUE{loopback}. The email stays in \
                 the outbox until then"
            )
        }
        CertificateError::UnknownIssuer => untrusted("unknown issuer"),
        CertificateError::BadSignature => untrusted("its signature does not match a trusted issuer"),
        CertificateError::NotValidForName => format!(
            "the TLS certificate of {server} is not valid for {host}: set the host of [email] url to a name the \
             certificate is valid for, or have the certificate reissued for {host}. The email stays in the outbox \
             until then"
        ),
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names = match presented.as_slice() {
                [] => " (it names no host at all)".to_string(),
                names => format!(
                    " (it is valid for {} only)",
                    names.iter().map(|n| shown_name(n)).collect::<Vec<_>>().join(", ")
                ),
            };
            format!(
                "the TLS certificate of {server} is not valid for {host}{names}: set the host of [email] url to a \
                 name the certificate is valid for, or have the certificate reissued for {host}. The email stays \
                 in the outbox until then"
            )
        }
        CertificateError::Expired => format!(
            "the TLS certificate of {server} has expired: have it renewed on the server (and check this machine's \
             clock). The email stays in the outbox until then"
        ),
        CertificateError::ExpiredContext { not_after, .. } => format!(
            "the TLS certificate of {server} expired on {}: have it renewed on the server (and check this \
             machine's clock). The email stays in the outbox until then",
            date(*not_after)
        ),
        CertificateError::NotValidYet => format!(
            "the TLS certificate of {server} is not valid yet: check this machine's clock. The email stays in the \
             outbox until then"
        ),
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "the TLS certificate of {server} is not valid before {}: check this machine's clock. The email stays \
             in the outbox until then",
            date(*not_before)
        ),
        CertificateError::Revoked => format!(
            "the TLS certificate of {server} has been revoked: have the server's certificate replaced. The email \
             stays in the outbox until then"
        ),
        p => other(crate::escape::clean(&p.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsMode;

    fn cfg() -> EmailConfig {
        let mut cfg = EmailConfig::loopback(
            587,
            "midwatch@acme.example".parse().expect("mailbox"),
            vec!["a@acme.example".parse().expect("mailbox")],
        );
        cfg.host = "mail.acme.example".into();
        cfg.tls = TlsMode::Required;
        cfg
    }

    fn worded(p: CertificateError) -> String {
        wording(&cfg(), &Refusal::Typed(&p))
    }

    #[test]
    fn an_unknown_issuer_names_ca_file_and_loopback_and_never_unavailable() {
        let text = worded(CertificateError::UnknownIssuer);
        assert!(text.starts_with("the TLS certificate of smtp://mail.acme.example:587 is not trusted"), "{text}");
        assert!(text.contains("Set [email] ca_file") && text.contains("tls = \"none\""), "{text}");
        assert!(!text.contains("unavailable"), "{text}");
    }

    #[test]
    fn a_name_mismatch_names_the_host_and_the_names_the_certificate_holds() {
        let expected = rustls::pki_types::ServerName::try_from("mail.acme.example").expect("name").to_owned();
        let presented = vec!["DnsName(\"localhost\")".to_string(), "IpAddress(10.0.0.5)".to_string()];
        let text = worded(CertificateError::NotValidForNameContext { expected, presented });
        assert!(
            text.contains("is not valid for mail.acme.example (it is valid for localhost, 10.0.0.5 only)"),
            "{text}"
        );
        assert!(text.contains("set the host of [email] url"), "{text}");
    }

    #[test]
    fn an_expired_certificate_says_when_and_what_to_do() {
        let text = worded(CertificateError::ExpiredContext {
            time: rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
            not_after: rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
        });
        assert!(text.contains("expired on 2023-11-14 22:13:20 UTC: have it renewed"), "{text}");
    }

    #[test]
    fn a_certificate_marked_as_a_ca_is_said_so_with_what_to_put_in_ca_file() {
        let marked = CertificateError::Other(rustls::OtherError(std::sync::Arc::new(crate::tls::MarkedAsCa)));
        let text = worded(marked.clone());
        assert!(text.starts_with("the TLS certificate of smtp://mail.acme.example:587 is itself marked as a CA"));
        assert!(text.contains("[email] ca_file is not set") && text.contains("tls = \"none\""), "{text}");
        assert!(!text.contains("OtherError"), "{text}");
        let mut cfg = cfg();
        cfg.ca_file = Some("/etc/midwatch/smtp-ca.pem".into());
        let text = wording(&cfg, &Refusal::Typed(&marked));
        assert!(text.contains("[email] ca_file /etc/midwatch/smtp-ca.pem does not hold it"), "{text}");
        assert!(text.contains("Set [email] ca_file to the server's certificate itself"), "{text}");
    }

    #[test]
    fn a_configured_ca_file_is_named_when_it_does_not_help() {
        let mut cfg = cfg();
        cfg.ca_file = Some("/etc/midwatch/smtp-ca.pem".into());
        let text = wording(&cfg, &Refusal::Typed(&CertificateError::UnknownIssuer));
        assert!(text.contains("nor in [email] ca_file /etc/midwatch/smtp-ca.pem"), "{text}");
    }
}
