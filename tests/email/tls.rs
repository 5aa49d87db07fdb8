//! STARTTLS against a real TLS server on loopback, with a certificate made at test time: an untrusted or
//! mismatched certificate is a configuration error said with what to do (in the outcome, the log and
//! `config check` alike), the message stays queued, and `[email] ca_file` makes the same server trusted.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::*;

/// An SMTP server on 127.0.0.1 that offers STARTTLS with its own certificate and keeps the data of every
/// message it accepts over TLS.
struct StartTlsServer {
    port: u16,
    /// The certificate's PEM, for `[email] ca_file`.
    pem: String,
    received: Arc<Mutex<Vec<String>>>,
}

impl StartTlsServer {
    /// A server whose self-signed certificate is valid for `names`, offering STARTTLS.
    async fn start(names: &[&str]) -> StartTlsServer {
        StartTlsServer::serve(names, false).await
    }

    /// The same with TLS from the first byte (`smtps://`).
    async fn implicit(names: &[&str]) -> StartTlsServer {
        StartTlsServer::serve(names, true).await
    }

    async fn serve(names: &[&str], implicit: bool) -> StartTlsServer {
        let (acceptor, pem) = crate::support::self_signed_acceptor(names);
        StartTlsServer::with(acceptor, pem, implicit).await
    }

    /// A server presenting `certificate`: STARTTLS, or TLS from the first byte when `implicit`.
    async fn presenting(certificate: &rcgen::CertifiedKey<rcgen::KeyPair>, implicit: bool) -> StartTlsServer {
        let (acceptor, pem) = crate::support::acceptor_for(certificate);
        StartTlsServer::with(acceptor, pem, implicit).await
    }

