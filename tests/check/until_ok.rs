//! `check --until-ok` against the stateful simulated instance, its rounds started by injected ticks (no
//! sleep): it ends clear on the round after the user logs in, ends with the failing status when the
//! timeout passes, ends on Ctrl-C writing nothing, and reads only the new events after the first round. Its
//! round lines name each user's category, and the date of a time before the instance's day; several users
//! get a heading and a line each.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::domain::{Scope, Status, WatchEnd, Watched};
use midwatch::watch::{Ticks, Wake, watch};
use midwatch::writeback::WriteBack;
use midwatch_sim::query::field_string as text;
use midwatch_sim::{Dataset, FakeInstance};
use serde_json::Value;

use crate::selection::{binary, live_demo, queries_at, table_queries, users};
use crate::support::*;

/// What the instance does before a round.
type Step = fn(&FakeInstance, DateTime<Utc>);

/// The watched instance, and what happens in it before each round.
struct Script<'a> {
    instance: &'a FakeInstance,
    /// Per tick: what the instance does before it, and what the tick says.
    steps: VecDeque<(Step, Wake)>,
    /// How far this host's clock is ahead of the instance's (zero: they agree).
    host_ahead: chrono::Duration,
}

impl Ticks for Script<'_> {
    async fn next(&mut self) -> Wake {
        let Some((step, wake)) = self.steps.pop_front() else { return Wake::TimedOut };
        if let Wake::Round(at) = wake {
            // The simulated instance's clock follows the rounds.
            self.instance.set_clock(at);
            step(self.instance, at);
            return Wake::Round(at + self.host_ahead);
        }
        wake
    }
}

fn nothing(_: &FakeInstance, _: DateTime<Utc>) {}

/// midserver2 is unlocked and its MID Server logs in 30 seconds before the round (the demo's own fix).
fn fixed(instance: &FakeInstance, at: DateTime<Utc>) {
    instance.edit(|tables| midwatch_sim::edits::fix_midserver2(tables, at - chrono::Duration::seconds(30)));
}

fn at(seconds: i64) -> DateTime<Utc> {
    reference_now() + chrono::Duration::seconds(seconds)
}

/// The demo's instance with midserver2's MID Server failing to log in a minute before the first round.
async fn instance() -> FakeInstance {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    let failed = "e7e700000000000000000000000000ff";
    let event = midwatch_sim::edits::SyseventRow {
        sys_id: failed,
        name: "login.failed",
        user: "midserver2",
        parm2: "10.0.0.9",
        at: at(-60),
    };
    instance.edit(|t| midwatch_sim::edits::record_login_event(t, &event));
    instance
}

fn midserver2() -> Scope {
    users(&["midserver2"])
}

/// A watch's outcome, and what the watch did.
struct Watching {
    outcome: Outcome,
    watch: Option<Watched>,
}

impl std::ops::Deref for Watching {
    type Target = Outcome;

    fn deref(&self) -> &Outcome {
        &self.outcome
    }
}

impl Watching {
    fn render(&self, format: midwatch::present::Format, detail: midwatch::present::Detail) -> String {
        self.outcome.view(self.watch.as_ref()).render(format, detail)
    }
}

/// Runs a watch of midserver2 (window 5m) with `steps`; returns its outcome and the lines it said.
async fn run(instance: &FakeInstance, steps: Vec<(Step, Wake)>) -> (Watching, Vec<String>) {
    run_on_host(instance, steps, chrono::Duration::zero()).await
}

/// [`run`] on a host whose clock is `host_ahead` ahead of the instance's (each tick says the host's time).
async fn run_on_host(
    instance: &FakeInstance,
    steps: Vec<(Step, Wake)>,
    host_ahead: chrono::Duration,
) -> (Watching, Vec<String>) {
    let mut script = Script { instance, steps: steps.into(), host_ahead };
    watch_of(instance, midserver2(), &mut script, reference_now() + host_ahead).await
}

