//! The command line: parsing, dispatch, and the exit-status contract of product.md §1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config};
use crate::cycle::{self, CheckOptions};
use crate::report::text::Detail;
use crate::report::{Status, json};
use crate::snow::RetryPolicy;

#[derive(Debug, Parser)]
#[command(name = "midwatch", version, about = "Watches the MID Server users of a ServiceNow instance")]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, env = "MIDWATCH_CONFIG", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one full cycle now, print the report, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check(CheckArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(crate::manual::CompletionsArgs),
    /// Validate the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a complete cycle against a simulated instance inside the process (no config, no account).
    Demo(OutputArgs),
    /// Run cycles on the [check] schedule until SIGTERM/SIGINT: the systemd service (Type=notify).
    Run(RunArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config file and name every problem found.
    Check {
        /// Only validate the file; do not contact the instance.
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// What the text report shows.
    #[arg(long, value_enum, default_value_t = Detail::Detailed)]
    pub detail: Detail,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The sampling period (e.g. 5m, 4h, 1d); at least 5m. Default: [check] window.
    #[arg(long, value_parser = parse_window)]
    pub window: Option<Duration>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Read and evaluate, print what would be written and sent, and write and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not send email.
    #[arg(long)]
    pub no_email: bool,
    /// Do not write ecc_agent_issue.
    #[arg(long)]
    pub no_write: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The sampling period of every cycle (e.g. 4h); at least 5m. Default: [check] window.
    #[arg(long, value_parser = parse_window)]
    pub window: Option<Duration>,
    /// Do not send email.
    #[arg(long)]
    pub no_email: bool,
    /// Do not write ecc_agent_issue.
    #[arg(long)]
    pub no_write: bool,
}

fn parse_window(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("\"{s}\" is not a duration ({e}); e.g. 5m, 4h, 1d"))?;
    config::validate_window(d)
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("midwatch: cannot start the async runtime: {e}");
            return ExitCode::from(Status::Unknown.exit_code());
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(args) => {
            let config = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => return unknown("instance", &e.to_string(), args.output.format),
            };
            init_logging(&config.log.level, config.log.format, "warn");
            check(&config, &args, chrono::Utc::now()).await
        }
        Command::Completions(args) => crate::manual::print_completions(args.shell),
        Command::Config(ConfigCommand::Check { offline }) => config_check(&cli.config, offline).await,
        Command::Demo(output) => {
            init_logging("warn", config::LogFormat::Text, "warn");
            crate::demo::run(&output).await
        }
        Command::Run(args) => {
            let opts =
                crate::service::RunOptions { window: args.window, no_write: args.no_write, no_email: args.no_email };
            crate::service::run(&cli.config, opts).await
        }
    }
}

/// Runs `check` and prints its report; the exit status is the report's.
pub async fn check(config: &Config, args: &CheckArgs, now: chrono::DateTime<chrono::Utc>) -> ExitCode {
    let format = args.output.format;
    let client = match cycle::client(config, RetryPolicy::default()) {
        Ok(c) => c,
        Err(e) => return unknown(&config.instance.name, &format!("{e:#}"), format),
    };
    let opts = CheckOptions {
        window: args.window.unwrap_or(config.check.window),
        dry_run: args.dry_run,
        no_write: args.no_write || !config.check.write_issues,
        no_email: args.no_email,
    };
    match cycle::check(config, &client, &opts, now).await {
        Ok(outcome) => {
            print!("{}", outcome.render(args.output.format, args.output.detail));
            ExitCode::from(outcome.report.status.exit_code())
        }
        Err(e) => unknown(&config.instance.name, &e.to_string(), format),
    }
}

/// Prints the UNKNOWN status (plugin style first line) and returns exit status 3.
fn unknown(instance: &str, error: &str, format: Format) -> ExitCode {
    match format {
        Format::Text => {
            println!("MIDWATCH UNKNOWN - {} on {instance}", json::first_line(error));
            for line in error.lines().skip(1) {
                println!("{line}");
            }
        }
        Format::Json => println!("{}", json::render_error(instance, error)),
    }
    ExitCode::from(Status::Unknown.exit_code())
}

async fn config_check(path: &std::path::Path, offline: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(Status::Unknown.exit_code());
        }
    };
    println!("{}: valid", path.display());
    if offline {
        if let Some(w) = crate::probe::shared_source_warning(&config.check.issue_source, None) {
            println!("warning: {w}");
        }
        return ExitCode::SUCCESS;
    }
    let mut probe = crate::probe::probe(&config).await;
    if let Some(email) = &config.email {
        let smtp = crate::notify::probe(email).await;
        if smtp.is_empty() {
            probe.notes.push(format!("{} accepts midwatch's sender and every recipient", email.server_url()));
        }
        probe.problems.extend(smtp);
    }
    for n in &probe.notes {
        println!("note: {n}");
    }
    for w in &probe.warnings {
        println!("warning: {w}");
    }
    for p in &probe.problems {
        println!("problem: {p}");
    }
    if probe.problems.is_empty() {
        println!("{}: the instance answers and the account can read every table a cycle reads", config.instance.url);
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s) found", probe.problems.len());
        ExitCode::from(Status::Unknown.exit_code())
    }
}

/// Logs go to stderr, so stdout carries only the report. `RUST_LOG` overrides the level.
pub fn init_logging(level: &str, format: config::LogFormat, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(if level.is_empty() { default } else { level }))
        .unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}
