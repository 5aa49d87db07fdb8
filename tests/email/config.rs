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
    assert_eq!(e.outbox_max_age, Duration::from_secs(3 * 24 * 3600), "a few days by default");
    assert_eq!(e.outbox_max_messages, 50);
    assert_eq!(e.remind_every, None, "no reminders by default");
    assert_eq!(e.to.len(), 1);
    let creds = e.credentials.as_ref().expect("credentials");
    assert_eq!(secrecy::ExposeSecret::expose_secret(&creds.password), "hunter2");
    assert!(!format!("{e:?}").contains("hunter2"), "no secret in Debug output");

    let s = parse("url = \"smtps://mail.acme.com\"\nfrom = \"a@acme.com\"\nto = [\"b@acme.com\", \"B@acme.com\"]", &[])
        .expect("valid")
        .email
        .expect("email");
    assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
    let r =
        parse("url = \"smtps://m.acme.com\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"\nremind_every = \"24h\"", &[])
            .expect("valid")
            .email
            .expect("email");
    assert_eq!(r.remind_every, Some(Duration::from_secs(24 * 3600)));
    let off =
        parse("url = \"smtps://m.acme.com\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"\nremind_every = \"off\"", &[]);
    assert_eq!(off.expect("valid").email.expect("email").remind_every, None);
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
outbox_max_age = "10m"
outbox_max_messages = 0
remind_every = "5m"
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
        "[email] outbox_max_age = \"10m\" must be between 1h and 90d",
        "[email] outbox_max_messages = 0 must be between 1 and 10000",
        "[email] remind_every = \"5m\" must be between 1h and 90d, or \"off\"",
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
    cfg.credentials = Some(midwatch::config::SmtpCredentials {
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
async fn the_probe_tells_at_once_a_server_that_answers_like_an_http_server() {
    let (port, _server) = crate::http_answering_server().await;
    let mut cfg = email_config(port);
    cfg.timeout = Duration::from_secs(30);
    let started = std::time::Instant::now();
    let problems = probe(&cfg).await;
    assert!(started.elapsed() < Duration::from_secs(2), "at once: {:?}", started.elapsed());
    assert_eq!(
        problems,
        [format!(
            "[email] the server at 127.0.0.1:{port} does not speak SMTP: it answered `HTTP/1.1 400 Bad Request`; \
             check the port in [email] url (587 for submission with STARTTLS, 465 for smtps://, 25 for a relay)"
        )]
    );
}

#[tokio::test]
async fn the_probe_of_a_silent_http_server_asks_whether_it_is_an_smtp_port_before_the_timeout() {
    // A real HTTP server (the simulated instance's): it waits for a request and says nothing.
    let instance =
        midwatch_sim::FakeInstance::start(midwatch_sim::Dataset::demo(now()), "u", "p").await.expect("start");
    let port: u16 = instance.url().rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("port");
    let mut cfg = email_config(port);
    cfg.timeout = Duration::from_secs(30);
    let started = std::time::Instant::now();
    let problems = probe(&cfg).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(15), "not the 30s timeout: {waited:?}");
    assert_eq!(
        problems,
        [format!(
            "[email] smtp://127.0.0.1:{port}: no SMTP greeting from 127.0.0.1:{port} within 10s: is this an SMTP \
             port? (an SMTP server greets at once; an HTTP server, for one, waits in silence for a request)"
        )]
    );
}

/// Held by the tests that spawn processes and by those that drop a lock: a child forked while a lock's file is
/// open shares that lock until it execs, so a lock dropped meanwhile would still look held.
static FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn whoever_holds_the_os_lock_keeps_it_whatever_pid_the_file_names() {
    let _forks = FORKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    // The holder's pid as another process would see it under ProtectProc=invisible: not there. A pid-file lock
    // judged this lock stale and delivered; the OS lock is held all the same.
    let lock_path = dir.path().join("email.lock");
    std::fs::write(&lock_path, format!("{}\n", u32::MAX - 1)).expect("write");
    let holder = std::fs::File::options().read(true).write(true).open(&lock_path).expect("open");
    holder.try_lock().expect("the test takes the lock first");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sink = runtime.block_on(SmtpSink::start(None)).expect("sink");
    let r = report(vec![finding("u", Category::Network)]);
    let outcome = runtime.block_on(cycle(&email_config(sink.port()), dir.path(), &r, now()));
    match &outcome.status {
        EmailStatus::Skipped { reason } => assert!(reason.contains("in use by another midwatch"), "{reason}"),
        other => panic!("expected skipped, got {other:?}"),
    }
    assert_eq!(sink.messages().len(), 0);
    assert_eq!(outbox_count(dir.path()), 0, "nothing queued by the process that did not get the lock");

    // Released (the holder ended): the next cycle takes it and delivers; the lock file stays, unlocked.
    drop(holder);
    let outcome = runtime.block_on(cycle(&email_config(sink.port()), dir.path(), &r, now()));
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let after = std::fs::File::options().read(true).write(true).open(&lock_path).expect("open");
    after.try_lock().expect("released when the cycle ended");
}

#[test]
fn processes_racing_for_the_state_directory_deliver_one_message() {
    let _forks = FORKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sink = runtime.block_on(SmtpSink::start(None)).expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let r = report(vec![finding("u", Category::Network)]);
    // One message waits in the outbox (queued by a cycle whose relay was down).
    let down = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let queued = runtime.block_on(cycle(&email_config(down), &state, &r, now()));
    assert!(matches!(queued.status, EmailStatus::Queued { .. }), "{queued:?}");
    // Four processes deliver it at once: each is this test binary, running the helper below in a child.
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args(["--exact", "config::race_child", "--include-ignored", "--nocapture"])
                .env("MIDWATCH_RACE_STATE", &state)
                .env("MIDWATCH_RACE_PORT", sink.port().to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("child");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(sink.messages().len(), 1, "delivered once, whoever won");
    assert_eq!(outbox_count(&state), 0);
}

/// The child of [`processes_racing_for_the_state_directory_deliver_one_message`]: one cycle on the shared state.
#[test]
#[ignore = "run by processes_racing_for_the_state_directory_deliver_one_message"]
fn race_child() {
    let (Ok(state), Ok(port)) = (std::env::var("MIDWATCH_RACE_STATE"), std::env::var("MIDWATCH_RACE_PORT")) else {
        return;
    };
    let port: u16 = port.parse().expect("port");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let r = report(vec![finding("u", Category::Network)]);
    let outcome = runtime.block_on(cycle(&email_config(port), Path::new(&state), &r, now()));
    assert!(outcome.permanent_failures.is_empty(), "{outcome:?}");
}

#[tokio::test]
async fn a_state_directory_of_another_user_is_not_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    // Only root can give a directory away; elsewhere the refusal cannot be set up.
    if std::os::unix::fs::chown(&state, Some(65534), Some(65534)).is_err() {
        eprintln!("skipped: not root, cannot chown a directory to another user");
        return;
    }
    let sink = SmtpSink::start(None).await.expect("sink");
    let outcome =
        cycle(&email_config(sink.port()), &state, &report(vec![finding("u", Category::Network)]), now()).await;
    match &outcome.status {
        EmailStatus::Skipped { reason } => {
            assert!(reason.contains("belongs to uid 65534"), "{reason}");
            assert!(reason.contains("sudo -u '#65534' midwatch"), "says what to run instead: {reason}");
        }
        other => panic!("expected skipped, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(&state).expect("dir").count(), 0, "nothing written into it");
    assert_eq!(sink.messages().len(), 0);
}

/// What a test logs, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_state_directory_that_cannot_be_used_is_said_once_and_nothing_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file where the state directory should be: nothing can be queued, locked or recorded there.
    let state = dir.path().join("state");
    std::fs::write(&state, "").expect("write");
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let _capture = tracing::subscriber::set_default(subscriber);
    let sink = SmtpSink::start(None).await.expect("sink");
    let outcome =
        cycle(&email_config(sink.port()), &state, &report(vec![finding("u", Category::Network)]), now()).await;
    let shown = state.display().to_string();
    assert_eq!(outcome.problems.len(), 1, "one cause, one problem: {:?}", outcome.problems);
    assert!(outcome.problems[0].contains(&format!("the state directory {shown}")), "{:?}", outcome.problems);
    match &outcome.status {
        EmailStatus::Skipped { reason } => assert!(reason.contains(&shown), "{reason}"),
        other => panic!("expected skipped, got {other:?}"),
    }
    let text = String::from_utf8_lossy(&log.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned();
    assert_eq!(text.lines().filter(|l| l.contains("ERROR")).count(), 1, "one error logged:\n{text}");
    assert_eq!(sink.messages().len(), 0);
}