/// A watch of `scope` (window 5m) whose first round starts at `first` by this host's clock, the others as
/// `script` says.
async fn watch_of(
    instance: &FakeInstance,
    scope: Scope,
    script: &mut Script<'_>,
    first: DateTime<Utc>,
) -> (Watching, Vec<String>) {
    let config = config_for(&instance.url());
    let client = client(&config);
    let mut opts = CheckOptions::from_config(&config);
    opts.scope = scope;
    opts.window = Duration::from_secs(300);
    let mut said = Vec::new();
    let mut say = |line: &str| said.push(line.to_string());
    let cycle = Cycle::new(&config, &client, &opts);
    let (outcome, watched) = watch(cycle, Duration::from_secs(60), first, script, &mut say).await.expect("watch");
    (Watching { outcome, watch: Some(watched) }, said)
}

/// A normal check of midserver2 at `now`, with its side effects (its record written).
async fn check_midserver2(instance: &FakeInstance, now: DateTime<Utc>) {
    let config = config_for(&instance.url());
    let mut opts = CheckOptions::from_config(&config);
    opts.scope = midserver2();
    Cycle::new(&config, &client(&config), &opts).check(now).await.expect("first check");
}

fn midserver2_records(instance: &FakeInstance) -> Vec<(String, String)> {
    instance
        .rows("ecc_agent_issue")
        .iter()
        .filter(|r| text(r, "source") == "midwatch")
        .map(|r| (text(r, "state"), text(r, "count")))
        .collect()
}

#[tokio::test]
async fn the_watch_ends_clear_on_the_round_after_the_user_logs_in_and_resolves_its_record() {
    let instance = instance().await;
    // A normal check has recorded midserver2's failure (and everyone else's).
    check_midserver2(&instance, at(-300)).await;
    assert_eq!(midserver2_records(&instance), [("new".to_string(), "1".to_string())]);

    let steps =
        vec![(nothing as Step, Wake::Round(at(60))), (fixed, Wake::Round(at(120))), (nothing, Wake::Round(at(180)))];
    let (outcome, said) = run(&instance, steps).await;
    assert_eq!(said.len(), 3, "one line per round, and no round after the clear one: {said:?}");
    assert_eq!(
        said[0],
        "midserver2: login.failed at 11:59:00 UTC from 10.0.0.9, still failing: authentication (mid-london-01 down)"
    );
    assert_eq!(said[1], said[0], "nothing new in the second round");
    assert_eq!(said[2], "midserver2: login at 12:01:30 UTC from 10.20.30.41, clear");
    assert_eq!(outcome.report.status, Status::Ok);
    let watched = outcome.watch.as_ref().expect("a watch");
    assert_eq!((watched.ended, watched.rounds), (WatchEnd::Clear, 3));
    // The clear round's side effects are a normal check's: midserver2's record is resolved, no other touched.
    let WriteBack::Applied { applied, .. } = &outcome.write_back else { panic!("{:?}", outcome.write_back) };
    assert_eq!((applied.created.len(), applied.counted.len(), applied.resolved.len()), (0, 0, 1));
    assert_eq!(midserver2_records(&instance), [("resolved".to_string(), "1".to_string())]);
    let text = outcome.render(midwatch::present::Format::Text, midwatch::present::Detail::Detailed);
    assert!(text.starts_with("MIDWATCH OK - no findings for midserver2 on acme"), "{text}");
    assert!(text.contains("Watch: 3 rounds since 12:00:00 UTC, every 1m; every watched user is clear"), "{text}");
}

