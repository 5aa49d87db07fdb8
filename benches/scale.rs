//! What one `check` costs on a large instance, at 500,000 and 5,000,000 `sysevent` rows.
//!
//! This process generates the instance (2,000 MID Servers, 300 down, 3,000 `mid_server` users, 881 to
//! check) and serves it on loopback with a latency model of a real instance behind a load balancer: 20 ms per request, 1 µs per row
//! returned (or counted by the Aggregate API), 5 ms of server time per Batch API sub-request, served one
//! after another. Each run is `target/release/midwatch check` as a child process, so that its peak RSS
//! (`VmHWM`, polled) is midwatch's alone; requests, rows and bytes are counted by the instance (response
//! bodies as sent, gzip-compressed when asked for). Three instance capabilities are measured on the same
//! data: the Aggregate API with MAX of a date-time, without it, and no Aggregate API at all (midwatch
//! then reads every login event of the checked users, folded page by page).
//!
//! Each run's phases (roles and MID Servers, counts, latest events, history, writes, email) are printed with
//! their requests, rows, bytes and wall time, as the instance and the SMTP server saw them.
//!
//! Run with `cargo bench --bench scale` (both sizes), or `cargo bench --bench scale -- 500000` for one.
//! With `MIDWATCH_BASELINE=<path to another midwatch binary>` (say, one built from an older commit), that binary is measured too on the same instance, and its findings compared.
//! Needs Linux (`/proc`). Exits non-zero when a run's findings differ from the others' or from what the
//! generator planted.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use midwatch_sim::generate::{Scenario, generate};
use midwatch_sim::smtp::SmtpSink;
use midwatch_sim::{AggregateSupport, CostModel, FakeInstance, RecordedRequest, Tally};
use serde_json::Value;

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

/// Measurements of a PySNC script asking for each user's latest event, on this instance shape (not re-run here: PySNC needs the network).
const SCRIPT: &[(usize, u64, f64, f64, u64)] =
    &[(500_000, 2_472, 1.19e6, 60.8, 122), (5_000_000, 2_472, 1.19e6, 60.2, 122)];

struct Run {
    plan: String,
    tally: Tally,
    phases: Vec<Phase>,
    wall: Duration,
    peak_rss_kb: u64,
    exit: i32,
    findings: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.replace('_', "").parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![500_000, 5_000_000] } else { sizes };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    let mut all: Vec<(usize, Vec<Run>)> = Vec::new();
    for n in sizes {
        let (runs, same) = runtime.block_on(measure(n));
        ok &= same;
        all.push((n, runs));
    }
    print_summary(&all);
    if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}

