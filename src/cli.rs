//! The command line: parsing, dispatch, and the exit-status contract.
//!
//! This is the only module that turns what a command ended with into a process exit status (`exit`):
//! 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, the Nagios/Icinga plugin convention of the README.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{self, Config};
use crate::cycle::{self, CheckOptions, Cycle};
use crate::domain::{Scope, Selection, Status};
use crate::escape::clean;
use crate::manual::{self, CompletionShell};
use crate::present::{Detail, Format};
use crate::snow::RetryPolicy;

mod hint;
mod unknown;
mod values;

use unknown::{unknown, unknown_line};
use values::{parse_every, parse_name};

#[derive(Debug, Parser)]
#[command(name = "midwatch", version, about = "Watches the MID Server users of a ServiceNow instance")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `--config PATH`, for the commands that read a config file (`demo` reads none).
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigPath {
    /// The configuration file.
    #[arg(long = "config", value_name = "PATH", env = "MIDWATCH_CONFIG", default_value = config::DEFAULT_PATH)]
    pub(crate) path: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one full cycle now, writing ecc_agent_issue and emailing the findings; print the report, exit 0 OK,
    /// 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[command(long_about = manual::CHECK_ABOUT)]
    Check(CheckArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(CompletionsArgs),
    /// Validate the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a complete cycle against a simulated instance inside the process (no config, no account).
    #[cfg(feature = "demo")]
    #[command(long_about = manual::DEMO_ABOUT)]
    Demo(DemoArgs),
    /// Run cycles on the [check] schedule until SIGTERM/SIGINT: the systemd service (Type=notify).
    Run(RunArgs),
}

/// `midwatch completions SHELL`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to print the completion script for.
    #[arg(value_enum)]
    pub(crate) shell: CompletionShell,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate the config file and name every problem found.
    Check {
        #[command(flatten)]
        config: ConfigPath,
        /// Only validate the file; do not contact the instance.
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct OutputArgs {
    /// What the text report shows.
    #[arg(long, value_enum, default_value_t = Detail::Detailed)]
    pub(crate) detail: Detail,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

#[cfg(feature = "demo")]
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// How the demo signs in to its simulated instance: basic, oauth_client_credentials (alias oauth) or
    /// oauth_password.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) auth: crate::demo::DemoAuth,
    /// Show the remediation loop instead: a full check, then `check --user midserver2 --until-ok` in simulated
    /// time, midserver2 fixed after its second round.
    #[arg(long)]
    pub(crate) until_ok: bool,
    /// Keep the emails the demo's SMTP server received (.eml files): in DIR, or, without DIR, in its temporary
    /// directory, which then stays (midwatch-demo-* under $TMPDIR, else /tmp).
    #[arg(long, value_name = "DIR")]
    pub(crate) keep: Option<Option<PathBuf>>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) config: ConfigPath,
    #[command(flatten)]
    pub(crate) overrides: OverrideArgs<CheckOwnArgs>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) config: ConfigPath,
    #[command(flatten)]
    pub(crate) overrides: OverrideArgs<RunOwnArgs>,
}

/// The flags of `check` and `run` that override the config file, with the subcommand's own flags (`O`) in
/// their place among them on the command line.
#[derive(Debug, clap::Args)]
pub(crate) struct OverrideArgs<O: OwnArgs> {
    #[arg(long, value_name = "DURATION", value_parser = config::parse_window, help = O::WINDOW_HELP)]
    pub(crate) window: Option<Duration>,
    #[arg(long, value_name = "DURATION", value_parser = config::parse_timeout, help = O::TIMEOUT_HELP)]
    pub(crate) timeout: Option<Duration>,
    #[command(flatten)]
    pub(crate) own: O,
    /// Do not send email.
    #[arg(long)]
    pub(crate) no_email: bool,
    /// Do not write ecc_agent_issue.
    #[arg(long)]
    pub(crate) no_write: bool,
    /// Do not post alerts to [alertmanager].
    #[arg(long)]
    pub(crate) no_alerts: bool,
}

