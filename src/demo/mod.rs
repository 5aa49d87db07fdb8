//! `midwatch demo`: a complete cycle against a simulated instance inside the process.
//!
//! The simulated instance serves the data set of `wiremock_fixtures/demo/` (the documentation's
//! example users, shifted so that its events fall inside the window ending now) over real HTTP on
//! a loopback port, and the demo runs the same `check` code path a real instance gets.
//!
//! With `--auth oauth_client_credentials` (or `oauth`) or `--auth oauth_password` the demo signs in with OAuth:
//! the simulated instance registers an OAuth client, refuses Basic auth, and serves `/oauth_token.do`.
//!
//! Its state directory and the emails its SMTP server receives (`.eml` files) are in a temporary directory,
//! `midwatch-demo-*` under `$TMPDIR` (else `/tmp`), removed when the demo ends; `--keep` keeps it and says
//! where the emails are, `--keep DIR` saves the emails in DIR instead.
//!
//! The simulated instance and SMTP server are the `midwatch-sim` crate, which the integration tests and the
//! benchmarks run against too; midwatch built without the `demo` feature has neither.

mod watch;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::config::{CheckConfig, Config, EmailConfig, InstanceConfig, LogConfig, LogFormat};
use crate::cycle::{self, CheckOptions, Cycle, Outcome};
use crate::domain::{MessageStyle, Status};
use crate::present::{self, Detail, Format};
use crate::snow::auth::{Credentials, OAuthClient};
use crate::snow::{Client, RetryPolicy};
use midwatch_sim::smtp::SmtpSink;
use midwatch_sim::{Dataset, FakeInstance, OAuthApp};

const USER: &str = "svc.midwatch";
const PASSWORD: &str = "demo-password";
/// The demo's OAuth client (an Application Registry entry of the simulated instance).
const CLIENT_ID: &str = "3f2a8c1e9b7d4e6fa0c5d2b8e1f4a7c9";
const CLIENT_SECRET: &str = "demo-client-secret";

/// How the demo signs in to its simulated instance (`midwatch demo --auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DemoAuth {
    /// Basic auth, user and password on every request.
    #[default]
    Basic,
    /// OAuth client credentials grant (Basic auth refused by the simulated instance).
    #[value(name = "oauth_client_credentials", alias = "oauth")]
    OAuthClientCredentials,
    /// OAuth password grant with a refresh token (Basic auth refused by the simulated instance).
    #[value(name = "oauth_password")]
    OAuthPassword,
}

impl DemoAuth {
    fn credentials(self) -> Credentials {
        let client = || OAuthClient { id: CLIENT_ID.into(), secret: SecretString::from(CLIENT_SECRET) };
        match self {
            DemoAuth::Basic => Credentials::Basic { user: USER.into(), password: SecretString::from(PASSWORD) },
            DemoAuth::OAuthClientCredentials => Credentials::OAuthClientCredentials { client: client() },
            DemoAuth::OAuthPassword => Credentials::OAuthPassword {
                client: client(),
                user: USER.into(),
                password: SecretString::from(PASSWORD),
            },
        }
    }
}

/// The configuration of a check against the simulated instance at `url`.
pub fn demo_config(url: &str) -> anyhow::Result<Config> {
    Ok(Config {
        instance: InstanceConfig {
            url: crate::config::parse_instance_url(url).map_err(anyhow::Error::msg)?,
            name: "demo".into(),
            auth: DemoAuth::Basic.credentials(),
            timeout: std::time::Duration::from_secs(10),
            page_size: 1000,
            concurrency: 4,
            proxy: None,
            ca_file: None,
            batch: true,
            secret_notes: Vec::new(),
        },
        check: CheckConfig {
            window: crate::config::DEFAULT_WINDOW,
            schedule: crate::config::DEFAULT_SCHEDULE.into(),
            messages: MessageStyle::Documented,
            write_issues: true,
            issue_source: crate::snow::query::QueryValue::fixed(crate::config::DEFAULT_ISSUE_SOURCE),
            jitter: std::time::Duration::ZERO,
            timeout: crate::config::DEFAULT_TIMEOUT,
            // mid-frankfurt-01 went Down two minutes ago (restarting): shown as recently down, not judged.
            down_for: std::time::Duration::from_secs(5 * 60),
            early_warnings: true,
        },
        state_directory: std::env::temp_dir().join("midwatch-demo"),
        log: LogConfig { format: LogFormat::Text, level: "warn".into() },
        metrics: crate::config::MetricsConfig::default(),
        email: None,
        alertmanager: None,
        warnings: Vec::new(),
    })
}

/// What becomes of the emails the demo's SMTP server receives (`--keep`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Removed with the temporary directory when the demo ends.
    #[default]
    Nothing,
    /// The temporary directory stays, the emails in it (`--keep`).
    TemporaryDirectory,
    /// The emails are saved in this directory (`--keep DIR`); the temporary directory is removed.
    EmailsIn(PathBuf),
}

