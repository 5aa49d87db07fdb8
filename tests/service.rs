//! `midwatch run`, two ways.
//!
//! **In process**, most tests: [`service::run`] with a channel of [`Event`]s that the test sends,
//! ticks included (the configs here are scheduled once a year, so the cron job stays quiet), and a
//! log captured per test with the tokio time of each line. Where a test measures the stop grace
//! period or the jitter, tokio's clock is paused and those waits pass at once.
//!
//! **As systemd runs it**, a few short tests: the real binary, signals sent with kill(1), sd_notify
//! datagrams on a socket the test binds, the journal's priority prefixes on a stream it names.
//!
//! Timing is asserted from what the server saw and from the log, never from fixed sleeps; every
//! real-time wait is a poll with a generous bound, so a loaded machine slows the tests down
//! instead of failing them.

use std::cell::Cell;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use midwatch::cycle::Overrides;
use midwatch::service::{self, CannotStart, Event, STOP_GRACE};
use midwatch_sim::{Dataset, FakeInstance};
use tokio::io::AsyncReadExt;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

mod support;

use support::{PASSWORD, USER};

/// Upper bound of any single real-time wait; a healthy run takes a fraction of it.
const PATIENCE: Duration = Duration::from_secs(20);
/// Never fires while a test runs (unless it runs across midnight of New Year's Eve, UTC).
const YEARLY: &str = "0 0 0 1 1 *";