impl<O: OwnArgs> OverrideArgs<O> {
    /// What the cycle takes of them (merged with the config by [`CheckOptions::new`]).
    fn cycle(&self) -> cycle::Overrides {
        cycle::Overrides {
            window: self.window,
            timeout: self.timeout,
            dry_run: self.own.dry_run(),
            no_write: self.no_write,
            no_email: self.no_email,
            no_alerts: self.no_alerts,
            scope: self.own.scope(),
        }
    }
}

/// The flags only one of `check` and `run` takes, and how the shared [`OverrideArgs`] are worded there.
pub(crate) trait OwnArgs: clap::Args {
    const WINDOW_HELP: &'static str;
    const TIMEOUT_HELP: &'static str;

    /// `--dry-run`.
    fn dry_run(&self) -> bool;

    /// `--user`, `--mid-server`.
    fn scope(&self) -> Scope {
        Scope::All
    }
}

/// `check`'s own flags.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckOwnArgs {
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Read and evaluate, print what would be written and sent, and write and send nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the text of this check's email after the report (with --dry-run: of the email it would send,
    /// sending nothing).
    #[arg(long)]
    pub(crate) show_email: bool,
    /// Log to stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides). Without it, only warnings and
    /// errors, and, when stdout is not a terminal, after the report, so that its first line stays the status.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Check only this MID Server user (sys_user.user_name, in any case, as the instance compares names);
    /// repeat for more. The report, the status and write-back cover only the selected users; no email is sent.
    #[arg(long = "user", value_name = "NAME", value_parser = parse_name)]
    pub(crate) users: Vec<String>,
    /// Check only the users configured on this MID Server (ecc_agent.name, in any case); repeat for more.
    #[arg(long = "mid-server", value_name = "NAME", value_parser = parse_name)]
    pub(crate) mid_servers: Vec<String>,
    /// After a fix: run the check again every --every until every checked user is clear (exit 0), or until
    /// --timeout (then the last status). Each round says every watched user's state; Ctrl-C ends it with the
    /// last status.
    #[arg(long)]
    pub(crate) until_ok: bool,
    /// With --until-ok: how often to check again (e.g. 30s, 2m); 10s to 1h. Default: 1m
    #[arg(long, value_name = "DURATION", value_parser = parse_every, requires = "until_ok")]
    pub(crate) every: Option<Duration>,
}

impl OwnArgs for CheckOwnArgs {
    const WINDOW_HELP: &'static str = "The sampling period (e.g. 5m, 4h, 1d); at least 5m, at most 30d. Default: \
                                       [check] window; with --until-ok, 5m (the MID Server heartbeat)";
    const TIMEOUT_HELP: &'static str = "The whole check's deadline (e.g. 50s); when it passes, the check says \
                                        what it was waiting for and exits 3. Default: [check] timeout (50s, below \
                                        the 60s a monitoring plugin gets). With --until-ok: the whole watch \
                                        (default 30m); each round then has [check] timeout";

    fn dry_run(&self) -> bool {
        self.dry_run
    }

    fn scope(&self) -> Scope {
        Scope::of(Selection {
            users: self.users.iter().cloned().collect(),
            mid_servers: self.mid_servers.iter().cloned().collect(),
        })
    }
}

/// `run` has no flags of its own.
#[derive(Debug, clap::Args)]
pub(crate) struct RunOwnArgs {}

impl OwnArgs for RunOwnArgs {
    const WINDOW_HELP: &'static str =
        "The sampling period of every cycle (e.g. 4h); at least 5m, at most 30d. Default: [check] window";
    const TIMEOUT_HELP: &'static str = "The deadline of every cycle (e.g. 5m). Default: [check] timeout";

