//! The binary, as systemd runs it: signals sent with kill(1), sd_notify datagrams on a socket the
//! test binds, the journal's priority prefixes on a stream it names.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use midwatch_sim::{Dataset, FakeInstance};

use crate::log::Log;
use crate::support::{PASSWORD, USER};
use crate::{PATIENCE, YEARLY, config, is_started, write_config_in};

/// A running `midwatch run` and everything it printed on stderr.
struct Midwatch {
    child: Child,
    log: Log,
    dir: tempfile::TempDir,
}

impl Midwatch {
    /// Writes `config` and starts the binary. With `journal`, its stderr is a stream that
    /// `$JOURNAL_STREAM` names, as under systemd.
    fn spawn(config: &str, env: &[(&str, &str)], journal: bool) -> Midwatch {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = write_config_in(dir.path(), config);
        let (reader, writer) = std::io::pipe().expect("pipe");
        let writer = std::fs::File::from(std::os::fd::OwnedFd::from(writer));
        let stream = writer.metadata().expect("fstat the pipe");
        let mut command = Command::new(env!("CARGO_BIN_EXE_midwatch"));
        command
            .args(["run", "--config"])
            .arg(&me)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .env_remove("STATE_DIRECTORY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("MIDWATCH_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(writer));
        if journal {
            command.env("JOURNAL_STREAM", format!("{}:{}", stream.dev(), stream.ino()));
        }
        for (k, v) in env {
            command.env(k, v);
        }
        // `command` (and with it the write end of the pipe) is dropped at the end of this
        // function, so the reader sees the end of the stream when the child exits.
        let child = command.spawn().expect("spawn midwatch");
        let log = Log::default();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                sink.push(&line);
            }
        });
        Midwatch { child, log, dir }
    }

    /// Replaces the config file (for a SIGHUP).
    fn rewrite_config(&self, config: &str) {
        write_config_in(self.dir.path(), config);
    }

    fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([format!("-{name}"), self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn dump(&self) -> String {
        self.log.dump()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The first log line that satisfies `pred`, waiting for it.
    async fn wait_for_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.log.find(&pred) {
                return line.text;
            }
            assert!(Instant::now() < deadline, "no log line {what} within {PATIENCE:?}; log:\n{}", self.dump());
            if !self.running() {
                // Let the reader thread drain what the process wrote last.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(line) = self.log.find(&pred) {
                    return line.text;
                }
                panic!("midwatch exited before logging {what}; log:\n{}", self.dump());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return status;
            }
            assert!(Instant::now() < deadline, "midwatch still running after {bound:?}; log:\n{}", self.dump());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Midwatch {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Receives sd_notify datagrams on a socket bound in a temporary directory.
struct NotifySocket {
    messages: Arc<Mutex<Vec<String>>>,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            // Ends when the test (and its last Arc) is gone.
            while Arc::strong_count(&sink) > 1 {
                if let Ok(n) = socket.recv(&mut buf) {
                    sink.lock().unwrap_or_else(PoisonError::into_inner).push(String::from_utf8_lossy(&buf[..n]).into());
                }
            }
        });
        NotifySocket { messages, path }
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Index of the first datagram after `after` that satisfies `pred`, waiting for it.
    async fn wait_for(&self, what: &str, after: usize, pred: impl Fn(&str) -> bool) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.messages().iter().skip(after).position(|m| pred(m)) {
                return after + i;
            }
            assert!(Instant::now() < deadline, "no sd_notify {what}; got {:#?}", self.messages());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn has_line(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_receives_ready_status_watchdog_reloading_and_stopping() {
    let instance = FakeInstance::start(Dataset::demo(chrono::Utc::now()), USER, PASSWORD).await.expect("fake instance");
    let systemd = tempfile::tempdir().expect("tempdir");
    let notify = NotifySocket::bind(systemd.path());
    // The password comes from a systemd credential, as under LoadCredential=.
    let credentials = systemd.path().join("credentials");
    std::fs::create_dir(&credentials).expect("credentials dir");
    std::fs::write(credentials.join("instance_password"), format!("{PASSWORD}\n")).expect("credential");
    // The binary cannot be sent ticks: this is the one test that waits for the cron job (≤ 1.2 s).
    let text = config(&instance.url(), "* * * * * *", "")
        .replace(&format!("password = \"{PASSWORD}\""), "password_file = \"instance_password\"")
        .replace("write_issues = false", "write_issues = true");
    let notify_socket = notify.path.display().to_string();
    let credentials_dir = credentials.display().to_string();
    let mut midwatch = Midwatch::spawn(
        &text,
        &[
            ("NOTIFY_SOCKET", notify_socket.as_str()),
            ("WATCHDOG_USEC", "1000000"),
            ("CREDENTIALS_DIRECTORY", credentials_dir.as_str()),
        ],
        false,
    );

    let ready = notify.wait_for("READY=1", 0, |m| has_line(m, "READY=1")).await;
    let first = &notify.messages()[ready];
    assert!(first.contains("STATUS=no cycle yet; next cycle "), "{first}");
    let status = notify
        .wait_for("STATUS after a cycle", ready, |m| m.contains("STATUS=last cycle ") && m.contains("CRITICAL"))
        .await;
    let status = notify.messages()[status].clone();
    assert!(status.contains("on acme; next cycle "), "{status}");
    assert!(!status.contains(PASSWORD));
    let ping = notify.wait_for("WATCHDOG=1", 0, |m| has_line(m, "WATCHDOG=1")).await;
    notify.wait_for("a second WATCHDOG=1", ping + 1, |m| has_line(m, "WATCHDOG=1")).await;

    let before_reload = notify.messages().len();
    midwatch.signal("HUP");
    let reloading = notify.wait_for("RELOADING=1", before_reload, |m| has_line(m, "RELOADING=1")).await;
    assert!(notify.messages()[reloading].lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{:?}", notify.messages());
    notify.wait_for("READY=1 after the reload", reloading + 1, |m| has_line(m, "READY=1")).await;

    let before_stop = notify.messages().len();
    midwatch.signal("TERM");
    notify.wait_for("STOPPING=1", before_stop, |m| has_line(m, "STOPPING=1")).await;
    assert_eq!(midwatch.wait_for_exit(PATIENCE).await.code(), Some(0), "log:\n{}", midwatch.dump());
    assert!(!midwatch.dump().contains(PASSWORD), "the password was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sighup_and_sigint_reach_the_service_and_the_journal_gets_priorities() {
    let yearly = config("http://127.0.0.1:9", YEARLY, "");
    let mut midwatch = Midwatch::spawn(&yearly, &[], true);
    let started = midwatch.wait_for_line("started", is_started).await;
    assert!(started.starts_with("<6>"), "{started}");

    midwatch.rewrite_config(&yearly.replace("url = ", "url = 42 #"));
    midwatch.signal("HUP");
    let refused = midwatch.wait_for_line("the refused reload", |l| l.contains("configuration not reloaded")).await;
    assert!(refused.starts_with("<3>"), "{refused}");

    // Still serving (a SIGHUP without a handler would have killed it): a valid file is applied.
    midwatch.rewrite_config(&yearly.replace("level = \"info,", "level = \"warn,"));
    midwatch.signal("HUP");
    let warned = midwatch.wait_for_line("the [log] warning", |l| l.contains("[log] changes take effect")).await;
    assert!(warned.starts_with("<4>"), "{warned}");
    midwatch.wait_for_line("the reload", |l| l.contains("configuration reloaded")).await;
    assert!(midwatch.running(), "log:\n{}", midwatch.dump());

    midwatch.signal("INT");
    assert_eq!(midwatch.wait_for_exit(PATIENCE).await.code(), Some(0), "log:\n{}", midwatch.dump());
    let stopped = midwatch.wait_for_line("stopped", |l| l.contains("SIGINT received: stopping")).await;
    assert!(stopped.starts_with("<6>"), "{stopped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_fails_the_start_with_status_3_and_no_ready() {
    let systemd = tempfile::tempdir().expect("tempdir");
    let notify = NotifySocket::bind(systemd.path());
    let notify_socket = notify.path.display().to_string();
    let text = config("http://127.0.0.1:9", "every four hours", "");
    let mut midwatch = Midwatch::spawn(&text, &[("NOTIFY_SOCKET", notify_socket.as_str())], false);
    let status = midwatch.wait_for_exit(PATIENCE).await;
    assert_eq!(status.code(), Some(3), "log:\n{}", midwatch.dump());
    let log = midwatch.dump();
    assert!(log.contains("cannot start") && log.contains("[check] schedule"), "log:\n{log}");
    assert!(!notify.messages().iter().any(|m| has_line(m, "READY=1")), "{:?}", notify.messages());
}
