//! Email notifications end to end, against the real `SmtpSink` on loopback: what arrives, when, and what
//! survives outages, refusals and crashes. Plus the rendering snapshots of the documentation's scenario
//! (`tests/snapshots/email_*`; `MIDWATCH_BLESS=1 cargo test --test email` rewrites them). One module per concern.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use lettre::message::Mailbox;
use midwatch::config::{Config, EmailConfig, Environment, SendPolicy, TlsMode};
use midwatch::deadline::Deadline;
use midwatch::domain::MessageStyle;
use midwatch::domain::{
    AccountState, Category, Condition, EventEvidence, Evidence, Finding, FindingKey, MidRef, MissingRoles, Report,
    Status, Summary,
};
use midwatch::domain::{Window, sn_time};
use midwatch::notify::outbox::{NotifiedState, Outbox, OutboxEntry};
use midwatch::notify::{EmailOutcome, EmailStatus, Mode, Notice, notify, probe};
use midwatch::present::email::{self, Delta, Links};
use midwatch_sim::smtp::{ReceivedMessage, SmtpSink, SmtpStage};

mod arrival;
mod config;
mod delivery;
mod policy;
mod size;
mod snapshots;
#[path = "../support/mod.rs"]
mod support;
mod tls;

// ------------------------------------------------------------------------------------------------------------
// Helpers

fn now() -> DateTime<Utc> {
    sn_time::parse("2026-11-22 12:00:00").expect("valid time")
}

fn mailbox(s: &str) -> Mailbox {
    s.parse().expect("valid mailbox")
}

fn email_config(port: u16) -> EmailConfig {
    EmailConfig::loopback(
        port,
        mailbox("midwatch <midwatch@acme.example>"),
        vec![mailbox("Alice <alice@acme.example>"), mailbox("bob@acme.example")],
    )
}

fn links() -> Links {
    Links { instance_url: "https://acme.service-now.com".parse().expect("url"), issue_ids: BTreeMap::new() }
}

fn message_for(user: &str, category: Category) -> String {
    match category {
        Category::Authentication => format!(
            "Login authentication failure for User {user} associated with 1 down MID Server. Check password on MID server."
        ),
        Category::Authorization => format!(
            "Login authorization failure for User {user} associated with 1 down MID Server. Re-assign mid_server role \
             to grant all required roles."
        ),
        Category::Network => {
            format!("User {user} is associated with 1 down MID Server. No login attempts within reporting period.")
        }
        Category::Configuration => format!(
            "User {user} with mid_server role is not associated with a MID Server. No login attempts within reporting \
             period."
        ),
    }
}

fn finding(user: &str, category: Category) -> Finding {
    let condition = match category {
        Category::Authentication => Condition::LoginFailedOnDownMid,
        Category::Authorization => Condition::AuthorizationFailedOnDownMid,
        Category::Network => Condition::NoLoginOnDownMid,
        Category::Configuration => Condition::NoLoginUnassociated,
    };
    let event = (category == Category::Authentication).then(|| EventEvidence {
        sys_id: "e7e70000000000000000000000000001".into(),
        name: midwatch::domain::LoginEventKind::Failed,
        at: now() - TimeDelta::minutes(15),
        ip: Some("10.20.30.41".into()),
        source_mid: None,
    });
    Finding {
        category,
        condition,
        user: user.into(),
        message: message_for(user, category),
        down_mid_servers: if category == Category::Configuration {
            Vec::new()
        } else {
            vec![MidRef {
                sys_id: "ec0a0000000000000000000000000001".into(),
                name: format!("mid-of-{user}"),
                down_since: None,
            }]
        },
        missing_roles: MissingRoles::default(),
        account: AccountState::Active,
        last_login_time: None,
        failed_attempts: None,
        activity: Vec::new(),
        likely_cause: None,
        evidence: Evidence { event, login_history: None },
        sys_domain: "global".into(),
        history: None,
    }
}

fn report(findings: Vec<Finding>) -> Report {
    let mut summary = Summary { findings: findings.len(), ..Summary::default() };
    for f in &findings {
        *summary.findings_by_category.entry(f.category).or_default() += 1;
        *summary.findings_by_condition.entry(f.condition).or_default() += 1;
    }
    let status = if findings.is_empty() { Status::Ok } else { Status::Critical };
    Report {
        instance: "acme".into(),
        window: Window::ending_at(now(), Duration::from_secs(4 * 3600)),
        messages: MessageStyle::Documented,
        status,
        summary,
        findings,
        warnings: Vec::new(),
        observations: Vec::new(),
        id_map: None,
        skipped_users: Vec::new(),
        down_mid_servers: Vec::new(),
        selected_users: None,
        notes: Vec::new(),
        user_ids: BTreeMap::new(),
        unfinished: Vec::new(),
    }
}