async fn measure(n: usize) -> (Vec<Run>, bool) {
    let end = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap_or_else(|_| Utc::now());
    let started = Instant::now();
    let generated = generate(&Scenario::large(n, end));
    println!(
        "\n== {n} sysevent rows: generated in {:.1} s ({} rows; {} users to check, {} findings planted, {} login \
         events of checked users in the window)",
        started.elapsed().as_secs_f64(),
        generated.dataset.events.len(),
        generated.checked_users,
        generated.expected_findings,
        generated.checked_login_events
    );
    let instance = match FakeInstance::start(generated.dataset, USER, PASSWORD).await {
        Ok(i) => i,
        Err(e) => panic!("cannot start the simulated instance: {e}"),
    };
    instance.set_cost(CostModel {
        per_request: Duration::from_millis(20),
        per_row: Duration::from_micros(1),
        per_batch_item: Duration::from_millis(5),
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let smtp = match SmtpSink::start(None).await {
        Ok(s) => s,
        Err(e) => panic!("cannot start the SMTP sink: {e}"),
    };

    let ours = env!("CARGO_BIN_EXE_midwatch").to_string();
    let mut plans = vec![
        ("MAX".to_string(), AggregateSupport::Full, ours.clone(), None, true),
        ("no MAX".to_string(), AggregateSupport::NoDateMax, ours.clone(), None, true),
        ("no Aggregate API".to_string(), AggregateSupport::Unavailable, ours.clone(), None, true),
        ("MAX, --no-write".to_string(), AggregateSupport::Full, ours.clone(), Some("--no-write"), true),
        // What the early warnings (the users of Up MID Servers) cost: the same check without them.
        ("MAX, no early warn.".to_string(), AggregateSupport::Full, ours, None, false),
    ];
    if let Ok(baseline) = std::env::var("MIDWATCH_BASELINE") {
        plans.push(("baseline binary".to_string(), AggregateSupport::Full, baseline, None, true));
    }
    let mut runs = Vec::new();
    for (i, (plan, support, binary, extra, early_warnings)) in plans.into_iter().enumerate() {
        // A state directory of its own: every run's email is its first.
        let at = dir.path().join(i.to_string());
        let config = write_config(&at, &instance.url(), smtp.port(), early_warnings);
        let mails_before = smtp.messages().len();
        instance.set_aggregate(support);
        instance.edit(|t| {
            if let Some(issues) = t.get_mut("ecc_agent_issue") {
                issues.clear();
            }
        });
        instance.reset_counters();
        let config = config.clone();
        let child = tokio::task::spawn_blocking(move || run_check(&binary, &config, extra)).await;
        let Ok((started, wall, peak_rss_kb, exit, stdout)) = child else { panic!("the check runner panicked") };
        let mails = smtp.messages().split_off(mails_before);
        let phases = phases(started, &instance.requests(), &mails);
        runs.push(Run { plan, tally: instance.tally(), phases, wall, peak_rss_kb, exit, findings: findings(&stdout) });
    }
    print_runs(n, &runs);
    let first = &runs[0].findings;
    let same = runs.iter().all(|r| r.findings == *first) && first.len() == generated.expected_findings;
    println!(
        "findings: {} per plan; identical across plans: {}; equal to the planted {}: {}",
        first.len(),
        runs.iter().all(|r| r.findings == *first),
        generated.expected_findings,
        first.len() == generated.expected_findings
    );
    (runs, same)
}

/// The check's config; `early_warnings = false` when not `early_warnings` (a baseline binary may not know the key).
fn write_config(dir: &Path, url: &str, smtp_port: u16, early_warnings: bool) -> std::path::PathBuf {
    let state = dir.join("state");
    let file = dir.join("midwatch.toml");
    let check = if early_warnings { "" } else { "[check]\nearly_warnings = false\n\n" };
    let text = format!(
        "[instance]\nurl = \"{url}\"\nname = \"bench\"\nuser = \"{USER}\"\npassword_file = \"{}\"\ntimeout = \"60s\"\n\n\
         {check}[state]\ndirectory = \"{}\"\n\n\
         [email]\nurl = \"smtp://127.0.0.1:{smtp_port}\"\ntls = \"none\"\nfrom = \"midwatch <midwatch@bench.example>\"\n\
         to = [\"mid-admins@bench.example\"]\n",
        dir.join("pw").display(),
        state.display()
    );
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join("pw"), format!("{PASSWORD}\n")))
        .and_then(|()| std::fs::write(&file, text));
    if let Err(e) = written {
        panic!("cannot write the config: {e}");
    }
    file
}

/// Runs `midwatch check` once; returns when it started, its wall time, peak RSS (kB), exit status and stdout.
fn run_check(binary: &str, config: &Path, extra: Option<&str>) -> (Instant, Duration, u64, i32, String) {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["check", "--format", "json", "--config"])
        .arg(config)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run midwatch: {e}"));
    let status_path = format!("/proc/{}/status", child.id());
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut out);
        }
        out
    });
    let mut peak = 0u64;
    let exit = loop {
        // VmHWM is the high-water mark: any reading after the peak shows it.
        if let Some(kb) = std::fs::read_to_string(&status_path).ok().as_deref().and_then(vm_hwm_kb) {
            peak = peak.max(kb);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status.code().unwrap_or(-1),
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => panic!("waiting for midwatch: {e}"),
        }
    };
    let wall = started.elapsed();
    (started, wall, peak, exit, reader.join().unwrap_or_default())
}

