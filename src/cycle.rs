//! One check cycle: collect → evaluate → report. `check`, `demo` and (later) `run` all call this.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::collect::collect;
use crate::config::Config;
use crate::evaluate::{Context, evaluate};
use crate::model::Window;
use crate::notify::{self, EmailOutcome, Links};
use crate::report::Report;
use crate::snow::{ApiError, Client, ClientOptions, RetryPolicy};
use crate::writeback::{self, Applied, Plan};

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

/// What the write-back step did this cycle.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WriteBack {
    /// `--no-write` or `[check] write_issues = false`.
    Disabled,
    /// `--dry-run`: what would be written.
    DryRun {
        source: String,
        plan: Plan,
    },
    Applied {
        source: String,
        plan: Plan,
        applied: Applied,
    },
    /// The open records could not be read; nothing was written.
    Failed {
        source: String,
        error: String,
    },
}

impl WriteBack {
    /// The record sys_ids by message, for links.
    pub fn issue_ids(&self) -> std::collections::BTreeMap<String, String> {
        match self {
            WriteBack::Applied { applied, .. } => {
                let mut ids = applied.issue_ids();
                for r in &applied.resolved {
                    ids.entry(r.message.clone()).or_insert_with(|| r.sys_id.clone());
                }
                ids
            }
            _ => Default::default(),
        }
    }

    pub fn summary(&self) -> String {
        match self {
            WriteBack::Disabled => "write-back off".into(),
            WriteBack::DryRun { plan, .. } => format!(
                "dry run: would create {}, count {}, resolve {}",
                plan.create.len(),
                plan.count.len(),
                plan.resolve.len()
            ),
            WriteBack::Applied { applied, .. } => format!(
                "records created={} counted={} resolved={} failed={}",
                applied.created.len(),
                applied.counted.len(),
                applied.resolved.len(),
                applied.failed.len()
            ),
            WriteBack::Failed { error, .. } => format!("write-back failed: {error}"),
        }
    }
}

/// What a cycle produced, with what it cost.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub write_back: WriteBack,
    /// `None` when no `[email]` is configured or `--no-email` was given.
    pub email: Option<EmailOutcome>,
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
            "cycle {} in {} ms: {} requests, {} bytes; findings={} [{}]; {}; {}",
            self.report.status.label(),
            self.duration.as_millis(),
            self.requests,
            self.response_bytes,
            self.report.findings.len(),
            by.join(" "),
            self.write_back.summary(),
            self.email.as_ref().map_or_else(|| "email off".to_string(), EmailOutcome::summary)
        )
    }

    /// The report in the requested format, with what the side effects did.
    pub fn render(&self, format: crate::cli::Format, detail: crate::report::text::Detail) -> String {
        match format {
            crate::cli::Format::Text => {
                let mut out = crate::report::text::render(&self.report, detail);
                out.push_str(&render_write_back(&self.write_back, detail));
                out.push_str(&render_email(self.email.as_ref()));
                out
            }
            crate::cli::Format::Json => {
                let extra = serde_json::json!({ "write_back": self.write_back, "email": self.email });
                crate::report::json::render(&self.report, &extra)
            }
        }
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
    let write_back = write_back(config, client, opts, &report, now).await;
    let email = match (&config.email, opts.no_email) {
        (Some(email), false) => {
            let links = Links { instance_url: config.instance.url.clone(), issue_ids: write_back.issue_ids() };
            let mode = if opts.dry_run { notify::Mode::DryRun } else { notify::Mode::Send };
            Some(notify::notify(email, &config.state_directory, &report, &links, mode, now).await)
        }
        _ => None,
    };
    Ok(Outcome {
        report,
        write_back,
        email,
        requests: client.stats().requests() - before.0,
        response_bytes: client.stats().response_bytes() - before.1,
        duration: started.elapsed(),
    })
}

/// Reconciles the findings with the open records of our source and, unless told not to, applies
/// the plan. A failure here never changes the report or the exit status.
async fn write_back(
    config: &Config,
    client: &Client,
    opts: &CheckOptions,
    report: &Report,
    now: DateTime<Utc>,
) -> WriteBack {
    if opts.no_write {
        return WriteBack::Disabled;
    }
    let source = config.check.issue_source.clone();
    let open = match writeback::read_open_records(client, &source).await {
        Ok(open) => open,
        Err(e) => {
            tracing::error!(error = %e, "cannot read ecc_agent_issue; nothing written this cycle");
            return WriteBack::Failed { source, error: e.to_string() };
        }
    };
    let plan = writeback::reconcile(&report.findings, &open, &source, now);
    if opts.dry_run {
        return WriteBack::DryRun { source, plan };
    }
    let applied = writeback::apply(client, &plan, &source, config.instance.batch).await;
    WriteBack::Applied { source, plan, applied }
}

/// The write-back section of the text report.
pub fn render_write_back(w: &WriteBack, detail: crate::report::text::Detail) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let detailed = detail == crate::report::text::Detail::Detailed;
    match w {
        WriteBack::Disabled => {}
        WriteBack::Failed { source, error } => {
            let _ = writeln!(out, "\necc_agent_issue (source {source}): not written: {error}");
        }
        WriteBack::DryRun { source, plan } => {
            let _ = writeln!(
                out,
                "\necc_agent_issue (source {source}), dry run, nothing written: would create {}, count {}, resolve {}",
                plan.create.len(),
                plan.count.len(),
                plan.resolve.len()
            );
            if detailed {
                for c in &plan.create {
                    let _ = writeln!(out, "  would create:   {}", c.message);
                }
                for u in &plan.count {
                    let _ = writeln!(out, "  would count:    {} -> count {}: {}", u.sys_id, u.count, u.message);
                }
                for r in &plan.resolve {
                    let _ = writeln!(out, "  would resolve:  {}: {}", r.sys_id, r.message);
                }
            }
        }
        WriteBack::Applied { source, applied, .. } => {
            let _ = writeln!(
                out,
                "\necc_agent_issue (source {source}): {} created, {} counted, {} resolved{}",
                applied.created.len(),
                applied.counted.len(),
                applied.resolved.len(),
                if applied.failed.is_empty() { String::new() } else { format!(", {} FAILED", applied.failed.len()) }
            );
            if detailed {
                for c in &applied.created {
                    let _ = writeln!(out, "  created   {}: {}", c.sys_id, c.message);
                }
                for c in &applied.counted {
                    let count = c.count.map(|n| format!(" (count {n})")).unwrap_or_default();
                    let _ = writeln!(out, "  counted   {}{count}: {}", c.sys_id, c.message);
                }
                for r in &applied.resolved {
                    let _ = writeln!(out, "  resolved  {}: {}", r.sys_id, r.message);
                }
            }
            for f in &applied.failed {
                let _ = writeln!(out, "  FAILED {} of \"{}\": {}", f.action, f.message, f.error);
            }
        }
    }
    out
}

/// The email section of the text report.
pub fn render_email(email: Option<&EmailOutcome>) -> String {
    use std::fmt::Write as _;
    let Some(email) = email else { return String::new() };
    let mut out = String::new();
    match &email.status {
        notify::EmailStatus::DryRun { subject, recipients, text, .. } => {
            let _ = writeln!(out, "\nEmail (dry run, not sent) to {}", recipients.join(", "));
            let _ = writeln!(out, "  Subject: {subject}");
            for line in text.lines() {
                let _ = writeln!(out, "  | {line}");
            }
        }
        _ => {
            let _ = writeln!(out, "\nEmail: {}", email.summary());
        }
    }
    for p in &email.problems {
        let _ = writeln!(out, "  problem: {p}");
    }
    out
}
