//! `midwatch run` as systemd runs it: the real binary, a config file, signals sent with kill(1),
//! sd_notify datagrams on a socket the test binds, against wiremock or the simulated instance.
//!
//! Timing is asserted from what the server saw and from the order of log lines, never from fixed
//! sleeps; every wait is a poll with a generous bound, so a loaded machine slows the tests down
//! instead of failing them.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use midwatch::demo::instance::{Dataset, FakeInstance};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const USER: &str = "svc.midwatch";
const PASSWORD: &str = "service-test-password";
/// Upper bound of any single wait; a healthy run takes a fraction of it.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running `midwatch run` and everything it printed on stderr.
struct Midwatch {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

impl Midwatch {
    /// Writes `config` (with `{state}` replaced by a private state directory) and starts the binary.
    fn spawn(config: &str, env: &[(&str, &str)]) -> Midwatch {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = Midwatch::write_config_in(dir.path(), config);
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
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn midwatch");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(PoisonError::into_inner).push(line);
            }
        });
        Midwatch { child, log, dir }
    }

    fn write_config_in(dir: &Path, config: &str) -> PathBuf {
        let path = dir.join("midwatch.toml");
        let state = dir.join("state");
        std::fs::write(&path, config.replace("{state}", &state.display().to_string())).expect("write config");
        path
    }

    /// Replaces the config file (for a SIGHUP).
    fn rewrite_config(&self, config: &str) {
        Midwatch::write_config_in(self.dir.path(), config);
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([format!("-{name}"), self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn dump(&self) -> String {
        self.lines().join("\n")
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The first log line that satisfies `pred`, waiting for it.
    async fn wait_for_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| pred(l)) {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line {what} within {PATIENCE:?}; log:\n{}", self.dump());
            if !self.running() {
                // Let the reader thread drain what the process wrote last.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(line) = self.lines().into_iter().find(|l| pred(l)) {
                    return line;
                }
                panic!("midwatch exited before logging {what}; log:\n{}", self.dump());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status;
            }
            assert!(Instant::now() < deadline, "midwatch still running after {bound:?}; log:\n{}", self.dump());
            tokio::time::sleep(Duration::from_millis(50)).await;
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

/// A config for `url`; `{state}` is filled in by [`Midwatch::spawn`].
fn config(url: &str, schedule: &str, extra: &str) -> String {
    format!(
        r#"
[instance]
url = "{url}"
name = "acme"
user = "{USER}"
password = "{PASSWORD}"
timeout = "20s"

[check]
schedule = "{schedule}"
write_issues = false

[state]
directory = "{{state}}"

[log]
level = "info,midwatch::service=debug"
{extra}
"#
    )
}

fn is_start(line: &str, n: u64) -> bool {
    line.contains(&format!("midwatch::service: cycle {n} starting"))
}

fn is_summary(line: &str, n: u64) -> bool {
    line.contains(" INFO ") && line.contains(&format!("cycle{{n={n}}}: midwatch::service: cycle "))
}

fn is_started(line: &str) -> bool {
    line.contains("midwatch::service: midwatch ") && line.contains(" started for ")
}

/// Answers every Table API read with an empty result after `delay`, noting when each arrived.
struct SlowEmptyTables {
    delay: Duration,
    arrivals: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Respond for SlowEmptyTables {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((request.url.path().to_string(), Instant::now()));
        ResponseTemplate::new(200)
            .set_body_raw(r#"{"result":[]}"#, "application/json;charset=UTF-8")
            .set_delay(self.delay)
    }
}

async fn slow_instance(delay: Duration) -> (MockServer, Arc<Mutex<Vec<(String, Instant)>>>) {
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path_regex("^/api/now/table/"))
        .respond_with(SlowEmptyTables { delay, arrivals: Arc::clone(&arrivals) })
        .mount(&server)
        .await;
    (server, arrivals)
}

fn arrivals_at(arrivals: &Mutex<Vec<(String, Instant)>>, table_path: &str) -> Vec<Instant> {
    arrivals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(p, _)| p == table_path)
        .map(|(_, at)| *at)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_never_overlap_and_ticks_during_a_long_cycle_run_once() {
    // Every read takes 1.5 s and the schedule ticks every second: without a guard, cycles would
    // pile up (tokio-cron-scheduler starts a job again while it still runs).
    let delay = Duration::from_millis(1500);
    let (server, arrivals) = slow_instance(delay).await;
    let mut midwatch = Midwatch::spawn(&config(&server.uri(), "* * * * * *", ""), &[]);
    let started = Instant::now();
    midwatch.wait_for_line("the summary of cycle 3", |l| is_summary(l, 3)).await;
    let elapsed = started.elapsed();
    midwatch.signal("TERM");
    assert!(midwatch.wait_for_exit(PATIENCE).await.success(), "log:\n{}", midwatch.dump());

    // The log: start 1, summary 1, start 2, summary 2, ... strictly in turn.
    let lines = midwatch.lines();
    let mut expected = Vec::new();
    let mut n = 1;
    for line in &lines {
        if (1..=3).any(|k| is_start(line, k) || is_summary(line, k)) {
            expected.push(line.clone());
        }
    }
    let order: Vec<String> = expected
        .iter()
        .map(|l| if (1..=3).any(|k| is_start(l, k)) { "start".to_string() } else { "summary".to_string() })
        .collect();
    assert_eq!(order, ["start", "summary", "start", "summary", "start", "summary"], "log:\n{}", lines.join("\n"));
    for line in &expected {
        assert!(is_start(line, n) || is_summary(line, n), "cycle {n} out of order: {line}\nlog:\n{}", lines.join("\n"));
        if is_summary(line, n) {
            n += 1;
        }
    }

    // The instance: each cycle reads ecc_agent once, and the next read comes only after the last
    // one was answered.
    let reads = arrivals_at(&arrivals, "/api/now/table/ecc_agent");
    assert!(reads.len() >= 3, "{} ecc_agent reads", reads.len());
    for pair in reads.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= delay, "two cycles overlapped: reads {gap:?} apart, each takes {delay:?}");
    }

    // About one tick in two came during a cycle; each late tick ran once, not once per tick.
    assert!(
        lines.iter().any(|l| l.contains("scheduled start(s) passed while cycle")),
        "no coalesced tick reported; log:\n{}",
        lines.join("\n")
    );
    let max_cycles = (elapsed.as_secs_f64() / delay.as_secs_f64()).ceil() as usize + 1;
    assert!(reads.len() <= max_cycles, "{} cycles in {elapsed:?}: ticks were not coalesced", reads.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_cycle_lets_it_finish_and_exits_zero() {
    let delay = Duration::from_secs(4);
    let (server, arrivals) = slow_instance(delay).await;
    let mut midwatch = Midwatch::spawn(&config(&server.uri(), "* * * * * *", ""), &[]);
    midwatch.wait_for_line("cycle 1 starting", |l| is_start(l, 1)).await;
    let deadline = Instant::now() + PATIENCE;
    while arrivals_at(&arrivals, "/api/now/table/ecc_agent").is_empty() {
        assert!(Instant::now() < deadline, "cycle 1 sent no request; log:\n{}", midwatch.dump());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let term = Instant::now();
    midwatch.signal("TERM");
    let status = midwatch.wait_for_exit(Duration::from_secs(15)).await;
    let took = term.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{}", midwatch.dump());
    assert!(took < Duration::from_secs(15), "took {took:?}");

    let lines = midwatch.lines();
    let log = lines.join("\n");
    assert!(log.contains("SIGTERM received: stopping once cycle 1 finishes"), "log:\n{log}");
    assert!(lines.iter().any(|l| is_summary(l, 1)), "cycle 1 was not finished; log:\n{log}");
    assert!(!lines.iter().any(|l| is_start(l, 2)), "a cycle started after SIGTERM; log:\n{log}");
    assert!(log.contains("midwatch stopped"), "log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_running_config_when_the_new_one_is_broken_and_applies_a_valid_one() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/now/table/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(r#"{"result":[]}"#, "application/json;charset=UTF-8"))
        .mount(&server)
        .await;
    // Once a year: no cycle until the reload brings a schedule of every second.
    let yearly = config(&server.uri(), "0 0 0 1 1 *", "");
    let mut midwatch = Midwatch::spawn(&yearly, &[]);
    midwatch.wait_for_line("started", is_started).await;

    midwatch.rewrite_config(&yearly.replace("[check]", "[check]\nwindow = \"1m\"").replace("url = ", "url = 42 #"));
    midwatch.signal("HUP");
    let refused = midwatch.wait_for_line("the refused reload", |l| l.contains("configuration not reloaded")).await;
    assert!(refused.contains(" ERROR "), "{refused}");
    assert!(refused.contains("keeping the running one"), "{refused}");
    // Still serving a while later (a SIGHUP without a handler would have killed it).
    midwatch.rewrite_config(&yearly.replace("schedule = \"0 0 0 1 1 *\"", "schedule = \"*/5 * * *\""));
    midwatch.signal("HUP");
    let refused_again = midwatch
        .wait_for_line("a second refused reload", |l| l.contains("configuration not reloaded") && l != refused)
        .await;
    assert!(refused_again.contains("needs 6 fields"), "{refused_again}");
    assert!(midwatch.running(), "log:\n{}", midwatch.dump());
    assert!(!midwatch.lines().iter().any(|l| is_start(l, 1)), "the broken config was applied:\n{}", midwatch.dump());

    midwatch.rewrite_config(&config(&server.uri(), "* * * * * *", ""));
    midwatch.signal("HUP");
    midwatch.wait_for_line("the reload", |l| l.contains("configuration reloaded: schedule \"* * * * * *\"")).await;
    midwatch.wait_for_line("a cycle on the new schedule", |l| is_summary(l, 1)).await;

    midwatch.signal("INT");
    assert_eq!(midwatch.wait_for_exit(PATIENCE).await.code(), Some(0), "log:\n{}", midwatch.dump());
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
            tokio::time::sleep(Duration::from_millis(50)).await;
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
async fn each_cycle_rewrites_the_metrics_textfile() {
    let instance = FakeInstance::start(Dataset::demo(chrono::Utc::now()), USER, PASSWORD).await.expect("fake instance");
    let dir = tempfile::tempdir().expect("tempdir");
    let textfile = dir.path().join("midwatch.prom");
    let extra = format!("\n[metrics]\ntextfile = \"{}\"\n", textfile.display());
    let mut midwatch = Midwatch::spawn(&config(&instance.url(), "* * * * * *", &extra), &[]);
    midwatch.wait_for_line("the summary of cycle 1", |l| is_summary(l, 1)).await;
    // Written right after the summary line is logged.
    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        match std::fs::read_to_string(&textfile) {
            Ok(text) => break text,
            Err(e) => assert!(Instant::now() < deadline, "no textfile after cycle 1 ({e}); log:\n{}", midwatch.dump()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for expected in [
        "midwatch_cycle_status{servicenow_instance=\"acme\"} 2",
        "midwatch_findings{servicenow_instance=\"acme\",category=\"authentication\"} ",
        "midwatch_findings{servicenow_instance=\"acme\",category=\"configuration\"} ",
        "midwatch_api_requests_total{servicenow_instance=\"acme\",status=\"200\"} ",
        "midwatch_last_success_timestamp_seconds{servicenow_instance=\"acme\"} ",
        "midwatch_cycle_duration_seconds{servicenow_instance=\"acme\"} ",
    ] {
        assert!(text.lines().any(|l| l.starts_with(expected)), "no {expected:?} in\n{text}");
    }
    assert!(!text.contains("category=\"authentication\"} 0"), "the demo has authentication findings:\n{text}");
    midwatch.signal("TERM");
    assert_eq!(midwatch.wait_for_exit(PATIENCE).await.code(), Some(0));
    assert!(midwatch.dir().join("state").is_dir(), "the state directory was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_fails_the_start_with_status_3_and_no_ready() {
    let systemd = tempfile::tempdir().expect("tempdir");
    let notify = NotifySocket::bind(systemd.path());
    let notify_socket = notify.path.display().to_string();
    let text = config("http://127.0.0.1:9", "every four hours", "");
    let mut midwatch = Midwatch::spawn(&text, &[("NOTIFY_SOCKET", notify_socket.as_str())]);
    let status = midwatch.wait_for_exit(PATIENCE).await;
    assert_eq!(status.code(), Some(3), "log:\n{}", midwatch.dump());
    let log = midwatch.dump();
    assert!(log.contains("cannot start") && log.contains("[check] schedule"), "log:\n{log}");
    assert!(!notify.messages().iter().any(|m| has_line(m, "READY=1")), "{:?}", notify.messages());
}

/// The environment systemd gives the service: a state directory and a credential.
struct UnitEnvironment;

impl midwatch::config::Environment for UnitEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "STATE_DIRECTORY" => Some("/var/lib/midwatch/acme:/var/lib/other".into()),
            "CREDENTIALS_DIRECTORY" => Some("/run/credentials/midwatch@acme.service".into()),
            _ => None,
        }
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        match path.to_str() {
            Some("/run/credentials/midwatch@acme.service/instance_password") => Ok("pw\n".into()),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }
}

fn parse_service_config(extra: &str) -> Result<midwatch::config::Config, String> {
    let text = format!(
        "[instance]\nurl = \"https://acme.service-now.com\"\nuser = \"svc\"\npassword_file = \"instance_password\"\n{extra}"
    );
    midwatch::config::Config::parse("t.toml", &text, &UnitEnvironment).map_err(|e| e.to_string())
}

#[test]
fn service_keys_default_to_no_jitter_no_metrics_and_the_units_state_directory() {
    let c = parse_service_config("").expect("valid");
    assert_eq!(c.check.schedule, "0 0 */4 * * *");
    assert_eq!(c.check.jitter, Duration::ZERO);
    assert_eq!(c.metrics.textfile, None);
    assert_eq!(c.state_directory, Path::new("/var/lib/midwatch/acme"), "the first $STATE_DIRECTORY");
    let c = parse_service_config(
        "[check]\njitter = \"5m\"\n[metrics]\ntextfile = \"/run/midwatch/m.prom\"\n[state]\ndirectory = \"/srv/mw\"\n",
    )
    .expect("valid");
    assert_eq!(c.check.jitter, Duration::from_secs(300));
    assert_eq!(c.metrics.textfile.as_deref(), Some(Path::new("/run/midwatch/m.prom")));
    assert_eq!(c.state_directory, Path::new("/srv/mw"), "an explicit directory wins");
}

#[test]
fn service_keys_are_validated_with_their_names() {
    for (extra, expected) in [
        ("[check]\nschedule = \"0 */5 * * *\"\n", "[check] schedule = \"0 */5 * * *\" needs 6 fields"),
        ("[check]\nschedule = \"0 61 * * * *\"\n", "is not a cron expression"),
        ("[check]\nschedule = \"0 0 0 1 1 * 2020\"\n", "never fires again"),
        ("[check]\njitter = \"soon\"\n", "[check] jitter = \"soon\" is not a duration"),
        ("[check]\njitter = \"2d\"\n", "[check] jitter must be at most 1d"),
        ("[metrics]\ntextfile = \"/run/midwatch/metrics.txt\"\n", "expected a file name ending in .prom"),
        ("[metrics]\nfile = \"/run/m.prom\"\n", "unknown field `file`"),
    ] {
        let err = parse_service_config(extra).expect_err(extra);
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
}
