//! `midwatch-sim`: the simulated instance of `midwatch demo` as a process of its own, for the programs
//! midwatch runs next to (`.ci/neighbours.sh` runs it under Icinga 2, Postfix and node_exporter) and for
//! rehearsing the real-instance path (the README's "Rehearse against the simulator").
//!
//! It serves the demo data set (events shifted so they fall inside the window ending now) on a loopback
//! port, with HTTP basic auth `svc.midwatch` / `demo-password` as `midwatch demo` uses, prints
//! `http://127.0.0.1:PORT` as its first line on stdout, and serves until SIGTERM or SIGINT. With `--smtp` it
//! also runs the SMTP server of `midwatch_sim::smtp` and prints `smtp://127.0.0.1:PORT` as the second line;
//! with `--write-config PATH` it writes a midwatch configuration pointing at both (`midwatch_sim::rehearsal`).
//! What it did is said on stderr, one line each, the messages the SMTP server receives included.
//!
//! SIGUSR1 changes the data while it runs, as an administrator would between two checks (the demo's second
//! cycle does the same): `midserver2` is fixed — its account unlocked, and a successful `login` of it recorded
//! now — so that the next check resolves its finding (`.ci/neighbours/alertmanager.sh` uses it). A signal, not
//! an endpoint: only a process of the same user (or root) can send it, and nothing new listens.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use midwatch_sim::FakeInstance;
use midwatch_sim::edits::{self, FIX_EVENT_SYS_ID};
use midwatch_sim::rehearsal::{self, Rehearsal};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "\
usage: midwatch-sim [--smtp [--save-dir DIR]] [--write-config PATH [--state-dir DIR]]

Serves the demo data set of `midwatch demo` as a simulated ServiceNow instance on 127.0.0.1 (a free port),
user svc.midwatch, password demo-password, until SIGTERM or SIGINT (Ctrl-C). Prints the instance's URL,
http://127.0.0.1:PORT, as the first line on stdout. Every start begins from the same data: the records
midwatch writes are kept in memory only.

Options:
  --smtp               Also run an SMTP server on 127.0.0.1 (a free port; no TLS, any AUTH accepted,
                       nothing relayed) and print its URL, smtp://127.0.0.1:PORT, as the second line on
                       stdout. Each message it receives is named on stderr.
  --save-dir DIR       Save each message the SMTP server receives in DIR (created if missing) as an .eml
                       file, which a mail client opens. Default with --write-config: `mail` beside the
                       configuration; otherwise messages are kept in memory only.
  --write-config PATH  Write a midwatch configuration for this simulator to PATH (its directory created if
                       missing), never over an existing file: [instance] url and user, password_file =
                       \"instance_password\" written beside it (mode 600), a [check] schedule of every
                       minute, the [state] directory, and with --smtp an [email] section for the SMTP server.
  --state-dir DIR      The [state] directory of the written configuration. Default: `state` beside it.
  -h, --help           Print this help.

SIGUSR1 fixes midserver2 while it runs (unlocks it and records a login of it now), as an administrator would.

Rehearsal (the README's \"Rehearse against the simulator\"):
  midwatch-sim --smtp --write-config /tmp/midwatch-rehearsal/midwatch.toml
  MIDWATCH_CONFIG=/tmp/midwatch-rehearsal/midwatch.toml midwatch check";

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    smtp: bool,
    save_dir: Option<PathBuf>,
    write_config: Option<PathBuf>,
    state_dir: Option<PathBuf>,
}

