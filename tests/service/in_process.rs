//! In process: [`service::run`] with a channel of [`Event`]s that the test sends, ticks included,
//! and a log captured per test. Where a test measures the stop grace period or the jitter, tokio's
//! clock is paused and those waits pass at once.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use midwatch::cycle::Overrides;
use midwatch::service::{self, CannotStart, Event, STOP_GRACE};
use midwatch_sim::{Dataset, FakeInstance};
use tokio::io::AsyncReadExt;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::log::Log;
use crate::support::{PASSWORD, USER};
use crate::{PATIENCE, YEARLY, config, is_start, is_started, is_summary, write_config_in};

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

#[tokio::test]
async fn a_refused_password_costs_one_request_per_cycle_and_is_tried_again_next_cycle() {
    let instance = FakeInstance::start(Dataset::demo(chrono::Utc::now()), USER, "the-right-password")
        .await
        .expect("fake instance");
    let service = InProcess::new(&config(&instance.url(), YEARLY, ""));
    let failed = |n: u64| move |l: &str| l.contains(&format!("cycle{{n={n}}}")) && l.contains("cycle failed");
    let (stopped, (line, after_first, after_second)) = tokio::join!(service.run(), async {
        service.send(&[Event::Tick]);
        let line = service.log.wait_for("cycle 1 failing", failed(1)).await;
        let after_first = instance.requests().len();
        service.send(&[Event::Tick]);
        service.log.wait_for("cycle 2 failing", failed(2)).await;
        let after_second = instance.requests().len();
        service.send(&[Event::Stop("SIGTERM")]);
        (line, after_first, after_second)
    });
    stopped.expect("a clean stop");
    assert_eq!((after_first, after_second), (1, 2), "one refused login per cycle, none more");
    assert!(instance.requests().iter().all(|r| r.status == 401));
    assert!(line.text.contains("refused the credentials") && line.text.contains(&format!("user {USER}")), "{line:?}");
    assert!(line.text.contains("[instance] password (inline)"), "where the password came from: {line:?}");
    assert!(!service.log.dump().contains(PASSWORD), "the password was logged");
}

#[tokio::test]
async fn a_failed_cycle_raises_midwatch_check_failed_and_the_next_completed_cycle_clears_it() {
    let refusing = FakeInstance::start(Dataset::demo(chrono::Utc::now()), USER, "the-right-password")
        .await
        .expect("fake instance");
    let answering =
        FakeInstance::start(Dataset::demo(chrono::Utc::now()), USER, PASSWORD).await.expect("fake instance");
    let peer = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/api/v2/alerts"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&peer)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let textfile = dir.path().join("midwatch.prom");
    let extra =
        format!("\n[metrics]\ntextfile = \"{}\"\n\n[alertmanager]\nurls = [\"{}\"]\n", textfile.display(), peer.uri());
    let service = InProcess::new(&config(&refusing.url(), YEARLY, &extra));
    let (stopped, after_failure) = tokio::join!(service.run(), async {
        service.send(&[Event::Tick]);
        service.log.wait_for("cycle 1 failing", |l| l.contains("cycle{n=1}") && l.contains("cycle failed")).await;
        service.log.wait_for("the textfile after cycle 1", |_| textfile.exists()).await;
        let after_failure = std::fs::read_to_string(&textfile).expect("the textfile after cycle 1");
        service.rewrite_config(&config(&answering.url(), YEARLY, &extra));
        service.send(&[Event::Reload, Event::Tick]);
        service.log.wait_for("the summary of cycle 2", |l| is_summary(l, 2)).await;
        service.send(&[Event::Stop("SIGTERM")]);
        after_failure
    });
    stopped.expect("a clean stop");

    let posts: Vec<Vec<serde_json::Value>> = peer
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON list of alerts"))
        .collect();
    assert_eq!(posts.len(), 2, "one post per cycle");
    let failure = &posts[0][..];
    assert_eq!(failure.len(), 1);
    assert_eq!(failure[0]["labels"]["alertname"], "MidwatchCheckFailed");
    let summary = failure[0]["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("MIDWATCH UNKNOWN - ") && summary.ends_with(" on acme"), "{summary}");
    let ends =
        |a: &serde_json::Value| a["endsAt"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
    let now = chrono::Utc::now();
    assert!(ends(&failure[0]).is_some_and(|t| t > now + chrono::Duration::days(700)), "three yearly intervals ahead");
    let cleared = posts[1].iter().find(|a| a["labels"]["alertname"] == "MidwatchCheckFailed").expect("cleared");
    assert!(ends(cleared).is_some_and(|t| t <= now), "resolved: endsAt = now, {cleared}");
    assert!(posts[1].len() > 1, "the findings fire beside it");
    let sent = format!("midwatch_alerts_sent_total{{servicenow_instance=\"acme\",url=\"{}/\"}} 1", peer.uri());
    assert!(after_failure.lines().any(|l| l == sent), "no {sent:?} in\n{after_failure}");
    assert!(after_failure.contains("midwatch_cycle_status{servicenow_instance=\"acme\"} 3"), "{after_failure}");
}
