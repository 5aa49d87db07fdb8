//! `midwatch-sim`: the simulated instance of `midwatch demo` as a process of its own, for the programs
//! midwatch runs next to (`.ci/neighbours.sh` runs it under Icinga 2, Postfix and node_exporter).
//!
//! It serves the demo data set (events shifted so they fall inside the window ending now) on a loopback
//! port, with HTTP basic auth `svc.midwatch` / `demo-password` as `midwatch demo` uses, prints
//! `http://127.0.0.1:PORT` as its first line on stdout, and serves until SIGTERM or SIGINT.
//!
//! SIGUSR1 changes the data while it runs, as an administrator would between two checks (the demo's second
//! cycle does the same): `midserver2` is fixed — its account unlocked, and a successful `login` of it recorded
//! now — so that the next check resolves its finding (`.ci/neighbours/alertmanager.sh` uses it). A signal, not
//! an endpoint: only a process of the same user (or root) can send it, and nothing new listens.

use std::io::Write as _;

use midwatch_sim::{Dataset, FakeInstance};
use tokio::signal::unix::{SignalKind, signal};

/// The account of `midwatch demo` (`src/demo/mod.rs`).
const USER: &str = "svc.midwatch";
const PASSWORD: &str = "demo-password";

const USAGE: &str = "usage: midwatch-sim [--help]\n\
    Serves the demo data set on 127.0.0.1 (a free port), user svc.midwatch, password demo-password.\n\
    Prints the URL as the first line on stdout and serves until SIGTERM or SIGINT.\n\
    SIGUSR1 fixes midserver2 (unlocked, a successful login now): the next check resolves its finding.";

/// The sys_id of the `login` event SIGUSR1 records (the demo's own fix uses the same one).
const FIX_EVENT_SYS_ID: &str = "e7e7ffff000000000000000000000001";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("midwatch-sim: unexpected argument {other:?}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    }
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("midwatch-sim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let now = chrono::Utc::now();
    let instance = FakeInstance::start(Dataset::demo(now), USER, PASSWORD).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", instance.url())?;
    out.flush()?;
    drop(out);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => {
                fix_midserver2(&instance);
                eprintln!("midwatch-sim: SIGUSR1: midserver2 unlocked, a login of it recorded now");
            }
        }
    }
    let served = instance.requests().len();
    drop(instance);
    eprintln!("midwatch-sim: stopped after {served} request(s)");
    Ok(())
}

/// Unlocks `midserver2` and records a successful `login` of it at the instance's time now, once.
fn fix_midserver2(instance: &FakeInstance) {
    use serde_json::Value;
    let now = instance.now().format("%Y-%m-%d %H:%M:%S").to_string();
    instance.edit(|tables| {
        for user in tables.get_mut("sys_user").into_iter().flatten() {
            if user.get("user_name").and_then(Value::as_str) == Some("midserver2") {
                user.insert("locked_out".into(), Value::String("false".into()));
            }
        }
        let Some(events) = tables.get_mut("sysevent") else { return };
        events.retain(|e| e.get("sys_id").and_then(Value::as_str) != Some(FIX_EVENT_SYS_ID));
        let row = serde_json::json!({
            "sys_id": FIX_EVENT_SYS_ID, "name": "login", "parm1": "midserver2", "parm2": "10.20.30.41",
            "instance": "", "table": "", "state": "processed", "queue": "",
            "sys_created_on": now, "sys_created_by": "midserver2",
        });
        if let Value::Object(row) = row {
            events.push(row);
        }
    });
}