    async fn with(acceptor: tokio_rustls::TlsAcceptor, pem: String, implicit: bool) -> StartTlsServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&received);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    if implicit {
                        if let Ok(mut secure) = acceptor.accept(stream).await
                            && secure.write_all(b"220 localhost ESMTPS test server\r\n").await.is_ok()
                        {
                            let _ = dialogue(secure, true, &kept).await;
                        }
                        return;
                    }
                    let Ok(Some(plain)) = dialogue(stream, false, &kept).await else { return };
                    // A refused certificate ends the handshake here.
                    let Ok(secure) = acceptor.accept(plain).await else { return };
                    let _ = dialogue(secure, true, &kept).await;
                });
            }
        });
        StartTlsServer { port, pem, received }
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// One SMTP dialogue; `Some(stream)` when the client asked for STARTTLS (and was told to go ahead).
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    secure: bool,
    kept: &Mutex<Vec<String>>,
) -> std::io::Result<Option<S>> {
    let mut stream = BufReader::new(stream);
    if !secure {
        stream.write_all(b"220 localhost ESMTP test server\r\n").await?;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" if secure => "250-localhost\r\n250 8BITMIME",
            "EHLO" => "250-localhost\r\n250 STARTTLS",
            "STARTTLS" if !secure => {
                stream.write_all(b"220 2.0.0 ready to start TLS\r\n").await?;
                // The client waits for the 220 before its ClientHello: nothing is left in the buffer.
                return Ok(Some(stream.into_inner()));
            }
            "MAIL" | "RCPT" | "RSET" | "NOOP" if secure => "250 2.0.0 ok",
            "DATA" if secure => {
                stream.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await? == 0 {
                        return Ok(None);
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(&line);
                }
                kept.lock().unwrap_or_else(PoisonError::into_inner).push(data);
                "250 2.0.0 queued"
            }
            "QUIT" => {
                stream.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(None);
            }
            _ => "530 5.7.0 must issue STARTTLS first",
        };
        stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// STARTTLS required to `localhost:<port>`, trusting `ca_file` when given.
fn starttls_config(port: u16, ca_file: Option<PathBuf>) -> EmailConfig {
    let mut cfg = email_config(port);
    cfg.host = "localhost".into();
    cfg.tls = TlsMode::Required;
    cfg.ca_file = ca_file;
    cfg
}

fn queued_reason(outcome: &EmailOutcome) -> String {
    match &outcome.status {
        EmailStatus::Queued { reason, .. } => reason.clone(),
        other => panic!("expected the email to stay queued: {other:?}"),
    }
}

#[tokio::test]
async fn an_untrusted_certificate_keeps_the_email_queued_and_names_ca_file_not_an_outage() {
    let server = StartTlsServer::start(&["localhost"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = starttls_config(server.port, None);
    let (logs, guard) = capture_logs();
    let outcome = cycle(&cfg, dir.path(), &report(vec![finding("svc_mid", Category::Network)]), now()).await;
    drop(guard);
    let reason = queued_reason(&outcome);
    assert!(reason.contains(&format!("the TLS certificate of smtp://localhost:{} is not trusted", server.port)));
    assert!(reason.contains("Set [email] ca_file to the PEM certificate"), "{reason}");
    assert!(reason.contains("tls = \"none\""), "names the loopback way out: {reason}");
    assert!(!reason.contains("smtp down") && !reason.contains("unavailable"), "{reason}");
    assert!(outcome.summary().contains("is not trusted"), "{}", outcome.summary());
    assert_eq!(outbox_count(dir.path()), 1, "the message stays in the outbox");
    assert!(server.received().is_empty());

    let log = logs.text();
    assert!(log.contains("ERROR") && log.contains("is not trusted"), "{log}");
    assert!(!log.contains("unavailable"), "not called an outage: {log}");

    // `config check` says it in the same words.
    let problems = probe(&cfg).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("[email] the TLS certificate of"), "{problems:?}");
    assert!(problems[0].ends_with(&reason), "{problems:?} vs {reason}");

    // Retried next cycle, with the same words, until fixed.
    let again = cycle(&cfg, dir.path(), &report(vec![finding("svc_mid", Category::Network)]), now()).await;
    assert!(again.summary().contains("is not trusted"), "{}", again.summary());
    assert_eq!(outbox_count(dir.path()), 1);
}

#[tokio::test]
async fn with_ca_file_holding_the_servers_certificate_the_email_is_delivered_over_starttls() {
    let server = StartTlsServer::start(&["localhost"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("smtp-ca.pem");
    std::fs::write(&ca, &server.pem).expect("write ca_file");
    let state = dir.path().join("state");
    let cfg = starttls_config(server.port, Some(ca));
    let outcome = cycle(&cfg, &state, &report(vec![finding("svc_mid", Category::Network)]), now()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    assert_eq!(outbox_count(&state), 0);
    let received = server.received();
    assert_eq!(received.len(), 1, "the server received the message data over TLS");
    assert!(received[0].contains("Subject:"), "{}", received[0]);
    assert_eq!(probe(&cfg).await, Vec::<String>::new(), "config check passes too");
}

#[tokio::test]
async fn a_certificate_for_another_name_names_the_host_it_must_be_valid_for() {
    let server = StartTlsServer::start(&["mail.other.example"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("smtp-ca.pem");
    std::fs::write(&ca, &server.pem).expect("write ca_file");
    let state = dir.path().join("state");
    // Trusted (ca_file), but issued for another name than the host midwatch connects to.
    let cfg = starttls_config(server.port, Some(ca));
    // Captured here too: a test hitting the same `error!` on a thread without a subscriber can leave the
    // callsite's cached interest at "never" for the other test (seen as an empty capture, now and then).
    let (logs, guard) = capture_logs();
    let outcome = cycle(&cfg, &state, &report(vec![finding("svc_mid", Category::Network)]), now()).await;
    drop(guard);
    let reason = queued_reason(&outcome);
    assert!(logs.text().contains("is not valid for localhost"), "{}", logs.text());
    assert!(
        reason.contains("is not valid for localhost (it is valid for mail.other.example only)"),
        "names the configured host and the certificate's names: {reason}"
    );
    assert!(reason.contains("set the host of [email] url"), "{reason}");
    assert!(!reason.contains("smtp down"), "{reason}");
    assert_eq!(outbox_count(&state), 1);
    assert!(server.received().is_empty());
    let problems = probe(&cfg).await;
    assert!(problems.iter().any(|p| p.ends_with(&reason)), "{problems:?}");
}

#[tokio::test]
async fn smtps_trusts_ca_file_and_says_an_untrusted_certificate_the_same_way() {
    let server = StartTlsServer::implicit(&["localhost"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = starttls_config(server.port, None);
    cfg.tls = TlsMode::Implicit;
    let problems = probe(&cfg).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .starts_with(&format!("[email] the TLS certificate of smtps://localhost:{} is not trusted", server.port)),
        "{problems:?}"
    );
    assert!(problems[0].contains("[email] ca_file"), "{problems:?}");

    let ca = dir.path().join("smtp-ca.pem");
    std::fs::write(&ca, &server.pem).expect("write ca_file");
    cfg.ca_file = Some(ca);
    let state = dir.path().join("state");
    let outcome = cycle(&cfg, &state, &report(vec![finding("svc_mid", Category::Network)]), now()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    assert_eq!(server.received().len(), 1);
}

// ------------------------------------------------------------------------------------------------------------
// A relay certificate made by `openssl req -x509` (self-signed, marked CA:TRUE)

#[tokio::test]
async fn a_ca_marked_self_signed_certificate_in_ca_file_is_trusted_over_starttls_and_smtps() {
    let certificate = crate::support::ca_marked_certificate(&["localhost"], false);
    for implicit in [false, true] {
        let server = StartTlsServer::presenting(&certificate, implicit).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("relay.pem");
        std::fs::write(&ca, &server.pem).expect("write ca_file");
        let mut cfg = starttls_config(server.port, Some(ca));
        if implicit {
            cfg.tls = TlsMode::Implicit;
        }
        assert_eq!(probe(&cfg).await, Vec::<String>::new(), "config check passes (implicit: {implicit})");
        let state = dir.path().join("state");
        let outcome = cycle(&cfg, &state, &report(vec![finding("svc_mid", Category::Network)]), now()).await;
        assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "implicit: {implicit}: {outcome:?}");
        assert_eq!(server.received().len(), 1, "implicit: {implicit}");
    }
}

#[tokio::test]
async fn a_ca_marked_certificate_not_in_ca_file_is_refused_naming_the_cause() {
    let certificate = crate::support::ca_marked_certificate(&["localhost"], false);
    let server = StartTlsServer::presenting(&certificate, false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let other_pem = dir.path().join("other.pem");
    std::fs::write(&other_pem, other.cert.pem()).expect("write");
    for ca_file in [None, Some(other_pem.clone())] {
        let state = dir.path().join(format!("state-{}", ca_file.is_some()));
        let cfg = starttls_config(server.port, ca_file.clone());
        let outcome = cycle(&cfg, &state, &report(vec![finding("svc_mid", Category::Network)]), now()).await;
        let reason = queued_reason(&outcome);
        assert!(
            reason.starts_with(&format!(
                "the TLS certificate of smtp://localhost:{} is itself marked as a CA",
                server.port
            )),
            "{reason}"
        );
        assert!(reason.contains("Set [email] ca_file to the server's certificate itself"), "{reason}");
        if let Some(path) = &ca_file {
            assert!(reason.contains(&format!("[email] ca_file {} does not hold it", path.display())), "{reason}");
        }
        assert!(!reason.contains("OtherError") && !reason.contains("CaUsedAsEndEntity"), "{reason}");
        assert!(!reason.contains("unavailable"), "{reason}");
        assert_eq!(outbox_count(&state), 1);
        let problems = probe(&cfg).await;
        assert!(problems.iter().any(|p| p.ends_with(&reason)), "{problems:?}");
    }
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn the_exact_certificate_in_ca_file_must_still_name_the_host_and_be_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            crate::support::ca_marked_certificate(&["relay.other.example"], false),
            "is not valid for localhost (it is valid for relay.other.example only)",
        ),
        (crate::support::ca_marked_certificate(&["localhost"], true), "expired on 2021-01-01 00:00:00 UTC"),
    ];
    for (i, (certificate, expected)) in cases.iter().enumerate() {
        for implicit in [false, true] {
            let server = StartTlsServer::presenting(certificate, implicit).await;
            let ca = dir.path().join(format!("relay-{i}.pem"));
            std::fs::write(&ca, &server.pem).expect("write ca_file");
            let mut cfg = starttls_config(server.port, Some(ca));
            if implicit {
                cfg.tls = TlsMode::Implicit;
            }
            let state = dir.path().join(format!("state-{i}-{implicit}"));
            let outcome = cycle(&cfg, &state, &report(vec![finding("svc_mid", Category::Network)]), now()).await;
            let reason = queued_reason(&outcome);
            assert!(reason.contains(expected), "implicit: {implicit}: {reason}");
            assert!(server.received().is_empty());
        }
    }
}

/// `check` with email through a relay whose certificate is trusted through `ca_file` (one run) or refused (the
/// other): neither run's output carries a line of a TLS library.
#[tokio::test]
async fn no_tls_library_line_reaches_checks_output_whether_the_relay_is_trusted_or_refused() {
    let instance = wiremock::MockServer::start().await;
    crate::support::mount_demo_tables(&instance, &[]).await;
    let certificate = crate::support::ca_marked_certificate(&["localhost"], false);
    let server = StartTlsServer::presenting(&certificate, false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("relay.pem");
    std::fs::write(&ca, &server.pem).expect("write ca_file");
    for (name, ca_line, expected) in [
        ("trusted", format!("ca_file = \"{}\"\n", ca.display()), "Email: email sent to 2 recipients"),
        ("refused", String::new(), "is itself marked as a CA"),
    ] {
        let (config_dir, file) = crate::support::config_file(&instance.uri());
        let state = config_dir.path().join("state");
        std::fs::create_dir(&state).expect("state directory");
        let owner_only = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700);
        std::fs::set_permissions(&state, owner_only).expect("chmod state");
        let mut text = std::fs::read_to_string(&file).expect("read config");
        text.push_str(&format!(
            "\n[email]\nurl = \"smtp://localhost:{}\"\ntls = \"required\"\nfrom = \"midwatch@acme.example\"\n\
             to = [\"alice@acme.example\", \"bob@acme.example\"]\n{ca_line}\n[state]\ndirectory = \"{}\"\n",
            server.port,
            state.display()
        ));
        std::fs::write(&file, text).expect("write config");
        let args = ["check", "--config", file.to_str().expect("utf-8"), "--no-write", "--detail", "summary"];
        let (code, stdout, stderr) = crate::support::run_binary_beside(&args).await;
        let output = format!("{stdout}{stderr}");
        assert_eq!(code, 2, "{name}: {output}");
        assert!(output.contains(expected), "{name}: {output}");
        let tls_lines: Vec<&str> = output.lines().filter(|l| l.contains("rustls") || l.contains("webpki")).collect();
        assert_eq!(tls_lines, Vec::<&str>::new(), "{name}: {output}");
    }
    assert_eq!(server.received().len(), 1, "the trusted run delivered");
}