    fn dry_run(&self) -> bool {
        false
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It ran (or could not): the plugin status.
    Status(Status),
    /// `--help` or `--version` was printed.
    Informed,
    /// The command line was invalid: UNKNOWN, never CRITICAL (clap's own status would be 2).
    Usage,
    /// Whoever read standard output went away (`midwatch demo | head`): end quietly.
    StdoutClosed,
}

/// The exit status of a process killed by SIGPIPE, as a shell reports it.
const STDOUT_CLOSED: u8 = 128 + 13;

/// The one place a command's end becomes the process exit status.
pub(crate) fn exit(ended: Ended) -> ExitCode {
    match ended {
        Ended::Status(status) => ExitCode::from(status.exit_code()),
        Ended::Informed => ExitCode::SUCCESS,
        Ended::Usage => ExitCode::from(Status::Unknown.exit_code()),
        Ended::StdoutClosed => ExitCode::from(STDOUT_CLOSED),
    }
}

/// The command line's clap definition, for the manual pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
            return exit(usage(hint::with_hint(e, &args)));
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "midwatch: cannot start the async runtime: {e}");
            return exit(Ended::Status(Status::Unknown));
        }
    };
    exit(match runtime.block_on(run(cli)) {
        Ok(status) => Ended::Status(status),
        Err(closed) => closed,
    })
}

/// Prints clap's help, version or error; usage errors are UNKNOWN.
fn usage(e: clap::Error) -> Ended {
    use clap::error::ErrorKind;
    // `print` writes help and version to stdout and errors to stderr, with clap's wording.
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Ended::Informed,
        _ => Ended::Usage,
    }
}

/// Writes `text` to standard output; a closed pipe ends the command quietly.
pub(crate) fn print(text: &str) -> Result<(), Ended> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Ended::StdoutClosed),
        // Any other failure to write the report (a full disk behind a redirect) is not the instance's status.
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "midwatch: cannot write to standard output: {e}");
            Err(Ended::Status(Status::Unknown))
        }
    }
}

async fn run(cli: Cli) -> Result<Status, Ended> {
    match cli.command {
        Command::Check(args) => {
            let config = match Config::load(&args.config.path) {
                Ok(c) => c,
                Err(e) => return unknown(None, &e.to_string(), args.overrides.own.output.format),
            };
            let verbosity = crate::logging::verbosity(args.overrides.own.verbose);
            crate::logging::init(verbosity, config.log.format, "warn", log_sink());
            config.log_warnings();
            let status = check(&config, &args, chrono::Utc::now()).await;
            crate::logging::release_held();
            status
        }
        Command::Completions(args) => {
            print(&String::from_utf8_lossy(&manual::completions(command(), args.shell)))?;
            Ok(Status::Ok)
        }
        Command::Config(ConfigCommand::Check { config, offline }) => config_check(&config.path, offline).await,
        #[cfg(feature = "demo")]
        Command::Demo(DemoArgs { output, auth, until_ok, keep }) => {
            crate::logging::init("warn", config::LogFormat::Text, "warn", crate::logging::Sink::Stderr);
            let keep = crate::demo::Keep::from_arg(keep);
            let demo = crate::demo::Demo { format: output.format, detail: output.detail, auth, until_ok, keep };
            crate::demo::run(demo, print).await
        }
        Command::Run(args) => {
            let served = match crate::service::Signals::install() {
                Ok(signals) => crate::service::run(&args.config.path, args.overrides.cycle(), signals).await,
                Err(cannot_start) => Err(cannot_start),
            };
            // The service has reported why it could not start: on stderr, or in the log once it is set up.
            Ok(match served {
                Ok(()) => Status::Ok,
                Err(crate::service::CannotStart(_)) => Status::Unknown,
            })
        }
    }
}

/// Where `check` logs: straight to stderr on a terminal; otherwise held until the report is out, because a
/// monitoring system that reads stdout and stderr together (Icinga 2) shows the first line as the output.
fn log_sink() -> crate::logging::Sink {
    use std::io::IsTerminal as _;
    if std::io::stdout().is_terminal() { crate::logging::Sink::Stderr } else { crate::logging::Sink::Held }
}

