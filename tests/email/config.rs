//! The `[email]` configuration, and the probe of `config check`.

use super::*;

struct Env(BTreeMap<String, String>);

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        self.0.get(&path.display().to_string()).cloned().ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }
}

const INSTANCE: &str = r#"
[instance]
url = "https://acme.service-now.com"
user = "midwatch"
password = "x"
"#;

fn parse(email: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    let env = Env(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    Config::parse("test.toml", &format!("{INSTANCE}\n[email]\n{email}"), &env).map_err(|e| e.to_string())
}

#[test]
fn email_config_defaults_and_credentials() {
    let c = parse(
        r#"
url = "smtp://smtp.acme.com:587"
user = "midwatch@acme.com"
password_file = "/run/smtp"
from = "midwatch <midwatch@acme.com>"
to = "admins@acme.com"
"#,
        &[("/run/smtp", "hunter2\n")],
    )
    .expect("valid");
    let e = c.email.expect("an [email] section");
    assert_eq!((e.host.as_str(), e.port, e.tls), ("smtp.acme.com", 587, TlsMode::Required));
    assert_eq!(e.timeout, Duration::from_secs(30));
    assert_eq!(e.send, SendPolicy::OnChange);
    assert_eq!(e.to.len(), 1);
    let creds = e.credentials.as_ref().expect("credentials");
    assert_eq!(secrecy::ExposeSecret::expose_secret(&creds.password), "hunter2");
    assert!(!format!("{e:?}").contains("hunter2"), "no secret in Debug output");

    let s = parse("url = \"smtps://mail.acme.com\"\nfrom = \"a@acme.com\"\nto = [\"b@acme.com\", \"B@acme.com\"]", &[])
        .expect("valid")
        .email
        .expect("email");
    assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
    assert_eq!(s.to.len(), 1, "duplicates dropped");
    assert_eq!(s.server_url(), "smtps://mail.acme.com:465");

    let l = parse("url = \"smtp://localhost:2525\"\ntls = \"none\"\nfrom = \"a@x.org\"\nto = [\"b@x.org\"]", &[])
        .expect("valid")
        .email
        .expect("email");
    assert_eq!((l.port, l.tls), (2525, TlsMode::None));
    assert!(Config::parse("t", INSTANCE, &Env(BTreeMap::new())).expect("valid").email.is_none());
}

#[test]
fn every_invalid_email_value_is_named_with_its_key() {
    let err = parse(
        r#"
url = "smtp://smtp.acme.com"
tls = "none"
password_env = "SMTP_PASSWORD"
from = "not an address"
to = ["ok@acme.com", "broken@"]
timeout = "forever"
send = "sometimes"
"#,
        &[],
    )
    .expect_err("invalid");
    for needle in [
        "[email] tls = \"none\" sends mail (and any password) in clear, so it is accepted only for loopback hosts",
        "[email] a password is set but [email] user is not",
        "[email] from = \"not an address\" is not a valid address",
        "[email] to[1] = \"broken@\" is not a valid address",
        "[email] timeout = \"forever\" is not a duration",
        "[email] send = \"sometimes\": expected \"on_change\", \"always\" or \"never\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let err = parse("tls = \"fancy\"\nto = []", &[]).expect_err("invalid");
    for needle in ["[email] url is required", "[email] from is required", "[email] to needs at least one address"] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let err = parse("url = \"smtps://m.acme.com\"\ntls = \"none\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"", &[])
        .expect_err("invalid");
    assert!(err.contains("[email] tls = \"none\" does not apply to smtps://"), "{err}");
    let err = parse("url = \"smtp://u:p@m.acme.com\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"", &[]).expect_err("x");
    assert!(err.contains("[email] url must not contain credentials"), "{err}");
    assert!(!err.contains(":p@"), "the password in the URL is not echoed: {err}");
    let err = parse("url = \"http://m.acme.com\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"", &[]).expect_err("x");
    assert!(err.contains("has scheme http"), "{err}");
    let err = parse(
        "url = \"smtp://m.acme.com\"\nuser = \"u\"\npassword_env = \"NOPE\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"",
        &[],
    )
    .expect_err("x");
    assert!(err.contains("[email] password_env names the environment variable NOPE"), "{err}");
    let err = parse("url = \"smtp://m.acme.com\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"\nport = 25", &[])
        .expect_err("unknown key");
    assert!(err.contains("port"), "{err}");
}

#[tokio::test]
async fn probe_connects_and_checks_sender_and_recipients_without_sending() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let mut cfg = email_config(sink.port());
    assert_eq!(probe(&cfg).await, Vec::<String>::new());
    sink.set_reply(SmtpStage::Rcpt, Some("bob@acme.example"), 550, "5.1.1 no such user");
    let problems = probe(&cfg).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("[email] to bob@acme.example") && problems[0].contains("550 5.1.1"), "{problems:?}");
    sink.clear_replies();
    assert_eq!(sink.messages().len(), 0, "the probe sends no mail");

    // Credentials over the loopback plaintext connection (the sink accepts any).
    cfg.credentials = Some(midwatch::notify::SmtpCredentials {
        user: "midwatch".into(),
        password: secrecy::SecretString::from("pw"),
    });
    assert_eq!(probe(&cfg).await, Vec::<String>::new());

    cfg.tls = TlsMode::Required;
    let problems = probe(&cfg).await;
    assert!(problems.iter().any(|p| p.contains("does not offer STARTTLS")), "{problems:?}");
    cfg.tls = TlsMode::Opportunistic;
    let problems = probe(&cfg).await;
    assert!(problems.iter().any(|p| p.contains("refusing to send the password in clear")), "{problems:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let problems = probe(&email_config(port)).await;
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with(&format!("[email] smtp://127.0.0.1:{port}: ")), "{problems:?}");
}

#[tokio::test]
async fn a_second_process_holding_the_state_directory_skips_the_cycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    // pid 1 always exists on Linux and is never this test.
    let mut f = std::fs::File::create(dir.path().join("email.lock")).expect("lock");
    writeln!(f, "1").expect("write");
    let sink = SmtpSink::start(None).await.expect("sink");
    let outcome =
        cycle(&email_config(sink.port()), dir.path(), &report(vec![finding("u", Category::Network)]), now()).await;
    if Path::new("/proc/1").exists() {
        assert!(matches!(outcome.status, EmailStatus::Skipped { .. }), "{outcome:?}");
        assert_eq!(sink.messages().len(), 0);
    }
    // A stale lock (a pid that no longer exists) is taken over.
    std::fs::write(dir.path().join("email.lock"), format!("{}\n", u32::MAX - 1)).expect("write");
    let outcome =
        cycle(&email_config(sink.port()), dir.path(), &report(vec![finding("u", Category::Network)]), now()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    assert!(!dir.path().join("email.lock").exists(), "released");
}
