use std::time::Duration;

use proptest::prelude::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::*;

/// A certificate for `names` signed by `issuer` (self-signed without one), marked as a CA when `ca`, valid
/// from `from` to `until` (years, 1 January).
fn certificate(names: &[&str], ca: bool, (from, until): (i32, i32), issuer: Option<&Issuer<'_, KeyPair>>) -> Vec<u8> {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("names");
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let key = KeyPair::generate().expect("key");
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer),
        None => params.self_signed(&key),
    };
    cert.expect("certificate").der().to_vec()
}

/// What `openssl req -x509 … -subj /CN=relay -addext subjectAltName=DNS:relay` makes (OpenSSL 3: CA:TRUE).
fn openssl_style(name: &str) -> Vec<u8> {
    certificate(&[name], true, (2020, 2090), None)
}

fn at(year: i32) -> UnixTime {
    let secs = rcgen::date_time_ymd(year, 6, 1).unix_timestamp();
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(secs).expect("after 1970")))
}

fn verify(listed: &[&[u8]], presented: &[u8], host: &str, now: UnixTime) -> Result<(), rustls::Error> {
    let listed = listed.iter().map(|c| CertificateDer::from(c.to_vec())).collect();
    let verifier = Verifier::new(listed).expect("verifier");
    let name = ServerName::try_from(host).expect("name");
    verifier.verify_server_cert(&CertificateDer::from(presented), &[], &name, &[], now).map(|_| ())
}

fn refused(result: Result<(), rustls::Error>) -> CertificateError {
    match result {
        Err(rustls::Error::InvalidCertificate(problem)) => problem,
        other => panic!("expected a certificate refusal: {other:?}"),
    }
}

#[test]
fn a_ca_marked_self_signed_certificate_listed_as_it_is_is_trusted() {
    let relay = openssl_style("relay");
    assert_eq!(verify(&[&relay], &relay, "relay", at(2030)), Ok(()));
}

#[test]
fn the_same_certificate_not_listed_is_refused_as_marked_as_a_ca() {
    let relay = openssl_style("relay");
    let other = openssl_style("relay");
    let problem = refused(verify(&[&other], &relay, "relay", at(2030)));
    assert!(is_marked_as_ca(&problem), "{problem:?}");
    assert_eq!(MarkedAsCa.to_string(), "the server's certificate is itself marked as a CA");
}

#[test]
fn a_listed_certificate_must_still_name_the_host() {
    let relay = openssl_style("relay");
    let problem = refused(verify(&[&relay], &relay, "mail.acme.example", at(2030)));
    assert!(matches!(problem, CertificateError::NotValidForNameContext { .. }), "{problem:?}");
}

#[test]
fn a_listed_certificate_must_be_current() {
    let relay = openssl_style("relay");
    let problem = refused(verify(&[&relay], &relay, "relay", at(2095)));
    assert!(matches!(problem, CertificateError::ExpiredContext { .. }), "{problem:?}");
    // The exception checks the dates itself, whatever the platform verifier looked at first.
    let verifier = Verifier::new(vec![CertificateDer::from(relay.clone())]).expect("verifier");
    let name = ServerName::try_from("relay").expect("name");
    let cert = CertificateDer::from(relay.as_slice());
    let expired = verifier.listed_as_is(&cert, &name, at(2095));
    assert!(matches!(expired, Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }))));
    let early = verifier.listed_as_is(&cert, &name, at(2019));
    assert!(matches!(early, Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }))));
    assert!(verifier.listed_as_is(&cert, &name, at(2030)).is_ok());
}

#[test]
fn a_listed_server_certificate_of_an_unknown_issuer_is_trusted_as_it_is_and_only_so() {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Acme private CA");
    let ca = Issuer::new(ca_params, ca_key);
    let leaf = certificate(&["relay"], false, (2020, 2090), Some(&ca));
    let unrelated = openssl_style("relay");
    assert_eq!(verify(&[&leaf], &leaf, "relay", at(2030)), Ok(()));
    assert_eq!(refused(verify(&[&unrelated], &leaf, "relay", at(2030))), CertificateError::UnknownIssuer);
}

#[test]
fn a_plain_self_signed_certificate_is_trusted_as_before() {
    let relay = certificate(&["relay"], false, (2020, 2090), None);
    assert_eq!(verify(&[&relay], &relay, "relay", at(2030)), Ok(()));
}

#[test]
fn the_chain_checked_after_a_handshake_is_the_same_check() {
    let relay = openssl_style("localhost");
    let verifier = Verifier::new(vec![CertificateDer::from(relay.clone())]).expect("verifier");
    assert_eq!(verifier.verify_chain(&[CertificateDer::from(relay.clone())], "localhost"), Ok(()));
    assert_eq!(verifier.verify_chain(&[], "localhost"), Err(rustls::Error::NoCertificatesPresented));
    let problem = refused(verifier.verify_chain(&[CertificateDer::from(relay)], "mail.acme.example"));
    assert!(matches!(problem, CertificateError::NotValidForNameContext { .. }), "{problem:?}");
}

#[test]
fn validity_reads_utc_and_generalized_times() {
    // rcgen writes UTCTime before 2050 and GeneralizedTime from 2050 on, as RFC 5280 asks.
    let der = certificate(&["relay"], true, (2020, 2090), None);
    let (not_before, not_after) = validity(&der).expect("validity");
    assert_eq!(not_before.as_secs(), 1_577_836_800, "2020-01-01");
    assert_eq!(not_after.as_secs(), 3_786_912_000, "2090-01-01");
    assert_eq!(validity(&der[..der.len() / 2]), None, "a cut certificate");
    assert_eq!(validity(b""), None);
}

#[test]
fn every_certificate_of_a_pem_bundle_is_read() {
    let a = rcgen::generate_simple_self_signed(vec!["a".to_string()]).expect("certificate");
    let b = rcgen::generate_simple_self_signed(vec!["b".to_string()]).expect("certificate");
    let read = certificates(format!("{}{}", a.cert.pem(), b.cert.pem()).as_bytes()).expect("pem");
    assert_eq!(read, vec![a.cert.der().clone(), b.cert.der().clone()]);
    assert_eq!(certificates(b"no certificate here").expect("pem"), Vec::<CertificateDer<'static>>::new());
}

#[test]
fn refusal_is_found_through_an_io_error() {
    let rustls_error = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
    assert_eq!(refusal(&io), Some(&CertificateError::UnknownIssuer));
    assert_eq!(refusal(&std::io::Error::other("reset")), None);
}

proptest! {
    #![proptest_config(crate::proptest_config())]

    #[test]
    fn validity_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = validity(&bytes);
    }
}

#[test]
fn refusal_is_found_through_nested_io_errors() {
    // What hyper's connection error holds: an io::Error around tokio-rustls' io::Error around rustls' error.
    let rustls_error = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
    let nested = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error));
    assert_eq!(refusal(&nested), Some(&CertificateError::UnknownIssuer));
}