/// Runs `check` and prints its report; the status is the report's.
pub(crate) async fn check(
    config: &Config,
    args: &CheckArgs,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Status, Ended> {
    let own = &args.overrides.own;
    let output = &own.output;
    let format = output.format;
    let instance = Some(config.instance.name.as_str());
    let client = match cycle::client(config, RetryPolicy::default()) {
        Ok(c) => c,
        Err(e) => return unknown(instance, &format!("{e:#}"), format),
    };
    let mut overrides = args.overrides.cycle();
    let checked = if own.until_ok {
        // The watch's --timeout is the whole watch's; each round has [check] timeout.
        let watch_for = overrides.timeout.take().unwrap_or(crate::watch::DEFAULT_TIMEOUT);
        overrides.window.get_or_insert(crate::watch::DEFAULT_WINDOW);
        let every = own.every.unwrap_or(crate::watch::DEFAULT_EVERY);
        let mut clock = match crate::watch::Clock::start(every, watch_for) {
            Ok(clock) => clock,
            Err(e) => return unknown(instance, &format!("cannot install the Ctrl-C handler: {e}"), format),
        };
        let mut say = crate::watch::say(format);
        let opts = CheckOptions::new(config, &overrides);
        let watching = crate::watch::watch(Cycle::new(config, &client, &opts), every, now, &mut clock, &mut say);
        watching.await.map(|(outcome, watched)| (outcome, Some(watched)))
    } else {
        let opts = CheckOptions::new(config, &overrides);
        let cycle = Cycle::new(config, &client, &opts);
        let deadline = cycle.deadline();
        let checked = cycle.check(now).await;
        // The on-call team learns that the watcher is blind (MidwatchCheckFailed), as they would learn a finding.
        if let Err(e) = &checked {
            cycle.failed(&unknown_line(&e.to_string()), chrono::Utc::now(), deadline).await;
        }
        checked.map(|outcome| (outcome, None))
    };
    match checked {
        Ok((outcome, watched)) => {
            print(&outcome.view(watched.as_ref()).showing_email(own.show_email).render(format, output.detail))?;
            Ok(outcome.report.status)
        }
        Err(e) => unknown(instance, &e.to_string(), format),
    }
}

async fn config_check(path: &std::path::Path, offline: bool) -> Result<Status, Ended> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            return Ok(Status::Unknown);
        }
    };
    let mut out = format!("{}: valid\n", path.display());
    for w in &config.warnings {
        out.push_str(&format!("warning: {}\n", clean(w)));
    }
    // The email outbox and the alerts' state live there: checked as a cycle will use it (another user's, …).
    let state = (config.email.is_some() || config.alertmanager.is_some())
        .then(|| crate::notify::outbox::check_state_directory(&config.state_directory).err().map(|e| e.to_string()))
        .flatten();
    if offline {
        if let Some(w) = crate::probe::shared_source_warning(&config.check.issue_source, None) {
            out.push_str(&format!("warning: {w}\n"));
        }
        let Some(problem) = state else {
            print(&out)?;
            return Ok(Status::Ok);
        };
        out.push_str(&format!("problem: {}\n1 problem(s) found\n", clean(&problem)));
        print(&out)?;
        return Ok(Status::Unknown);
    }
    print(&out)?;
    let mut probe = crate::probe::probe(&config).await;
    probe.problems.extend(state);
    if let Some(email) = &config.email {
        let smtp = crate::notify::probe(email).await;
        if smtp.is_empty() {
            probe.notes.push(format!("{} accepts midwatch's sender and every recipient", email.server_url()));
        }
        probe.problems.extend(smtp);
    }
    crate::probe::alertmanager(&config, &mut probe).await;
    let mut out = String::new();
    for n in &probe.notes {
        out.push_str(&format!("note: {}\n", clean(n)));
    }
    for w in &probe.warnings {
        out.push_str(&format!("warning: {}\n", clean(w)));
    }
    for p in &probe.problems {
        out.push_str(&format!("problem: {}\n", clean(p)));
    }
    let status = if probe.problems.is_empty() {
        out.push_str(&format!(
            "{}: the instance answers and the account can read every table a cycle reads\n",
            config.instance.url
        ));
        Status::Ok
    } else {
        out.push_str(&format!("{} problem(s) found\n", probe.problems.len()));
        Status::Unknown
    };
    print(&out)?;
    Ok(status)
}