#[tokio::test]
async fn a_watch_on_a_host_whose_clock_is_seven_minutes_off_goes_by_the_instance_time() {
    for host_ahead in [chrono::Duration::seconds(422), chrono::Duration::seconds(-422)] {
        let instance = instance().await;
        instance.reset_counters();
        let steps = vec![(nothing as Step, Wake::Round(at(60))), (fixed, Wake::Round(at(120)))];
        let (outcome, said) = run_on_host(&instance, steps, host_ahead).await;
        // The rounds and their reads are those of a host whose clock agrees.
        assert_eq!(
            said[0],
            "midserver2: login.failed at 11:59:00 UTC from 10.0.0.9, still failing: authentication (mid-london-01 down)"
        );
        assert_eq!(said[2], "midserver2: login at 12:01:30 UTC from 10.20.30.41, clear", "{host_ahead}: {said:?}");
        let fmt = midwatch::domain::sn_time::format;
        let first = fmt(reference_now() - chrono::Duration::seconds(360));
        let expected: BTreeSet<String> = [first, fmt(reference_now()), fmt(at(60))].into_iter().collect();
        assert_eq!(event_lower_bounds(&instance).into_iter().collect::<BTreeSet<_>>(), expected);
        assert_eq!(outcome.report.status, Status::Ok);
        // Its report says when it started by the instance's clock, and the difference once.
        let text = outcome.render(midwatch::present::Format::Text, midwatch::present::Detail::Detailed);
        assert!(text.contains("Watch: 3 rounds since 12:00:00 UTC"), "{text}");
        let side = if host_ahead > chrono::Duration::zero() { "ahead of" } else { "behind" };
        assert_eq!(text.matches(&format!("this host's clock is 7m 2s {side} the instance's")).count(), 1, "{text}");
    }
}

#[tokio::test]
async fn later_rounds_read_only_the_events_after_the_previous_round() {
    let instance = instance().await;
    let steps =
        vec![(nothing as Step, Wake::Round(at(60))), (nothing, Wake::Round(at(120))), (nothing, Wake::TimedOut)];
    instance.reset_counters();
    let (outcome, _) = run(&instance, steps).await;
    assert_eq!(outcome.watch.as_ref().map(|w| (w.ended, w.rounds)), Some((WatchEnd::TimedOut, 3)));

    // Every sysevent read has a lower bound on sys_created_on: the first round's window start, then the
    // previous round's end.
    let bounds = event_lower_bounds(&instance);
    let fmt = midwatch::domain::sn_time::format;
    let first = fmt(reference_now() - chrono::Duration::seconds(360));
    let expected: BTreeSet<String> = [first, fmt(reference_now()), fmt(at(60))].into_iter().collect();
    let seen: BTreeSet<String> = bounds.iter().cloned().collect();
    assert_eq!(seen, expected, "the lower bounds of the sysevent reads");
    // And later rounds' reads of the login history are bounded the same way.
    let history = table_queries(&instance, "sys_user_login_history").join("\n");
    assert!(history.contains(&format!("sys_created_on>{}", fmt(at(60)))), "{history}");
}

/// The `sys_created_on>` (or `=`, a read of one second) bounds of every `sysevent` read, direct, through
/// the Aggregate API or inside a Batch API call.
fn event_lower_bounds(instance: &FakeInstance) -> Vec<String> {
    let mut out = Vec::new();
    let queries: Vec<String> =
        ["/api/now/table/sysevent", "/api/now/stats/sysevent"].iter().flat_map(|p| queries_at(instance, p)).collect();
    assert!(!queries.is_empty());
    for q in queries {
        for part in q.split("^NQ") {
            let bound = part.split('^').find_map(|c| c.strip_prefix("sys_created_on>").map(str::to_string));
            match bound {
                Some(b) => out.push(b),
                // A read of one exact second must be inside a window already bounded.
                None => assert!(part.contains("sys_created_on="), "an unbounded sysevent read: {part}"),
            }
        }
    }
    out
}

#[tokio::test]
async fn the_watch_ends_with_the_failing_status_when_the_timeout_passes_and_writes_nothing_for_a_failing_user() {
    let instance = instance().await;
    let steps = vec![(nothing as Step, Wake::Round(at(60))), (nothing, Wake::TimedOut)];
    let (outcome, said) = run(&instance, steps).await;
    assert_eq!(said.len(), 2);
    assert_eq!(outcome.report.status, Status::Critical);
    assert_eq!(outcome.watch.as_ref().map(|w| (w.ended, w.rounds)), Some((WatchEnd::TimedOut, 2)));
    // A watch's short window creates and counts nothing: the next full check judges the configured window.
    assert!(midserver2_records(&instance).is_empty());
}