impl Keep {
    /// From `--keep [DIR]`.
    pub(crate) fn from_arg(arg: Option<Option<PathBuf>>) -> Keep {
        match arg {
            None => Keep::Nothing,
            Some(None) => Keep::TemporaryDirectory,
            Some(Some(dir)) => Keep::EmailsIn(dir),
        }
    }
}

/// What `midwatch demo` is asked for.
#[derive(Debug, Clone)]
pub(crate) struct Demo {
    pub(crate) format: Format,
    pub(crate) detail: Detail,
    pub(crate) auth: DemoAuth,
    /// The remediation loop (`--until-ok`) instead of the two cycles.
    pub(crate) until_ok: bool,
    pub(crate) keep: Keep,
}

/// Runs the demo's two cycles and prints their report through `out`; the status is the second cycle's. With
/// `--format json` the output is one JSON document, `{"cycles": [<cycle 1>, <cycle 2>]}`, each cycle shaped as
/// `check --format json` prints it. A failure of the demo itself is reported on stderr and is UNKNOWN; an error
/// of `out` (stdout closed) ends the demo at once.
pub(crate) async fn run<E>(demo: Demo, out: impl Fn(&str) -> Result<(), E>) -> Result<Status, E> {
    match cycles(demo, &out).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(e),
        Err(e) => {
            note(&format!("failed: {e:#}"));
            Ok(Status::Unknown)
        }
    }
}

/// A progress line on stderr (stdout carries only the report); a closed stderr is ignored.
fn note(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "midwatch demo: {}", crate::escape::clean(line));
}

/// The simulated instance and SMTP server the demo runs against, and a check's configuration pointing at them.
struct Stage {
    instance: FakeInstance,
    sink: SmtpSink,
    config: Config,
    client: Client,
    opts: CheckOptions,
    /// The temporary directory, removed when the stage is dropped; `None` when `--keep` keeps it.
    temporary: Option<tempfile::TempDir>,
    /// Where the emails are saved, said at the end when they are kept.
    kept: Option<PathBuf>,
}

impl Stage {
    /// Starts the simulated instance (its clock at `now`) and SMTP server, signing in with `auth`.
    async fn start(auth: DemoAuth, now: DateTime<Utc>, keep: &Keep) -> anyhow::Result<Stage> {
        let instance = FakeInstance::start(Dataset::demo(now), USER, PASSWORD).await?;
        instance.set_clock(now);
        note(&format!("simulated instance listening on {}", instance.url()));
        let mut config = demo_config(&instance.url())?;
        if auth != DemoAuth::Basic {
            instance.enable_oauth(OAuthApp::new(CLIENT_ID, CLIENT_SECRET));
            config.instance.auth = auth.credentials();
            note(&format!(
                "signing in with [instance] auth = \"{}\" (the simulated instance refuses Basic auth)",
                config.instance.auth.method()
            ));
        }
        // A state directory of its own, so on_change starts afresh; the received mail is saved in it too.
        let temporary = tempfile::Builder::new().prefix("midwatch-demo-").tempdir()?;
        config.state_directory = temporary.path().to_path_buf();
        let (mail_dir, temporary, kept) = match keep {
            Keep::Nothing => (config.state_directory.join("received-mail"), Some(temporary), None),
            Keep::TemporaryDirectory => {
                let dir = temporary.keep();
                (dir.join("received-mail"), None, Some(dir))
            }
            Keep::EmailsIn(dir) => {
                let dir = std::path::absolute(dir)?;
                (dir.clone(), Some(temporary), Some(dir))
            }
        };
        let sink = SmtpSink::start(Some(mail_dir)).await?;
        let from: lettre::message::Mailbox = "midwatch <midwatch@demo.invalid>".parse()?;
        let to: lettre::message::Mailbox = "MID Server admins <mid-admins@demo.invalid>".parse()?;
        config.email = Some(EmailConfig::loopback(sink.port(), from, vec![to]));
        note(&format!("SMTP server listening on 127.0.0.1:{}", sink.port()));
        let client = cycle::client(&config, RetryPolicy::default())?;
        let opts = CheckOptions::from_config(&config);
        Ok(Stage { instance, sink, config, client, opts, temporary, kept })
    }
}

