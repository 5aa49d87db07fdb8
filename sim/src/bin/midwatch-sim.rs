//! `midwatch-sim`: the simulated instance of `midwatch demo` as a process of its own, for the programs
//! midwatch runs next to (`.ci/neighbours.sh` runs it under Icinga 2, Postfix and node_exporter).
//!
//! It serves the demo data set (events shifted so they fall inside the window ending now) on a loopback
//! port, with HTTP basic auth `svc.midwatch` / `demo-password` as `midwatch demo` uses, prints
//! `http://127.0.0.1:PORT` as its first line on stdout, and serves until SIGTERM or SIGINT.

use std::io::Write as _;

use midwatch_sim::{Dataset, FakeInstance};
use tokio::signal::unix::{SignalKind, signal};

/// The account of `midwatch demo` (`src/demo/mod.rs`).
const USER: &str = "svc.midwatch";
const PASSWORD: &str = "demo-password";

const USAGE: &str = "usage: midwatch-sim [--help]\n\
    Serves the demo data set on 127.0.0.1 (a free port), user svc.midwatch, password demo-password.\n\
    Prints the URL as the first line on stdout and serves until SIGTERM or SIGINT.";

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
    let now = chrono::Utc::now();
    let instance = FakeInstance::start(Dataset::demo(now), USER, PASSWORD).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", instance.url())?;
    out.flush()?;
    drop(out);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let served = instance.requests().len();
    drop(instance);
    eprintln!("midwatch-sim: stopped after {served} request(s)");
    Ok(())
}
