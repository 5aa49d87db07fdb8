//! `midwatch demo`: a complete cycle against a simulated instance inside the process.
//!
//! The simulated instance serves the data set of `wiremock_fixtures/demo/` (the documentation's
//! example users, shifted so that its events fall inside the window ending now) over real HTTP on
//! a loopback port, and the demo runs the same `check` code path a real instance gets.

use std::process::ExitCode;

use secrecy::SecretString;

use crate::cli::{OutputArgs, print_report};
use crate::config::{CheckConfig, Config, InstanceConfig, LogConfig, LogFormat};
use crate::cycle::{self, CheckOptions};
use crate::fake_instance::{Dataset, FakeInstance};
use crate::messages::MessageStyle;
use crate::report::Status;
use crate::snow::RetryPolicy;

const USER: &str = "svc.midwatch";
const PASSWORD: &str = "demo-password";

/// The configuration of a check against the simulated instance at `url`.
pub fn demo_config(url: &str) -> anyhow::Result<Config> {
    Ok(Config {
        instance: InstanceConfig {
            url: crate::config::parse_instance_url(url).map_err(anyhow::Error::msg)?,
            name: "demo".into(),
            user: USER.into(),
            password: SecretString::from(PASSWORD),
            timeout: std::time::Duration::from_secs(10),
            page_size: 1000,
            concurrency: 4,
            proxy: None,
            ca_file: None,
        },
        check: CheckConfig {
            window: crate::config::DEFAULT_WINDOW,
            schedule: crate::config::DEFAULT_SCHEDULE.into(),
            messages: MessageStyle::Documented,
            write_issues: true,
            issue_source: crate::config::DEFAULT_ISSUE_SOURCE.into(),
        },
        state_directory: std::env::temp_dir().join("midwatch-demo"),
        log: LogConfig { format: LogFormat::Text, level: "warn".into() },
    })
}

pub async fn run(output: &OutputArgs) -> ExitCode {
    match run_demo(output).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("midwatch demo failed: {e:#}");
            ExitCode::from(Status::Unknown.exit_code())
        }
    }
}

async fn run_demo(output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let instance = FakeInstance::start(Dataset::demo(now), USER, PASSWORD).await?;
    eprintln!("midwatch demo: simulated instance listening on {}", instance.url());
    let config = demo_config(&instance.url())?;
    let client = cycle::client(&config, RetryPolicy::default())?;
    let opts = CheckOptions::from_config(&config);
    let outcome = cycle::check(&config, &client, &opts, now).await?;
    print_report(&outcome.report, output);
    eprintln!(
        "midwatch demo: the cycle made {} HTTP requests ({} response bytes) in {} ms; exit status {} ({})",
        outcome.requests,
        outcome.response_bytes,
        outcome.duration.as_millis(),
        outcome.report.status.exit_code(),
        outcome.report.status.label()
    );
    Ok(ExitCode::from(outcome.report.status.exit_code()))
}