#[tokio::test]
async fn a_watch_that_times_out_after_the_mid_server_stopped_retrying_rewrites_no_record() {
    let instance = instance().await;
    // A normal check has recorded midserver2's authentication failure.
    check_midserver2(&instance, at(-30)).await;
    let authentication = |instance: &FakeInstance| -> Vec<(String, String, String)> {
        let rows = instance.rows("ecc_agent_issue");
        let ours = rows.iter().filter(|r| text(r, "source") == "midwatch");
        ours.map(|r| (text(r, "message"), text(r, "state"), text(r, "count"))).collect()
    };
    let recorded = authentication(&instance);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(recorded[0].0.starts_with("Login authentication failure for User midserver2"), "{recorded:?}");

    // Nothing is fixed and the MID Server stops retrying: six minutes on, its failure has left the watch's window.
    let steps =
        vec![(nothing as Step, Wake::Round(at(180))), (nothing, Wake::Round(at(400))), (nothing, Wake::TimedOut)];
    let (outcome, said) = run(&instance, steps).await;
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(said[1].ends_with("still failing: authentication (mid-london-01 down)"), "{said:?}");
    assert!(said[2].starts_with("midserver2: no login attempt since "), "{said:?}");
    assert!(said[2].ends_with("UTC, still failing: authentication \u{2192} network (mid-london-01 down)"), "{said:?}");
    assert_eq!(outcome.report.status, Status::Critical);
    assert_eq!(outcome.watch.as_ref().map(|w| w.ended), Some(WatchEnd::TimedOut));
    // The authentication record is neither resolved nor joined by a network record, and no email goes out.
    let WriteBack::Applied { applied, .. } = &outcome.write_back else { panic!("{:?}", outcome.write_back) };
    assert_eq!((applied.created.len(), applied.counted.len(), applied.resolved.len()), (0, 0, 0));
    assert_eq!(authentication(&instance), recorded, "the full check's record stays as it was");
    assert!(outcome.email().is_none());
}

#[tokio::test]
async fn ctrl_c_ends_the_watch_with_the_last_status_and_writes_nothing() {
    let instance = instance().await;
    let steps = vec![(nothing as Step, Wake::Round(at(60))), (nothing, Wake::Interrupted)];
    let (outcome, _) = run(&instance, steps).await;
    assert_eq!(outcome.report.status, Status::Critical);
    assert_eq!(outcome.watch.as_ref().map(|w| w.ended), Some(WatchEnd::Interrupted));
    assert!(matches!(outcome.write_back, WriteBack::Disabled), "{:?}", outcome.write_back);
    assert!(instance.requests().iter().all(|r| r.method == "GET" || r.path == "/api/now/v1/batch"));
    assert!(midserver2_records(&instance).is_empty());
}

