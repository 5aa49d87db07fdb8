//! The instance's (or a TLS-inspecting proxy's) certificate against `[instance] ca_file`, over real TLS on
//! loopback: a self-signed certificate marked as a CA, as `openssl req -x509` makes them, is trusted when
//! `ca_file` holds exactly that certificate, with its host name and dates still checked; refused otherwise, in
//! words that name the cause. No TLS library's own log line reaches `check`'s output.

use std::path::{Path, PathBuf};

use midwatch::cycle::{CheckOptions, Cycle};
use wiremock::MockServer;

use crate::support::*;

/// The demo instance (wiremock) behind TLS presenting `certificate`; the server (kept alive by the caller) and
/// the `https://localhost:<port>` URL.
async fn instance_behind(certificate: &rcgen::CertifiedKey<rcgen::KeyPair>) -> (MockServer, String) {
    let server = MockServer::start().await;
    mount_demo_tables(&server, &[]).await;
    let (acceptor, _) = acceptor_for(certificate);
    let port = tls_front(acceptor, *server.address()).await;
    (server, format!("https://localhost:{port}"))
}

/// A config file for the binary for the instance at `url`, with `[instance] ca_file` when given.
fn config_with_ca_file(url: &str, ca_file: Option<&Path>) -> (tempfile::TempDir, PathBuf) {
    let (dir, file) = config_file(url);
    if let Some(ca) = ca_file {
        let mut text = std::fs::read_to_string(&file).expect("read config");
        text.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
        std::fs::write(&file, text).expect("write config");
    }
    (dir, file)
}

fn write_pem(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write pem");
    path
}

/// Lines a TLS library logged (rustls, rustls-platform-verifier and their neighbours name their targets so).
fn tls_library_lines(output: &str) -> Vec<&str> {
    output.lines().filter(|l| l.contains("rustls") || l.contains("webpki")).collect()
}

#[tokio::test]
async fn a_ca_marked_self_signed_certificate_in_ca_file_is_trusted_and_no_tls_library_logs() {
    let certificate = ca_marked_certificate(&["localhost"], false);
    let (_server, url) = instance_behind(&certificate).await;
    let pems = tempfile::tempdir().expect("tempdir");
    let ca = write_pem(pems.path(), "instance.pem", &certificate.cert.pem());
    let (_dir, file) = config_with_ca_file(&url, Some(&ca));
    let config = file.to_str().expect("utf-8");
    for verbosity in [None, Some("-vv")] {
        let mut args = vec!["check", "--config", config, "--no-write", "--detail", "summary"];
        args.extend(verbosity);
        let (code, stdout, stderr) = run_binary_beside(&args).await;
        assert_eq!(code, 2, "the demo data's CRITICAL ({verbosity:?}):\n{stdout}\n{stderr}");
        assert!(stdout.starts_with("MIDWATCH CRITICAL - "), "{stdout}\n{stderr}");
        assert_eq!(tls_library_lines(&format!("{stdout}{stderr}")), Vec::<&str>::new(), "{verbosity:?}");
    }
}

#[tokio::test]
async fn the_same_certificate_not_in_ca_file_is_refused_as_marked_as_a_ca_without_a_tls_library_line() {
    let certificate = ca_marked_certificate(&["localhost"], false);
    let (_server, url) = instance_behind(&certificate).await;
    let pems = tempfile::tempdir().expect("tempdir");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let other = write_pem(pems.path(), "other.pem", &other.cert.pem());
    for ca_file in [None, Some(other.as_path())] {
        let (_dir, file) = config_with_ca_file(&url, ca_file);
        let args = ["check", "--config", file.to_str().expect("utf-8"), "--no-write", "--detail", "summary"];
        let (code, stdout, stderr) = run_binary_beside(&args).await;
        let output = format!("{stdout}{stderr}");
        assert_eq!(code, 3, "{output}");
        assert!(output.contains("the server's certificate is itself marked as a CA"), "{ca_file:?}: {output}");
        assert!(output.contains("[instance] ca_file"), "names the key that fixes it: {output}");
        assert!(!output.contains("OtherError") && !output.contains("CaUsedAsEndEntity"), "{output}");
        assert_eq!(tls_library_lines(&output), Vec::<&str>::new(), "{ca_file:?}");
    }
}

/// The error of one check against `url` with `[instance] ca_file` = `ca`.
async fn refusal(url: &str, ca: PathBuf) -> String {
    let mut config = config_for(url);
    config.instance.ca_file = Some(ca);
    let client = client(&config);
    let opts = CheckOptions::from_config(&config);
    let err = Cycle::new(&config, &client, &opts).check(reference_now()).await.expect_err("refused");
    err.to_string()
}

#[tokio::test]
async fn the_exact_certificate_in_ca_file_must_still_name_the_host_and_be_current() {
    let pems = tempfile::tempdir().expect("tempdir");

    let elsewhere = ca_marked_certificate(&["relay.other.example"], false);
    let (_a, url) = instance_behind(&elsewhere).await;
    let text = refusal(&url, write_pem(pems.path(), "elsewhere.pem", &elsewhere.cert.pem())).await;
    assert!(text.contains("TLS certificate"), "{text}");
    assert!(text.contains("not valid for name \"localhost\""), "{text}");

    let expired = ca_marked_certificate(&["localhost"], true);
    let (_b, url) = instance_behind(&expired).await;
    let text = refusal(&url, write_pem(pems.path(), "expired.pem", &expired.cert.pem())).await;
    assert!(text.contains("TLS certificate") && text.contains("expired"), "{text}");
}
