//! What the integration test binaries share (`tests/check/`, `tests/email/`, `tests/service/`): the test
//! account, instance-shaped fixtures and answers, configs for a simulated instance, the binary, and walking a
//! directory. Each binary uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use midwatch::config::Config;
use midwatch::cycle::{self, CheckOptions, Cycle};
use midwatch::domain::sn_time;
use midwatch::snow::{Client, RetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) const USER: &str = "svc.midwatch";
pub(crate) const PASSWORD: &str = "test-password";

/// A reference field as the Table API answers it: `{"link": …, "value": <sys_id>}`.
pub(crate) fn reference(table: &str, id: &str) -> serde_json::Value {
    serde_json::json!({"link": format!("https://acme.service-now.com/api/now/table/{table}/{id}"), "value": id})
}

/// The tables of the demo data set, as the instance serves them.
pub(crate) const TABLES: &[&str] = &[
    "sys_user_role",
    "sys_user_role_contains",
    "sys_user_has_role",
    "sys_user",
    "ecc_agent",
    "ecc_agent_config",
    "sysevent",
    "sys_user_login_history",
    "ecc_agent_issue",
];

pub(crate) fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wiremock_fixtures").join(name)
}

pub(crate) fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The reference time the demo fixtures are written against: the end of the window.
pub(crate) fn reference_now() -> DateTime<Utc> {
    sn_time::parse(midwatch_sim::REFERENCE_TIME).expect("valid reference time")
}

/// Mounts `demo/<table>.json` for every table except those in `except`.
pub(crate) async fn mount_demo_tables(server: &MockServer, except: &[&str]) {
    for table in TABLES.iter().filter(|t| !except.contains(t)) {
        Mock::given(method("GET"))
            .and(path(format!("/api/now/table/{table}")))
            .respond_with(json_response(200, &fixture(&format!("demo/{table}.json"))))
            .mount(server)
            .await;
    }
}

/// A JSON answer dated (its `Date` header) by the instance's clock at [`reference_now`], the time the fixtures
/// are written against: the window ends at the instance's time.
pub(crate) fn json_response(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_raw(body.to_string(), "application/json;charset=UTF-8")
        .insert_header("Date", http_date(reference_now()).as_str())
}

/// `t` as an HTTP `Date` header says it (IMF-fixdate).
pub(crate) fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The `[instance]` section of a test config for the instance at `url`, signing in as [`USER`].
pub(crate) fn instance_section(url: &str, timeout: &str) -> String {
    format!(
        r#"
[instance]
url = "{url}"
name = "acme"
user = "{USER}"
password = "{PASSWORD}"
timeout = "{timeout}"
"#
    )
}

pub(crate) fn config_for(url: &str) -> Config {
    let text = instance_section(url, "5s");
    Config::parse("test.toml", &text, &midwatch::config::ProcessEnvironment).expect("valid test config")
}

/// Retries fast, so that tests of the retry policy do not sleep for long.
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(2),
    }
}

pub(crate) fn client(config: &Config) -> Client {
    cycle::client(config, fast_retry()).expect("client")
}

pub(crate) async fn check(url: &str) -> Result<cycle::Outcome, cycle::CycleError> {
    let config = config_for(url);
    let client = client(&config);
    Cycle::new(&config, &client, &CheckOptions::from_config(&config)).check(reference_now()).await
}

/// Writes a config file for the binary and returns its directory (kept alive by the caller).
pub(crate) fn config_file(url: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("midwatch.toml");
    let text = format!(
        "[instance]\nurl = \"{url}\"\nname = \"acme\"\nuser = \"{USER}\"\npassword_file = \"{}\"\ntimeout = \"5s\"\n",
        dir.path().join("pw").display()
    );
    std::fs::write(dir.path().join("pw"), format!("{PASSWORD}\n")).expect("write password");
    // Readable by its owner only, as `config check` asks of a secret file.
    let owner_only = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(dir.path().join("pw"), owner_only).expect("chmod password");
    std::fs::write(&file, text).expect("write config");
    (dir, file)
}

/// Runs the binary; returns (exit code, stdout, stderr).
pub(crate) fn run_binary(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_midwatch"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("MIDWATCH_CONFIG")
        .output()
        .expect("run midwatch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`run_binary`] off the test's runtime, so that servers spawned on that runtime keep answering meanwhile.
pub(crate) async fn run_binary_beside(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || run_binary(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("run midwatch")
}

/// Every file below `dir`, recursively, with its text (lossy); `.rs` files only with `rust_only`.
pub(crate) fn files_below(dir: &Path, rust_only: bool) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path, rust_only));
        } else if (!rust_only || path.extension().is_some_and(|x| x == "rs"))
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// A TLS acceptor presenting a certificate for `names`, self-signed at test time, and that certificate's PEM.
pub(crate) fn self_signed_acceptor(names: &[&str]) -> (tokio_rustls::TlsAcceptor, String) {
    let key = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("certificate");
    acceptor_for(&key)
}

/// A self-signed certificate for `names` made as `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=<name>
/// -addext subjectAltName=DNS:<name>` makes one: OpenSSL 3 marks it a CA (basicConstraints critical, CA:TRUE).
/// `expired`: valid in 2020 only.
pub(crate) fn ca_marked_certificate(names: &[&str], expired: bool) -> rcgen::CertifiedKey<rcgen::KeyPair> {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("names");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, names.first().copied().unwrap_or("relay"));
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let signing_key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&signing_key).expect("certificate");
    rcgen::CertifiedKey { cert, signing_key }
}

/// A TLS acceptor presenting `certificate`, and the certificate's PEM.
pub(crate) fn acceptor_for(certificate: &rcgen::CertifiedKey<rcgen::KeyPair>) -> (tokio_rustls::TlsAcceptor, String) {
    let pem = certificate.cert.pem();
    let cert = rustls_pki_types::CertificateDer::from(certificate.cert.der().to_vec());
    let private = rustls_pki_types::PrivateKeyDer::try_from(certificate.signing_key.serialize_der()).expect("key");
    let tls = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .expect("server config");
    (tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls)), pem)
}

/// TLS on 127.0.0.1 with `acceptor`, in front of the plain HTTP server at `upstream` (a TLS-terminating proxy):
/// each connection's bytes are relayed as they are. Returns the port.
pub(crate) async fn tls_front(acceptor: tokio_rustls::TlsAcceptor, upstream: std::net::SocketAddr) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused certificate ends the handshake here.
                let Ok(mut secure) = acceptor.accept(stream).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut secure, &mut plain).await;
            });
        }
    });
    port
}