/// The demo: the stage set, then the two cycles (or the remediation loop), each printed as it ends.
async fn cycles<E>(demo: Demo, out: &impl Fn(&str) -> Result<(), E>) -> anyhow::Result<Result<Status, E>> {
    let now = Utc::now();
    let stage = Stage::start(demo.auth, now, &demo.keep).await?;
    if demo.until_ok {
        return until_ok(&stage, demo, now, out).await;
    }

    // Cycle 1: everything the documentation's examples describe, written to ecc_agent_issue.
    let first = Cycle::new(&stage.config, &stage.client, &stage.opts).check(now).await?;
    if demo.format == Format::Text
        && let Err(e) = out(&first.view(None).render(demo.format, demo.detail))
    {
        return Ok(Err(e));
    }
    note(&format!(
        "cycle 1 made {} HTTP requests ({} response bytes) in {} ms",
        first.requests,
        first.response_bytes,
        first.duration.as_millis()
    ));

    // Between the cycles an administrator unlocks midserver2 and fixes its password, and its MID
    // Server logs in again.
    let later = now + chrono::Duration::minutes(5);
    stage.instance.edit(|tables| midwatch_sim::edits::fix_midserver2(tables, now + chrono::Duration::minutes(2)));
    stage.instance.set_clock(later);

    // Cycle 2: the four remaining findings are counted (count 2); midserver2's record is resolved.
    let second = Cycle::new(&stage.config, &stage.client, &stage.opts).check(later).await?;
    let text = match demo.format {
        Format::Text => second_cycle_text(&second, demo.detail),
        Format::Json => {
            let doc = serde_json::json!({ "cycles": [first.view(None).document(), second.view(None).document()] });
            serde_json::to_string_pretty(&doc)? + "\n"
        }
    };
    if let Err(e) = out(&text) {
        return Ok(Err(e));
    }
    closing_notes(&stage, &second, demo.auth);
    Ok(Ok(second.report.status))
}

/// `--until-ok`: the remediation loop, printed as the watch's outcome.
async fn until_ok<E>(
    stage: &Stage,
    demo: Demo,
    now: DateTime<Utc>,
    out: &impl Fn(&str) -> Result<(), E>,
) -> anyhow::Result<Result<Status, E>> {
    let mut say = crate::watch::say(demo.format);
    let (outcome, watched) = watch::run(&stage.config, &stage.client, &stage.instance, now, &mut say).await?;
    if let Err(e) = out(&outcome.view(Some(&watched)).render(demo.format, demo.detail)) {
        return Ok(Err(e));
    }
    note(&format!("exit status {} ({})", outcome.report.status.exit_code(), outcome.report.status.label()));
    mail_notes(stage);
    Ok(Ok(outcome.report.status))
}

/// The text report of the second cycle: its status, since when each finding is seen, its write-back and email.
fn second_cycle_text(second: &Outcome, detail: Detail) -> String {
    let email = second.email_section();
    // Since when, per finding: the ages the second cycle's records give.
    let seen: String = second
        .report
        .findings
        .iter()
        .filter_map(|f| {
            let h = f.history.as_ref()?;
            Some(format!("  * {}: {}\n", crate::escape::clean(&f.user), present::seen(h, second.report.window.end)))
        })
        .collect();
    format!(
        "\n--- 5 minutes later: midserver2 was unlocked and its MID Server logged in; cycle 2 ---\n{}\n\
         Seen (from midwatch's own ecc_agent_issue records):\n{seen}{}{}",
        present::text::status_line(&crate::escape::clean(&second.report.status_line()), Some(second.duration)),
        present::text::write_back(&second.write_back, detail),
        present::text::email(email.as_ref(), false)
    )
}

/// The second cycle's cost and status, the OAuth token requests of both cycles, and where the emails are saved.
fn closing_notes(stage: &Stage, second: &Outcome, auth: DemoAuth) {
    note(&format!(
        "cycle 2 made {} HTTP requests ({} response bytes) in {} ms; exit status {} ({})",
        second.requests,
        second.response_bytes,
        second.duration.as_millis(),
        second.report.status.exit_code(),
        second.report.status.label()
    ));
    if auth != DemoAuth::Basic {
        let grants: Vec<String> = stage.instance.token_requests().into_iter().map(|(grant, _)| grant).collect();
        note(&format!(
            "{} OAuth token request(s) over both cycles ({}): the token is reused until shortly before it expires",
            grants.len(),
            grants.join(", ")
        ));
    }
    mail_notes(stage);
}

/// Where the emails the demo's SMTP server received are kept, or that they went with the temporary directory.
fn mail_notes(stage: &Stage) {
    let files = stage.sink.saved_files();
    let Some(kept) = &stage.kept else {
        note(&format!(
            "the {} email(s) the demo SMTP server received were removed with its temporary directory; `midwatch demo \
             --keep` keeps them as .eml files",
            files.len()
        ));
        return;
    };
    for file in &files {
        note(&format!("the email received by the demo SMTP server is saved as {}", file.display()));
    }
    if stage.temporary.is_none() {
        note(&format!("kept {} (the state directory and received-mail/): remove it when done", kept.display()));
    }
}