/// A config for `url`; `{state}` is filled in with a private state directory.
fn config(url: &str, schedule: &str, extra: &str) -> String {
    let instance = support::instance_section(url, "20s");
    format!(
        r#"{instance}
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

fn write_config_in(dir: &Path, config: &str) -> PathBuf {
    let path = dir.join("midwatch.toml");
    let state = dir.join("state");
    std::fs::write(&path, config.replace("{state}", &state.display().to_string())).expect("write config");
    path
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

// ---------------------------------------------------------------------------------------------
// The log, in process and from the binary

/// One line the service logged, and when by tokio's clock (the paused one where a test pauses it).
#[derive(Debug, Clone)]
struct Line {
    at: tokio::time::Instant,
    text: String,
}

#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<Line>>>);

impl Log {
    fn push(&self, text: &str) {
        let line = Line { at: tokio::time::Instant::now(), text: text.to_string() };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(line);
    }

    fn lines(&self) -> Vec<Line> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn texts(&self) -> Vec<String> {
        self.lines().into_iter().map(|l| l.text).collect()
    }

    fn dump(&self) -> String {
        self.texts().join("\n")
    }

    fn find(&self, pred: impl Fn(&str) -> bool) -> Option<Line> {
        self.lines().into_iter().find(|l| pred(&l.text))
    }

    fn has(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.find(pred).is_some()
    }

    /// The first line satisfying `pred`, which must be there.
    fn expect(&self, what: &str, pred: impl Fn(&str) -> bool) -> Line {
        self.find(pred).unwrap_or_else(|| panic!("no log line {what}; log:\n{}", self.dump()))
    }

    /// The first line satisfying `pred`, waiting for it in real time.
    async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> Line {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.find(&pred) {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line {what} within {PATIENCE:?}; log:\n{}", self.dump());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Collects what one event writes, as lines of the log.
struct LineWriter {
    log: Log,
    buf: Vec<u8>,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        for line in String::from_utf8_lossy(&self.buf).lines() {
            self.log.push(line);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { log: self.clone(), buf: Vec::new() }
    }
}

// ---------------------------------------------------------------------------------------------
// In process

/// `midwatch run` inside the test, on a config file of its own; the test sends the events.
struct InProcess {
    dir: tempfile::TempDir,
    config: PathBuf,
    log: Log,
    events: UnboundedSender<Event>,
    inbox: Cell<Option<UnboundedReceiver<Event>>>,
    // The service runs on the test's thread (the current-thread runtime), so a thread-local
    // subscriber sees all it logs and nothing of the tests running beside it.
    _capture: tracing::subscriber::DefaultGuard,
}

impl InProcess {
    /// Writes `config` and starts capturing the log; [`Self::run`] starts the service.
    fn new(config: &str) -> InProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config_in(dir.path(), config);
        let log = Log::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,midwatch::service=debug,tokio_cron_scheduler=warn",
            ))
            .with_ansi(false)
            .with_writer(log.clone())
            .finish();
        let capture = tracing::subscriber::set_default(subscriber);
        let (events, inbox) = unbounded();
        InProcess { dir, config: path, log, events, inbox: Cell::new(Some(inbox)), _capture: capture }
    }

    /// Runs the service until a [`Event::Stop`]; once.
    async fn run(&self) -> Result<(), CannotStart> {
        let inbox = self.inbox.take().expect("the service runs once");
        service::run(&self.config, Overrides::default(), inbox).await
    }

    fn send(&self, events: &[Event]) {
        for event in events {
            self.events.unbounded_send(*event).expect("the service reads its events");
        }
    }

    /// Replaces the config file (for a reload).
    fn rewrite_config(&self, config: &str) {
        write_config_in(self.dir.path(), config);
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Answers every Table API read with an empty result, those of table path `slow` after `delay`,
/// noting when each read arrived.
struct EmptyTables {
    slow: &'static str,
    delay: Duration,
    arrivals: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Respond for EmptyTables {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let table = request.url.path().to_string();
        let delay = if table == self.slow { self.delay } else { Duration::ZERO };
        self.arrivals.lock().unwrap_or_else(PoisonError::into_inner).push((table, Instant::now()));
        ResponseTemplate::new(200).set_body_raw(r#"{"result":[]}"#, "application/json;charset=UTF-8").set_delay(delay)
    }
}

const ECC_AGENT: &str = "/api/now/table/ecc_agent";

/// An instance with no data whose `ecc_agent` (MID Server) reads each take `delay`.
async fn slow_instance(delay: Duration) -> (MockServer, Arc<Mutex<Vec<(String, Instant)>>>) {
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path_regex("^/api/now/table/"))
        .respond_with(EmptyTables { slow: ECC_AGENT, delay, arrivals: Arc::clone(&arrivals) })
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

/// An "instance" that takes connections and reads requests but never answers.
struct SilentInstance {
    listener: tokio::net::TcpListener,
    /// Kept open: a closed connection would fail the cycle instead of leaving it waiting.
    connections: Vec<tokio::net::TcpStream>,
}

impl SilentInstance {
    async fn bind() -> SilentInstance {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        SilentInstance { listener, connections: Vec::new() }
    }

    fn url(&self) -> String {
        format!("http://{}", self.listener.local_addr().expect("local address"))
    }

    /// Waits in real time for the next Table API request, and leaves it unanswered.
    async fn next_request(&mut self) {
        let read = async {
            let (mut stream, _) = self.listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.expect("read the request");
                assert!(n > 0, "the client closed the connection");
                head.extend_from_slice(&buf[..n]);
            }
            self.connections.push(stream);
            head
        };
        let head = tokio::time::timeout(PATIENCE, read).await.expect("a request within PATIENCE");
        assert!(head.starts_with(b"GET /api/now/table/"), "{}", String::from_utf8_lossy(&head));
    }
}

/// The config of the grace-period tests, which pause tokio's clock once cycle 1 has a request on
/// the wire. A paused clock jumps to the next timer whenever the runtime only waits for I/O, so it
/// must not run while a connection is being opened (its connect timeout would fire): one request
/// at a time, and a request timeout well beyond [`STOP_GRACE`].
fn config_one_request_at_a_time(url: &str) -> String {
    config(url, YEARLY, "").replace("timeout = \"20s\"", "timeout = \"10m\"\nconcurrency = 1")
}

#[tokio::test]
async fn cycles_never_overlap_and_ticks_during_a_long_cycle_run_once() {
    // Every MID Server read takes 200 ms; four ticks come at once. Without a guard, cycles would
    // overlap (tokio-cron-scheduler starts a job again while it still runs) or run four times.
    let delay = Duration::from_millis(200);
    let (server, arrivals) = slow_instance(delay).await;
    let service = InProcess::new(&config(&server.uri(), YEARLY, ""));
    service.send(&[Event::Tick, Event::Tick, Event::Tick, Event::Tick]);
    let (stopped, ()) = tokio::join!(service.run(), async {
        service.log.wait_for("the summary of cycle 2", |l| is_summary(l, 2)).await;
        service.send(&[Event::Stop("SIGTERM")]);
    });
    stopped.expect("a clean stop");
    let log = &service.log;

    // The log: start 1, summary 1, start 2, summary 2, strictly in turn, and no third cycle.
    let order: Vec<String> = log
        .texts()
        .iter()
        .filter_map(|l| {
            (1..=3).find_map(|n| {
                if is_start(l, n) {
                    Some(format!("start {n}"))
                } else if is_summary(l, n) {
                    Some(format!("summary {n}"))
                } else {
                    None
                }
            })
        })
        .collect();
    assert_eq!(order, ["start 1", "summary 1", "start 2", "summary 2"], "log:\n{}", log.dump());

    // The three ticks that came during cycle 1 ran once, as cycle 2.
    let late = log.expect("on the coalesced ticks", |l| l.contains("scheduled start(s) passed while cycle"));
    assert!(
        late.text.contains(" WARN ") && late.text.contains("3 scheduled start(s) passed while cycle 1 ran"),
        "{late:?}"
    );

    // The instance: each cycle reads ecc_agent once, and the next read comes only after the last
    // one was answered.
    let reads = arrivals_at(&arrivals, ECC_AGENT);
    assert_eq!(reads.len(), 2, "two cycles for four ticks; log:\n{}", log.dump());
    let gap = reads[1] - reads[0];
    assert!(gap >= delay, "two cycles overlapped: reads {gap:?} apart, each takes {delay:?}");
}

#[tokio::test]
async fn a_stop_during_a_slow_cycle_lets_it_finish_and_returns_cleanly() {
    let delay = Duration::from_millis(300);
    let (server, arrivals) = slow_instance(delay).await;
    let service = InProcess::new(&config(&server.uri(), YEARLY, ""));
    // The stop comes while cycle 1 waits for the instance.
    service.send(&[Event::Tick, Event::Stop("SIGTERM")]);
    let stopped = tokio::time::timeout(Duration::from_secs(15), service.run()).await.expect("stopped within 15 s");
    stopped.expect("a clean stop");

    let log = &service.log;
    let stopping = log.expect("on the stop", |l| l.contains("SIGTERM received: stopping once cycle 1 finishes"));
    let summary = log.expect("the summary of cycle 1", |l| is_summary(l, 1));
    assert!(summary.at - stopping.at >= delay, "cycle 1 was not waited for; log:\n{}", log.dump());
    assert!(!log.has(|l| is_start(l, 2)), "a cycle started after the stop; log:\n{}", log.dump());
    let last = log.texts().last().cloned().unwrap_or_default();
    assert!(last.ends_with("midwatch stopped"), "log:\n{}", log.dump());
    assert_eq!(arrivals_at(&arrivals, ECC_AGENT).len(), 1);
}

#[tokio::test]
async fn a_cycle_still_running_after_the_grace_period_is_abandoned() {
    let mut instance = SilentInstance::bind().await;
    let service = InProcess::new(&config_one_request_at_a_time(&instance.url()));
    service.send(&[Event::Tick, Event::Stop("SIGTERM")]);
    let (stopped, ()) = tokio::join!(service.run(), async {
        instance.next_request().await;
        // Cycle 1 now waits for an answer that never comes: let the grace period pass at once.
        tokio::time::pause();
    });
    stopped.expect("a clean stop");

    let log = &service.log;
    let stopping = log.expect("on the stop", |l| l.contains("SIGTERM received: stopping once cycle 1 finishes"));
    let abandoned = log.expect("on the abandoned cycle", |l| l.contains("cycle 1 did not finish within 30 s"));
    assert!(abandoned.text.contains(" WARN ") && abandoned.text.contains("was abandoned"), "{abandoned:?}");
    let waited = abandoned.at - stopping.at;
    assert!(waited >= STOP_GRACE && waited < STOP_GRACE + Duration::from_secs(1), "waited {waited:?}");
    assert!(!log.has(|l| is_summary(l, 1)), "log:\n{}", log.dump());
    assert!(log.has(|l| l.ends_with("midwatch stopped")));
}

#[tokio::test]
async fn a_second_stop_a_second_later_drops_the_cycle_at_once_and_says_so() {
    let mut instance = SilentInstance::bind().await;
    let service = InProcess::new(&config_one_request_at_a_time(&instance.url()));
    service.send(&[Event::Tick, Event::Stop("SIGTERM")]);
    let (stopped, ()) = tokio::join!(service.run(), async {
        instance.next_request().await;
        tokio::time::pause();
        tokio::time::sleep(Duration::from_secs(1)).await;
        service.send(&[Event::Stop("SIGTERM")]);
    });
    stopped.expect("a clean stop");

    let log = &service.log;
    let stopping = log.expect("on the first stop", |l| l.contains("SIGTERM received: stopping once cycle 1"));
    let dropped = log.expect("on the second stop", |l| l.contains("SIGTERM received again"));
    assert!(dropped.text.contains("cycle 1 dropped unfinished, stopping at once"), "{dropped:?}");
    let waited = dropped.at - stopping.at;
    assert!(waited >= Duration::from_secs(1) && waited < STOP_GRACE, "dropped after {waited:?}");
    // The line the bug report quotes: 30 s had not passed.
    assert!(!log.has(|l| l.contains("did not finish within")), "log:\n{}", log.dump());
    assert!(log.has(|l| l.ends_with("midwatch stopped")));
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_each_cycle_by_a_draw_below_its_bound() {
    let instance = SilentInstance::bind().await;
    let jitter = Duration::from_secs(600);
    let text = config(&instance.url(), YEARLY, "").replace("write_issues", "jitter = \"10m\"\nwrite_issues");
    let service = InProcess::new(&text);
    service.send(&[Event::Tick]);
    let (stopped, ()) = tokio::join!(service.run(), async {
        // Longer than the jitter and what the start takes (the scheduler's own timers advance the
        // paused clock too).
        tokio::time::sleep(jitter + Duration::from_secs(60)).await;
        // Whatever cycle 1 is doing by now, a second stop ends it.
        service.send(&[Event::Stop("SIGTERM"), Event::Stop("SIGTERM")]);
    });
    stopped.expect("a clean stop");

    let log = &service.log;
    let waiting = log.expect("on the jitter", |l| l.contains("(jitter) before starting"));
    let drawn = waiting.text.split("waiting ").nth(1).and_then(|rest| rest.split(" (jitter)").next());
    let drawn = humantime::parse_duration(drawn.unwrap_or_default()).expect("the jitter drawn, as a duration");
    assert!(drawn < jitter, "drew {drawn:?}");
    let start = log.expect("cycle 1 starting", |l| is_start(l, 1));
    let waited = start.at - waiting.at;
    // tokio's timer counts in whole milliseconds.
    assert!(waited >= drawn && waited <= drawn + Duration::from_millis(2), "drew {drawn:?}, waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_the_jitter_wait_starts_no_cycle() {
    let instance = SilentInstance::bind().await;
    let text = config(&instance.url(), YEARLY, "").replace("write_issues", "jitter = \"1h\"\nwrite_issues");
    let service = InProcess::new(&text);
    service.send(&[Event::Tick, Event::Stop("SIGINT")]);
    let started = tokio::time::Instant::now();
    service.run().await.expect("a clean stop");

    let log = &service.log;
    assert!(log.has(|l| l.contains("(jitter) before starting")), "log:\n{}", log.dump());
    assert!(log.has(|l| l.contains("SIGINT received: stopping") && !l.contains("once cycle")), "log:\n{}", log.dump());
    assert!(!log.has(|l| is_start(l, 1)), "log:\n{}", log.dump());
    assert!(started.elapsed() < Duration::from_secs(60), "waited {:?}", started.elapsed());
    let listener = instance.listener.into_std().expect("the listener");
    let contacted = listener.accept();
    assert!(contacted.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "{contacted:?}");
}

#[tokio::test]
async fn a_reload_keeps_the_running_config_when_the_new_one_is_broken_and_applies_a_valid_one() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/now/table/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(r#"{"result":[]}"#, "application/json;charset=UTF-8"))
        .mount(&server)
        .await;
    let yearly = config(&server.uri(), YEARLY, "");
    let service = InProcess::new(&yearly);
    let (stopped, ()) = tokio::join!(service.run(), async {
        let log = &service.log;
        log.wait_for("started", is_started).await;

        service.rewrite_config(&yearly.replace("[check]", "[check]\nwindow = \"1m\"").replace("url = ", "url = 42 #"));
        service.send(&[Event::Reload]);
        let refused = log.wait_for("the refused reload", |l| l.contains("configuration not reloaded")).await.text;
        assert!(refused.contains(" ERROR "), "{refused}");
        assert!(refused.contains("keeping the running one"), "{refused}");

        service.rewrite_config(&yearly.replace(&format!("schedule = \"{YEARLY}\""), "schedule = \"*/5 * * *\""));
        service.send(&[Event::Reload]);
        let refused_again = log
            .wait_for("a second refused reload", |l| l.contains("configuration not reloaded") && l != refused)
            .await
            .text;
        assert!(refused_again.contains("needs 6 fields"), "{refused_again}");

        // The running config (default window 4h) still drives the cycles.
        service.send(&[Event::Tick]);
        log.wait_for("the summary of cycle 1", |l| is_summary(l, 1)).await;
        let start = log.expect("cycle 1 starting", |l| is_start(l, 1)).text;
        assert!(start.contains("window 4h ending"), "the broken config was applied: {start}");

        let valid = config(&server.uri(), "0 0 12 * * *", "").replace("[check]", "[check]\nwindow = \"10m\"");
        service.rewrite_config(&valid);
        service.send(&[Event::Reload]);
        log.wait_for("the reload", |l| {
            l.contains("configuration reloaded: schedule \"0 0 12 * * *\" (UTC), window 10m, jitter 0s")
        })
        .await;
        service.send(&[Event::Tick]);
        log.wait_for("the summary of cycle 2", |l| is_summary(l, 2)).await;
        let start = log.expect("cycle 2 starting", |l| is_start(l, 2)).text;
        assert!(start.contains("window 10m ending"), "the new config was not applied: {start}");
        service.send(&[Event::Stop("SIGINT")]);
    });
    stopped.expect("a clean stop");
}

#[tokio::test]
async fn each_cycle_rewrites_the_metrics_textfile() {
    let instance = FakeInstance::start(Dataset::demo(chrono::Utc::now()), USER, PASSWORD).await.expect("fake instance");
    let dir = tempfile::tempdir().expect("tempdir");
    let textfile = dir.path().join("midwatch.prom");
    let extra = format!("\n[metrics]\ntextfile = \"{}\"\n", textfile.display());
    let service = InProcess::new(&config(&instance.url(), YEARLY, &extra));
    let requests_200 = |text: &str| -> u64 {
        let prefix = "midwatch_api_requests_total{servicenow_instance=\"acme\",status=\"200\"} ";
        let line = text.lines().find_map(|l| l.strip_prefix(prefix));
        line.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
    };
    let (stopped, (first, second)) = tokio::join!(service.run(), async {
        service.send(&[Event::Tick]);
        service.log.wait_for("the summary of cycle 1", |l| is_summary(l, 1)).await;
        // Written right after the summary line, in the same step of the service.
        let first = std::fs::read_to_string(&textfile).expect("the textfile after cycle 1");
        service.send(&[Event::Tick]);
        service.log.wait_for("the summary of cycle 2", |l| is_summary(l, 2)).await;
        let second = std::fs::read_to_string(&textfile).expect("the textfile after cycle 2");
        service.send(&[Event::Stop("SIGTERM")]);
        (first, second)
    });
    stopped.expect("a clean stop");

    for expected in [
        "midwatch_cycle_status{servicenow_instance=\"acme\"} 2",
        "midwatch_findings{servicenow_instance=\"acme\",category=\"authentication\"} ",
        "midwatch_findings{servicenow_instance=\"acme\",category=\"configuration\"} ",
        "midwatch_api_requests_total{servicenow_instance=\"acme\",status=\"200\"} ",
        "midwatch_last_success_timestamp_seconds{servicenow_instance=\"acme\"} ",
        "midwatch_cycle_duration_seconds{servicenow_instance=\"acme\"} ",
    ] {
        assert!(first.lines().any(|l| l.starts_with(expected)), "no {expected:?} in\n{first}");
    }
    assert!(!first.contains("category=\"authentication\"} 0"), "the demo has authentication findings:\n{first}");
    assert_eq!(requests_200(&second), 2 * requests_200(&first), "cycle 2 did not rewrite the textfile:\n{second}");
    assert!(service.dir().join("state").is_dir(), "the state directory was created");
    assert!(!service.log.dump().contains(PASSWORD), "the password was logged");
}

#[tokio::test]
async fn an_invalid_config_fails_the_start_and_names_the_key() {
    let service = InProcess::new(&config("http://127.0.0.1:9", "every four hours", ""));
    let CannotStart(reason) = service.run().await.expect_err("cannot start");
    assert!(reason.contains("[check] schedule"), "{reason}");
    let line = service.log.expect("on the failed start", |l| l.contains("cannot start"));
    assert!(line.text.contains(" ERROR ") && line.text.contains("[check] schedule"), "{line:?}");
    assert!(!service.log.has(is_started), "log:\n{}", service.log.dump());
}

// ---------------------------------------------------------------------------------------------
// The binary, as systemd runs it

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

// ---------------------------------------------------------------------------------------------
// The service's keys

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