#[tokio::test]
async fn the_binary_ends_at_once_for_a_clear_user_with_one_json_document_on_stdout() {
    let (_instance, _dir, config) = live_demo().await;
    // mid.frankfurt's MID Server went down a minute ago, less than [check] down_for: not judged, so clear.
    let (code, out, err) =
        binary(&["check", "--config", &config, "--user", "mid.frankfurt", "--until-ok", "--format", "json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    assert_eq!(doc["watch"]["ended"], "clear", "{doc}");
    assert_eq!(doc["watch"]["rounds"], 1);
    assert!(err.lines().any(|l| l.starts_with("mid.frankfurt: ") && l.ends_with(", clear")), "{err}");
    // The rounds' window is the heartbeat's: 5 minutes.
    assert_eq!(doc["window"]["length"], "5m", "{doc}");
}

#[tokio::test]
async fn the_demo_shows_the_loop_ending_clear_on_the_round_after_the_fix() {
    let (code, out, err) = binary(&["demo", "--until-ok"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let rounds: Vec<&str> = out.lines().take_while(|l| !l.starts_with("MIDWATCH")).collect();
    assert_eq!(rounds.len(), 3, "{out}");
    assert!(
        rounds[..2].iter().all(|l| l.starts_with("midserver2: login.failed at ")
            && l.ends_with("still failing: authentication (mid-london-01 down)")),
        "{out}"
    );
    assert!(rounds[2].starts_with("midserver2: login at ") && rounds[2].ends_with(", clear"), "{out}");
    assert!(out.contains("MIDWATCH OK - no findings for midserver2 on demo"), "{out}");
    assert!(out.contains("resolved  fa4e"), "{out}");
    assert!(out.contains("Watch: 3 rounds since "), "{out}");
}

#[tokio::test]
async fn a_real_sigint_ends_the_binary_s_watch_with_the_last_status() {
    let (instance, _dir, config) = live_demo().await;
    let watched = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead as _, Read as _};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_midwatch"))
            .args(["check", "--config", &config, "--user", "midserver2", "--until-ok"])
            .args(["--every", "10s", "--detail", "summary"])
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn midwatch");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("the first round's line");
        // The first round is said: interrupt the wait for the second.
        let killed = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        assert!(killed.is_ok_and(|s| s.success()));
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).expect("the report");
        (child.wait().expect("wait").code(), first, rest)
    })
    .await
    .expect("join");
    let (code, first, rest) = watched;
    assert_eq!(code, Some(2), "{first}{rest}");
    assert!(first.starts_with("midserver2: ") && first.contains("still failing"), "{first}");
    assert!(rest.starts_with("MIDWATCH CRITICAL - 1 finding (1 network) for midserver2"), "{rest}");
    assert!(rest.contains("interrupted: nothing was written to ecc_agent_issue"), "{rest}");
    assert!(instance.requests().iter().all(|r| r.method == "GET" || r.path == "/api/now/v1/batch"));
}

#[test]
fn every_without_until_ok_or_out_of_range_is_a_usage_error() {
    for args in [
        &["check", "--every", "30s"][..],
        &["check", "--until-ok", "--every", "5s"],
        &["check", "--until-ok", "--every", "2h"],
    ] {
        let (code, out, err) = run_binary(args);
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: a usage error prints nothing on stdout: {out}");
    }
}

/// The instance refuses the next read of the roles, as an ACL change would.
fn refuse_once(instance: &FakeInstance, _: DateTime<Utc>) {
    let body = r#"{"error":{"message":"Operation Failed","detail":"ACL Exception Insert Failed due to security constraints"},"status":"failure"}"#;
    instance.inject(midwatch_sim::Fault::Respond {
        table: "sys_user_role".into(),
        status: 403,
        body: body.into(),
        headers: Vec::new(),
    });
}

#[tokio::test]
async fn a_round_that_cannot_read_the_instance_is_said_and_the_next_one_tries_again() {
    let instance = instance().await;
    let steps =
        vec![(refuse_once as Step, Wake::Round(at(60))), (nothing, Wake::Round(at(120))), (nothing, Wake::TimedOut)];
    let (outcome, said) = run(&instance, steps).await;
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(said[1].starts_with("round 2: ") && said[1].ends_with("; trying again at the next round"), "{said:?}");
    assert!(
        said[1].contains("403") || said[1].to_lowercase().contains("forbidden") || said[1].contains("ACL"),
        "{said:?}"
    );
    assert_eq!(said[2], said[0], "the third round reads again, from the first round's end");
    assert_eq!(outcome.watch.as_ref().map(|w| (w.ended, w.rounds)), Some((WatchEnd::TimedOut, 3)));
    assert_eq!(outcome.report.status, Status::Critical);
}