/// What one phase of a check cost, as the instance (and the SMTP server) saw it.
struct Phase {
    name: &'static str,
    requests: u64,
    /// Batch API sub-requests among them.
    sub_requests: u64,
    rows: u64,
    wire_bytes: u64,
    /// From the check's start to its phase's first request, and to its last answer.
    from: Duration,
    to: Duration,
}

const PHASES: &[&str] = &["roles and MID Servers", "counts", "latest events", "history", "writes", "email"];

/// The phase of one request: by its table, or for a Batch API call by its sub-requests'.
fn phase_of(r: &RecordedRequest) -> (&'static str, u64) {
    let (target, subs) = if r.path == "/api/now/v1/batch" {
        let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let items = body["rest_requests"].as_array().cloned().unwrap_or_default();
        let first = items.first().map(|i| i["url"].as_str().unwrap_or_default().to_string()).unwrap_or_default();
        (first, items.len() as u64)
    } else {
        (r.path.clone(), 0)
    };
    let path = target.split('?').next().unwrap_or_default();
    let name = if path.starts_with("/api/now/stats/") {
        "counts"
    } else if path.ends_with("/sysevent") {
        "latest events"
    } else if path.ends_with("/sys_user_login_history") {
        "history"
    } else if path.contains("/ecc_agent_issue") {
        "writes"
    } else {
        "roles and MID Servers"
    };
    (name, subs)
}

fn phases(started: Instant, requests: &[RecordedRequest], mails: &[midwatch_sim::smtp::ReceivedMessage]) -> Vec<Phase> {
    let since = |t: Instant| t.saturating_duration_since(started);
    PHASES
        .iter()
        .map(|name| {
            let mut p = Phase {
                name,
                requests: 0,
                sub_requests: 0,
                rows: 0,
                wire_bytes: 0,
                from: Duration::MAX,
                to: Duration::ZERO,
            };
            let mut add = |from: Duration, to: Duration| {
                p.from = p.from.min(from);
                p.to = p.to.max(to);
            };
            if *name == "email" {
                for m in mails {
                    p.requests += 1;
                    p.wire_bytes += m.data.len() as u64;
                    add(since(m.connected), since(m.received));
                }
            } else {
                for r in requests {
                    let (phase, subs) = phase_of(r);
                    if phase != *name {
                        continue;
                    }
                    p.requests += 1;
                    p.sub_requests += subs;
                    p.rows += r.rows;
                    p.wire_bytes += r.wire_bytes;
                    add(since(r.received), since(r.received + r.took));
                }
            }
            if p.requests == 0 {
                p.from = Duration::ZERO;
            }
            p
        })
        .collect()
}