/// The command line: `None` for `--help`.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Args>, String> {
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_string(), Some(value.to_string())),
            _ => (text.clone(), None),
        };
        let slot = match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--smtp" if inline.is_none() => {
                parsed.smtp = true;
                continue;
            }
            "--save-dir" => &mut parsed.save_dir,
            "--write-config" => &mut parsed.write_config,
            "--state-dir" => &mut parsed.state_dir,
            _ => return Err(format!("unexpected argument {text:?}")),
        };
        let value = match inline {
            Some(v) => PathBuf::from(v),
            None => args.next().map(PathBuf::from).ok_or_else(|| format!("{name} needs a path"))?,
        };
        if value.as_os_str().is_empty() || slot.replace(value).is_some() {
            return Err(format!("{name} needs one path, given once"));
        }
    }
    if parsed.save_dir.is_some() && !parsed.smtp {
        return Err("--save-dir saves what the SMTP server receives: add --smtp".into());
    }
    if parsed.state_dir.is_some() && parsed.write_config.is_none() {
        return Err("--state-dir is the [state] directory of the written configuration: add --write-config PATH".into());
    }
    Ok(Some(parsed))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("midwatch-sim: {e}\n\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match serve(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("midwatch-sim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where the SMTP server saves what it receives: `--save-dir`, else `mail` beside the written configuration.
fn save_dir(args: &Args) -> std::io::Result<Option<PathBuf>> {
    if !args.smtp {
        return Ok(None);
    }
    match (&args.save_dir, &args.write_config) {
        (Some(dir), _) => Ok(Some(std::path::absolute(dir)?)),
        (None, Some(config)) => Ok(std::path::absolute(config)?.parent().map(|dir| dir.join("mail"))),
        (None, None) => Ok(None),
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    if let Some(path) = &args.write_config {
        rehearsal::new_files(path)?;
    }
    let saved_in = save_dir(&args)?;
    let stage = Rehearsal::start(chrono::Utc::now(), args.smtp, saved_in.clone()).await?;
    // Written before any URL is printed: a refusal leaves stdout empty.
    let written = match &args.write_config {
        Some(path) => Some(stage.write_config(path, args.state_dir.as_deref())?),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", stage.instance.url())?;
    if let Some(url) = stage.smtp_url() {
        writeln!(out, "{url}")?;
    }
    out.flush()?;
    drop(out);
    say_what_runs(&stage, saved_in.as_deref(), written.as_ref());
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let mut told = Told::default();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => told.news(&stage),
            _ = usr1.recv() => {
                fix_midserver2(&stage.instance);
                eprintln!("midwatch-sim: SIGUSR1: midserver2 unlocked, a login of it recorded now");
            }
        }
    }
    told.news(&stage);
    eprintln!("midwatch-sim: stopped after {} request(s)", stage.instance.requests().len());
    Ok(())
}

/// The servers, the files written and how to use them, on stderr.
fn say_what_runs(stage: &Rehearsal, saved_in: Option<&Path>, written: Option<&rehearsal::WrittenConfig>) {
    eprintln!(
        "midwatch-sim: simulated instance at {} (user {}, password {})",
        stage.instance.url(),
        rehearsal::USER,
        rehearsal::PASSWORD
    );
    if let Some(url) = stage.smtp_url() {
        let kept = match saved_in {
            Some(dir) => format!("saves each message in {}", dir.display()),
            None => "keeps messages in memory only (--save-dir DIR saves them)".into(),
        };
        eprintln!("midwatch-sim: SMTP server at {url}; it relays nothing and {kept}");
    }
    if let Some(w) = written {
        eprintln!(
            "midwatch-sim: wrote {} (the password in {}, mode 600; state directory {})",
            w.config.display(),
            w.password_file.display(),
            w.state_directory.display()
        );
        eprintln!("midwatch-sim: try: MIDWATCH_CONFIG={} midwatch config check", w.config.display());
    }
    eprintln!("midwatch-sim: serving until Ctrl-C or SIGTERM");
}

/// How many received messages and saved files have been named on stderr.
#[derive(Debug, Default)]
struct Told {
    messages: usize,
    files: usize,
}

impl Told {
    /// Names the messages received and the files saved since the last call.
    fn news(&mut self, stage: &Rehearsal) {
        let Some(sink) = &stage.smtp else { return };
        let messages = sink.messages();
        for m in messages.iter().skip(self.messages) {
            eprintln!(
                "midwatch-sim: received an email from {} for {} ({} bytes): {}",
                printable(&m.from),
                printable(&m.to.join(", ")),
                m.data.len(),
                printable(subject(&m.data))
            );
        }
        self.messages = messages.len();
        let files = sink.saved_files();
        for file in files.iter().skip(self.files) {
            eprintln!("midwatch-sim: saved as {}", file.display());
        }
        self.files = files.len();
    }
}

/// The `Subject:` header's first line (as sent: an encoded word stays encoded).
fn subject(data: &str) -> &str {
    let headers = data.split("\r\n\r\n").next().unwrap_or_default();
    headers.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or("(no subject)")
}

/// `s` with control characters shown as `?`, at most 200 characters: what a client sent is not trusted.
fn printable(s: &str) -> String {
    s.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// Fixes `midserver2` (`midwatch_sim::edits::fix_midserver2`) at the instance's time now, once: a second
/// SIGUSR1 replaces the first fix's login event.
fn fix_midserver2(instance: &FakeInstance) {
    let now = instance.now();
    instance.edit(|tables| {
        if let Some(events) = tables.get_mut("sysevent") {
            events.retain(|e| e.get("sys_id").and_then(serde_json::Value::as_str) != Some(FIX_EVENT_SYS_ID));
        }
        edits::fix_midserver2(tables, now);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Args>, String> {
        parse(list.iter().map(OsString::from))
    }

    #[test]
    fn options_take_a_path_after_a_space_or_an_equals_sign() {
        let parsed = args(&["--smtp", "--save-dir", "/tmp/m", "--write-config=/tmp/c.toml"]).expect("valid");
        assert_eq!(
            parsed,
            Some(Args {
                smtp: true,
                save_dir: Some("/tmp/m".into()),
                write_config: Some("/tmp/c.toml".into()),
                state_dir: None,
            })
        );
        assert_eq!(args(&["--smtp", "--help"]), Ok(None));
    }

    #[test]
    fn a_wrong_command_line_says_what_is_missing() {
        assert_eq!(args(&["--bogus"]).expect_err("unknown"), "unexpected argument \"--bogus\"");
        assert_eq!(args(&["--write-config"]).expect_err("no path"), "--write-config needs a path");
        assert!(args(&["--save-dir", "/tmp/m"]).expect_err("no smtp").contains("add --smtp"));
        assert!(args(&["--state-dir", "/tmp/s"]).expect_err("no config").contains("add --write-config"));
        assert!(args(&["--write-config", "a", "--write-config", "b"]).expect_err("twice").contains("once"));
    }

    #[test]
    fn the_subject_is_read_from_the_headers_only() {
        assert_eq!(subject("From: a\r\nSubject: MIDWATCH CRITICAL\r\n\r\nSubject: body"), "MIDWATCH CRITICAL");
        assert_eq!(subject("From: a\r\n\r\nSubject: body"), "(no subject)");
        assert_eq!(printable("a\u{1b}[2Jb"), "a?[2Jb");
    }
}
