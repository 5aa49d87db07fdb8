//! One check cycle: collect → evaluate → report. `check`, `demo` and (later) `run` all call this.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::collect::collect;
use crate::config::Config;
use crate::evaluate::{Context, evaluate};
use crate::model::Window;
use crate::report::Report;
use crate::snow::{ApiError, Client, ClientOptions, RetryPolicy};

/// The switches of one cycle.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub window: Duration,
    pub dry_run: bool,
    pub no_write: bool,
    pub no_email: bool,
}

impl CheckOptions {
    pub fn from_config(config: &Config) -> CheckOptions {
        CheckOptions { window: config.check.window, dry_run: false, no_write: false, no_email: false }
    }
}

/// What a cycle produced, with what it cost.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub requests: u64,
    pub response_bytes: u64,
    pub duration: Duration,
}

impl Outcome {
    /// The one line a cycle logs: duration, requests, findings by category (and, as they land,
    /// records created/counted/resolved and the email sent or queued).
    pub fn summary_line(&self) -> String {
        let by: Vec<String> =
            self.report.summary.findings_by_category.iter().map(|(c, n)| format!("{}={n}", c.name())).collect();
        format!(
            "cycle {} in {} ms: {} requests, {} bytes; findings={} [{}]",
            self.report.status.label(),
            self.duration.as_millis(),
            self.requests,
            self.response_bytes,
            self.report.findings.len(),
            by.join(" ")
        )
    }
}

/// Builds the Table API client for the configured instance.
pub fn client(config: &Config, retry: RetryPolicy) -> anyhow::Result<Client> {
    let i = &config.instance;
    Client::new(ClientOptions {
        base_url: i.url.clone(),
        user: i.user.clone(),
        password: i.password.clone(),
        timeout: i.timeout,
        page_size: i.page_size,
        concurrency: i.concurrency,
        retry,
        proxy: i.proxy.clone(),
        extra_ca: i.ca_file.clone(),
    })
}

/// Runs one cycle whose window ends at `now`.
pub async fn check(
    config: &Config,
    client: &Client,
    opts: &CheckOptions,
    now: DateTime<Utc>,
) -> Result<Outcome, ApiError> {
    let started = Instant::now();
    let before = (client.stats().requests(), client.stats().response_bytes());
    let window = Window::ending_at(now, opts.window);
    let snapshot = collect(client, &window).await?;
    let ctx = Context { instance: &config.instance.name, window, messages: config.check.messages };
    let report = evaluate(&snapshot, &ctx);
    Ok(Outcome {
        report,
        requests: client.stats().requests() - before.0,
        response_bytes: client.stats().response_bytes() - before.1,
        duration: started.elapsed(),
    })
}