/// The rules on what `instance` holds (the demo account), for a 4-hour window ending at the fixtures' reference
/// time, read through the Table API client: a report as a cycle makes it.
async fn evaluated(instance: &midwatch_sim::FakeInstance) -> Report {
    let reference = sn_time::parse(midwatch_sim::REFERENCE_TIME).expect("reference time");
    let config = midwatch::demo::demo_config(&instance.url()).expect("config");
    let client = midwatch::cycle::client(&config, midwatch::snow::RetryPolicy::default()).expect("client");
    let window = Window::ending_at(reference, Duration::from_secs(4 * 3600));
    let snapshot = midwatch::collect::collect(&client, &window, &midwatch::domain::Scope::All).await.expect("collect");
    let ctx = midwatch::evaluate::Context {
        instance: "acme",
        window,
        messages: MessageStyle::Documented,
        down_for: Duration::ZERO,
    };
    midwatch::evaluate::evaluate(&snapshot, &ctx)
}

async fn cycle(cfg: &EmailConfig, dir: &Path, r: &Report, at: DateTime<Utc>) -> EmailOutcome {
    notify(cfg, dir, &Notice { report: r, links: &links(), now: at }, Mode::Send, no_deadline()).await
}

/// A server on loopback that answers every connection at once as an HTTP server answers what it cannot read
/// (`400 Bad Request`), then closes it: what `[email] url` reaches when its port is a web server's.
async fn http_answering_server() -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let serving = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\
                          Connection: close\r\n\r\nBad Request";
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (port, serving)
}

/// A deadline no test reaches: the SMTP timeouts bound these tests.
fn no_deadline() -> Deadline {
    Deadline::after(Duration::from_secs(3600))
}

fn outbox_count(dir: &Path) -> usize {
    Outbox::new(dir).count()
}

/// The message's header block, unfolded.
fn headers(data: &str) -> String {
    let end = data.find("\r\n\r\n").expect("a header/body separator");
    data[..end].replace("\r\n ", " ").replace("\r\n\t", " ")
}

fn header<'a>(headers: &'a str, name: &str) -> Vec<&'a str> {
    headers
        .split("\r\n")
        .filter_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
        .collect()
}

fn decode_qp(s: &str) -> String {
    let bytes = quoted_printable::decode(s, quoted_printable::ParseMode::Robust).expect("quoted-printable body");
    String::from_utf8(bytes).expect("utf-8 body")
}

/// The decoded parts of a multipart message: (content type, body).
fn parts(data: &str) -> Vec<(String, String)> {
    let top = headers(data);
    let ct = header(&top, "Content-Type").first().copied().expect("Content-Type").to_string();
    assert!(ct.starts_with("multipart/alternative"), "top-level type: {ct}");
    let boundary = ct.split("boundary=").nth(1).expect("boundary").trim_matches('"').to_string();
    let mut out = Vec::new();
    for chunk in data.split(&format!("--{boundary}")).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.trim_start_matches("\r\n");
        let (h, body) = chunk.split_once("\r\n\r\n").expect("part headers");
        let h = h.replace("\r\n ", " ");
        let ctype = header(&h, "Content-Type").first().copied().unwrap_or("").to_string();
        let cte = header(&h, "Content-Transfer-Encoding").first().copied().unwrap_or("7bit").to_ascii_lowercase();
        let body = body.trim_end_matches("\r\n");
        let body = if cte == "quoted-printable" { decode_qp(body) } else { body.to_string() };
        out.push((ctype, body.replace("\r\n", "\n")));
    }
    out
}

fn text_and_html(m: &ReceivedMessage) -> (String, String) {
    let p = parts(&m.data);
    let text = p.iter().find(|(t, _)| t.starts_with("text/plain")).map(|(_, b)| b.clone()).expect("text part");
    let html = p.iter().find(|(t, _)| t.starts_with("text/html")).map(|(_, b)| b.clone()).expect("html part");
    (text, html)
}

/// Whitespace (including the text body's line wrapping) collapsed to single spaces.
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn subject(m: &ReceivedMessage) -> String {
    header(&headers(&m.data), "Subject").first().copied().unwrap_or("").to_string()
}

fn message_id(m: &ReceivedMessage) -> String {
    header(&headers(&m.data), "Message-ID").first().copied().unwrap_or("").to_string()
}

/// Logs captured from the tracing macros of the current thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}