#[tokio::test]
async fn a_watch_of_several_users_says_a_heading_and_one_line_per_user_naming_its_category() {
    let instance = instance().await;
    let steps = vec![(fixed as Step, Wake::Round(at(60))), (nothing, Wake::TimedOut)];
    let mut script = Script { instance: &instance, steps: steps.into(), host_ahead: chrono::Duration::zero() };
    let (outcome, said) = watch_of(&instance, Scope::All, &mut script, reference_now()).await;
    assert_eq!(said.len(), 12, "a heading and five users, twice: {said:#?}");
    assert_eq!(said[0], "round 1 at 12:00:00 UTC: 5 of 5 watched users still have a finding");
    assert_eq!(
        said[1],
        "  ardis.maison     no login attempt since 11:54:00 UTC, still flagged: configuration (on no MID Server)",
        "a configuration finding is not a failing login"
    );
    assert_eq!(
        said[2],
        "  local-midserver  no login attempt since 11:54:00 UTC, still failing: network (mid-sydney-01, mid-sydney-02 \
         down)"
    );
    assert_eq!(
        said[5],
        "  midserver2       login.failed at 11:59:00 UTC from 10.0.0.9, still failing: authentication (mid-london-01 \
         down)"
    );
    assert_eq!(said[6], "round 2 at 12:01:00 UTC: 4 of 5 watched users still have a finding");
    assert_eq!(said[11], "  midserver2       login at 12:00:30 UTC from 10.20.30.41, clear");
    assert!(said.iter().all(|l| l.chars().count() < 120), "{said:#?}");
    // The report keeps the lines as printed.
    assert_eq!(outcome.watch.as_ref().map(|w| w.rounds), Some(2));
    let doc: Value = serde_json::from_str(&outcome.render(midwatch::present::Format::Json, Default::default()))
        .expect("one JSON document");
    assert_eq!(doc["watch"]["lines"].as_array().map(Vec::len), Some(12), "{doc}");
}

#[tokio::test]
async fn a_round_line_gives_the_date_of_a_time_before_the_instance_s_day() {
    // Two minutes after midnight by the instance's clock; midserver2's MID Server failed a minute before it.
    let midnight = reference_now() + chrono::Duration::hours(12);
    let instance = FakeInstance::start(Dataset::demo(midnight), USER, PASSWORD).await.expect("start");
    let now = midnight + chrono::Duration::minutes(2);
    instance.set_clock(now);
    let event = midwatch_sim::edits::SyseventRow {
        sys_id: "e7e700000000000000000000000000fe",
        name: "login.failed",
        user: "midserver2",
        parm2: "10.0.0.9",
        at: midnight - chrono::Duration::seconds(30),
    };
    instance.edit(|t| midwatch_sim::edits::record_login_event(t, &event));
    let mut script = Script { instance: &instance, steps: VecDeque::new(), host_ahead: chrono::Duration::zero() };
    let (_, said) = watch_of(&instance, midserver2(), &mut script, now).await;
    assert_eq!(
        said,
        ["midserver2: login.failed at 2026-11-22 23:59:30 UTC from 10.0.0.9, still failing: authentication \
          (mid-london-01 down)"]
    );
}

/// mid.healthy's MID Server logs in 30 seconds before the round: the client with the old password was fixed.
fn healthy_logs_in(instance: &FakeInstance, at: DateTime<Utc>) {
    let event = midwatch_sim::edits::SyseventRow {
        sys_id: "e7e700000000000000000000000000fe",
        name: "login",
        user: "mid.healthy",
        parm2: "10.20.40.12",
        at: at - chrono::Duration::seconds(30),
    };
    instance.edit(|t| midwatch_sim::edits::record_login_event(t, &event));
}

#[tokio::test]
async fn a_watch_of_a_user_with_an_early_warning_goes_on_until_the_warning_is_gone() {
    let instance = instance().await;
    let steps: Vec<(Step, Wake)> = vec![(healthy_logs_in, Wake::Round(at(60)))];
    let mut script = Script { instance: &instance, steps: steps.into(), host_ahead: chrono::Duration::zero() };
    let (outcome, said) = watch_of(&instance, users(&["mid.healthy"]), &mut script, reference_now()).await;
    assert_eq!(said.len(), 2, "{said:#?}");
    assert_eq!(
        said[0],
        "mid.healthy: login.failed at 11:56:40 UTC from 10.20.99.14, still warned: failing_on_up_mid (Up: \
         mid-healthy-01)"
    );
    assert_eq!(said[1], "mid.healthy: login at 12:00:30 UTC from 10.20.40.12, clear");
    assert_eq!(outcome.watch.as_ref().map(|w| w.ended), Some(WatchEnd::Clear));
    assert_eq!(outcome.report.status, Status::Ok);
}