fn vm_hwm_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Each finding as one comparable line: user, condition, message and the deciding event.
fn findings(stdout: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(stdout).unwrap_or(Value::Null);
    let mut out: Vec<String> = doc["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{} | {} | {} | {} {}",
                f["user"].as_str().unwrap_or_default(),
                f["condition"].as_str().unwrap_or_default(),
                f["message"].as_str().unwrap_or_default(),
                f["evidence"]["event"]["sys_id"].as_str().unwrap_or("-"),
                f["evidence"]["event"]["name"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    out.sort();
    out
}

fn mb(bytes: f64) -> String {
    format!("{:.2} MB", bytes / 1e6)
}

fn print_runs(n: usize, runs: &[Run]) {
    println!(
        "{:<18} {:>8} {:>12} {:>12} {:>8} {:>9} {:>5} | rows read per table, requests per endpoint",
        "instance offers", "requests", "wire bytes", "body bytes", "wall", "peak RSS", "exit"
    );
    for r in runs {
        let t = &r.tally;
        let rows: Vec<String> =
            t.rows_returned.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k} {v}")).collect();
        let aggregated: Vec<String> = t
            .rows_aggregated
            .iter()
            .map(|(k, v)| format!("{k} {v} counted in {} groups", t.groups_returned.get(k).copied().unwrap_or(0)))
            .collect();
        let endpoints: Vec<String> = t.requests_by_endpoint.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let subs: Vec<String> = t.sub_requests.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "{:<18} {:>8} {:>12} {:>12} {:>7.1}s {:>6} MB {:>5} | rows: {}",
            r.plan,
            t.requests,
            mb(t.wire_bytes as f64),
            mb(t.body_bytes as f64),
            r.wall.as_secs_f64(),
            r.peak_rss_kb / 1024,
            r.exit,
            rows.join(", ")
        );
        if !aggregated.is_empty() {
            println!("{:>75} | aggregated: {}", "", aggregated.join(", "));
        }
        println!("{:>75} | requests: {}", "", endpoints.join(", "));
        println!("{:>75} | batch sub-requests: {}", "", if subs.is_empty() { "none".into() } else { subs.join(", ") });
        for p in &r.phases {
            println!(
                "{:>20}{:<22} {:>4} requests ({:>4} in batches) {:>7} rows {:>10} {:>7.2} s  (from {:.2} s to {:.2} s)",
                "phase: ",
                p.name,
                p.requests,
                p.sub_requests,
                p.rows,
                mb(p.wire_bytes as f64),
                p.to.saturating_sub(p.from).as_secs_f64(),
                p.from.as_secs_f64(),
                p.to.as_secs_f64()
            );
        }
    }
    if let Some((_, req, bytes, wall, rss)) = SCRIPT.iter().find(|s| s.0 == n) {
        println!(
            "{:<18} {:>8} {:>12} {:>12} {:>7.1}s {:>6} MB       | measured before, not run here",
            "PySNC script",
            req,
            mb(*bytes),
            "",
            wall,
            rss
        );
    }
}

fn print_summary(all: &[(usize, Vec<Run>)]) {
    println!("\n== targets (against the PySNC script's figures)");
    let rss: BTreeMap<&str, Vec<u64>> = all
        .iter()
        .flat_map(|(_, runs)| runs.iter().map(|r| (r.plan.as_str(), r.peak_rss_kb)))
        .fold(BTreeMap::new(), |mut m, (plan, kb)| {
            m.entry(plan).or_insert_with(Vec::new).push(kb);
            m
        });
    for (n, runs) in all {
        let Some((_, _, script_bytes, script_wall, _)) = SCRIPT.iter().find(|s| s.0 == *n) else { continue };
        for r in runs {
            let sysevent = r.tally.rows_returned.get("sysevent").copied().unwrap_or(0);
            // A check with nothing to write has its own target: under 1.5 s.
            let wall_target = if r.plan.contains("--no-write") { 1.5 } else { script_wall * 0.05 };
            println!(
                "{n:>9} {:<18} requests {:>4} ≤ 50: {:<3} wire {} ≤ {}: {:<3} wall {:.2} s ≤ {:.2} s: {:<3} RSS {} MB ≤ 32: {:<3} sysevent rows {}",
                r.plan,
                r.tally.requests,
                yes(r.tally.requests <= 50),
                mb(r.tally.wire_bytes as f64),
                mb(script_bytes * 0.25),
                yes(r.tally.wire_bytes as f64 <= script_bytes * 0.25),
                r.wall.as_secs_f64(),
                wall_target,
                yes(r.wall.as_secs_f64() <= wall_target),
                r.peak_rss_kb / 1024,
                yes(r.peak_rss_kb <= 32 * 1024),
                sysevent
            );
        }
    }
    for (plan, kbs) in rss {
        if let (Some(lo), Some(hi)) = (kbs.iter().min(), kbs.iter().max())
            && kbs.len() > 1
        {
            let spread = (*hi as f64 / *lo as f64 - 1.0) * 100.0;
            println!(
                "{plan:<18} peak RSS across sizes {} – {} MB: within 10 %: {} ({spread:.1} %)",
                lo / 1024,
                hi / 1024,
                yes(spread <= 10.0)
            );
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}
