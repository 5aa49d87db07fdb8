//! Email notifications end to end, against the real `SmtpSink` on loopback: what arrives, when, and what
//! survives outages, refusals and crashes. Plus the rendering snapshots of the documentation's scenario
//! (`tests/snapshots/email_*`; `MIDWATCH_BLESS=1 cargo test --test email` rewrites them).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use lettre::message::Mailbox;
use midwatch::config::{Config, Environment};
use midwatch::domain::MessageStyle;
use midwatch::domain::{
    AccountState, Category, Condition, EventEvidence, Evidence, Finding, FindingKey, MidRef, MissingRoles, Report,
    Status, Summary,
};
use midwatch::domain::{Window, sn_time};
use midwatch::notify::outbox::{NotifiedState, Outbox, OutboxEntry};
use midwatch::notify::{EmailConfig, EmailOutcome, EmailStatus, Links, Mode, SendPolicy, TlsMode, notify, probe};
use midwatch::present::email::{self, Delta};
use midwatch_sim::smtp::{ReceivedMessage, SmtpSink, SmtpStage};

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
    Links {
        instance_url: "https://acme.service-now.com".parse().expect("url"),
        issue_ids: BTreeMap::new(),
        user_ids: BTreeMap::new(),
    }
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
        id_map: None,
        skipped_users: Vec::new(),
        down_mid_servers: Vec::new(),
        notes: Vec::new(),
        user_ids: BTreeMap::new(),
    }
}

async fn cycle(cfg: &EmailConfig, dir: &Path, r: &Report, at: DateTime<Utc>) -> EmailOutcome {
    notify(cfg, dir, r, &links(), Mode::Send, at).await
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

// ------------------------------------------------------------------------------------------------------------
// What arrives

#[tokio::test]
async fn the_message_arrives_with_both_alternatives_the_recipients_escaped_html_and_links() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let r = report(vec![
        finding("<script>x</script>", Category::Authentication),
        finding("a&b", Category::Network),
        finding("plain.user", Category::Configuration),
    ]);
    let mut links = links();
    links.issue_ids.insert(message_for("a&b", Category::Network), "ec01000000000000000000000000000a".into());
    links.user_ids.insert("a&b".into(), "b0b0000000000000000000000000000b".into());
    // A sys_id that is not one (a hostile answer) gets no link at all.
    links.user_ids.insert("plain.user".into(), "x^NQuser_name=admin".into());

    let outcome = notify(&cfg, dir.path(), &r, &links, Mode::Send, now()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    assert_eq!(outcome.summary(), "email sent to 2 recipients");

    let got = sink.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.from, "midwatch@acme.example");
    assert_eq!(m.to, vec!["alice@acme.example".to_string(), "bob@acme.example".to_string()]);
    let h = headers(&m.data);
    assert_eq!(subject(m), "[midwatch] CRITICAL acme: 3 MID Server user issues (3 new)");
    assert_eq!(header(&h, "To"), vec!["Alice <alice@acme.example>, bob@acme.example"]);
    assert!(message_id(m).starts_with("<midwatch.20261122T120000Z.") && message_id(m).ends_with("@acme.example>"));
    assert_eq!(header(&h, "Date"), vec!["Sun, 22 Nov 2026 12:00:00 +0000"]);
    assert_eq!(header(&h, "Auto-Submitted"), vec!["auto-generated"]);

    let (text, html) = text_and_html(m);
    // Text: the names as they are, the documented message, remediation, links.
    assert!(flat(&text).contains("Login authentication failure for User <script>x</script> associated"), "{text}");
    assert!(
        text.contains(Category::Authentication.remediation().split(' ').take(6).collect::<Vec<_>>().join(" ").as_str())
    );
    // Links go by sys_id only: no user name or message in a link's query.
    assert!(
        text.contains("https://acme.service-now.com/sys_user.do?sys_id=b0b0000000000000000000000000000b"),
        "{text}"
    );
    assert!(
        text.contains("https://acme.service-now.com/ecc_agent_issue.do?sys_id=ec01000000000000000000000000000a"),
        "{text}"
    );
    assert!(text.contains("https://acme.service-now.com/ecc_agent.do?sys_id=ec0a0000000000000000000000000001"));
    assert!(!text.contains("sysparm_query") && !text.contains("user_name") && !text.contains("NQ"), "{text}");
    assert!(!html.contains("sysparm_query") && !html.contains("user_name="), "{html}");
    for line in text.lines().filter(|l| !l.contains("https://")) {
        assert!(line.chars().count() <= 76, "line longer than 76 columns: {line:?}");
    }
    // HTML: escaped everywhere, links as anchors.
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(html.contains("User a&amp;b is associated with 1 down MID Server."));
    assert!(!html.contains("a&b"), "an unescaped ampersand: {html}");
    assert!(html.contains(
        "<a href=\"https://acme.service-now.com/sys_user.do?sys_id=b0b0000000000000000000000000000b\">user a&amp;b</a>"
    ));
    assert!(
        html.contains("<a href=\"https://acme.service-now.com/ecc_agent.do?sys_id=ec0a0000000000000000000000000001\">")
    );
}

#[tokio::test]
async fn a_user_name_with_crlf_cannot_add_a_header() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let mut evil = report(vec![finding("mid\r\nBcc: evil@x\r\n\r\n", Category::Authentication)]);
    evil.instance = "acme\r\nBcc: evil@x".into();
    let outcome = cycle(&cfg, dir.path(), &evil, now()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.to, vec!["alice@acme.example".to_string(), "bob@acme.example".to_string()], "envelope unchanged");
    let h = headers(&m.data);
    assert!(header(&h, "Bcc").is_empty(), "no Bcc header: {h}");
    assert!(!m.data.contains("\r\nBcc:"), "no line starts with Bcc: anywhere in the message");
    assert!(!h.to_ascii_lowercase().contains("evil@x") || subject(m).contains("Bcc: evil@x"));
    assert!(!subject(m).contains('\r') && !subject(m).contains('\n'));
    let (text, html) = text_and_html(m);
    assert!(flat(&text).contains("User mid\\r\\nBcc: evil@x\\r\\n\\r\\n associated"), "escaped in text: {text}");
    assert!(flat(&text).contains("on acme\\r\\nBcc: evil@x |"), "and the instance name: {text}");
    assert!(html.contains("mid\\r\\nBcc: evil@x"), "escaped in html");
}

#[tokio::test]
async fn the_sink_saves_an_eml_file_when_asked() {
    let save = tempfile::tempdir().expect("tempdir");
    let sink = SmtpSink::start(Some(save.path().join("mail"))).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome =
        cycle(&email_config(sink.port()), dir.path(), &report(vec![finding("u1", Category::Network)]), now()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let files = sink.saved_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let eml = std::fs::read_to_string(&files[0]).expect("eml");
    assert!(eml.contains("Subject: [midwatch] CRITICAL acme: 1 MID Server user issue (1 new)"));
    assert!(eml.contains("Content-Type: multipart/alternative"));
}

// ------------------------------------------------------------------------------------------------------------
// When

#[tokio::test]
async fn on_change_sends_once_for_identical_cycles_and_again_when_a_finding_resolves() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let two = report(vec![finding("u1", Category::Authentication), finding("u2", Category::Network)]);

    let first = cycle(&cfg, dir.path(), &two, now()).await;
    assert!(matches!(first.status, EmailStatus::Sent { .. }), "{first:?}");
    let second = cycle(&cfg, dir.path(), &two, now() + TimeDelta::hours(4)).await;
    assert_eq!(second.status, EmailStatus::NotNeeded { reason: "findings unchanged since the last email".into() });
    assert_eq!(second.summary(), "email not needed (findings unchanged since the last email)");
    assert_eq!(sink.messages().len(), 1, "two identical cycles, one email");

    let one = report(vec![finding("u1", Category::Authentication)]);
    let third = cycle(&cfg, dir.path(), &one, now() + TimeDelta::hours(8)).await;
    assert!(matches!(third.status, EmailStatus::Sent { .. }), "{third:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(subject(&got[1]), "[midwatch] CRITICAL acme: 1 MID Server user issue (1 resolved)");
    let (text, html) = text_and_html(&got[1]);
    let resolved = text.split("RESOLVED (1)").nth(1).expect("a resolved section");
    assert!(resolved.contains("User u2 is associated with 1 down MID Server."), "{text}");
    let open = text.split("STILL OPEN (1)").nth(1).expect("a still open section");
    assert!(open.contains("for User u1"));
    assert!(!text.contains("NEW ("), "nothing new: {text}");
    assert!(flat(&text).contains("0 new, 1 still open, 1 resolved since the last email (2026-11-22 12:00:00 UTC)"));
    assert!(html.contains("Resolved (1)"));

    // Everything resolved: one last "all clear"; then nothing while it stays clear.
    let fourth = cycle(&cfg, dir.path(), &report(Vec::new()), now() + TimeDelta::hours(12)).await;
    assert!(matches!(fourth.status, EmailStatus::Sent { .. }), "{fourth:?}");
    assert_eq!(subject(&sink.messages()[2]), "[midwatch] OK acme: no MID Server user issues (1 resolved)");
    let fifth = cycle(&cfg, dir.path(), &report(Vec::new()), now() + TimeDelta::hours(16)).await;
    assert!(matches!(fifth.status, EmailStatus::NotNeeded { .. }), "{fifth:?}");
    assert_eq!(sink.messages().len(), 3);
}

#[tokio::test]
async fn no_findings_and_nothing_ever_sent_means_no_email() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = cycle(&email_config(sink.port()), dir.path(), &report(Vec::new()), now()).await;
    assert_eq!(outcome.status, EmailStatus::NotNeeded { reason: "no findings".into() });
    assert_eq!(sink.messages().len(), 0);
    assert_eq!(sink.connections(), 0, "no connection at all");
    assert!(NotifiedState::load(dir.path()).expect("readable").is_none());
}

#[tokio::test]
async fn send_always_and_never() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = email_config(sink.port());
    let r = report(vec![finding("u1", Category::Network)]);
    cfg.send = SendPolicy::Always;
    let nothing = cycle(&cfg, dir.path(), &report(Vec::new()), now() - TimeDelta::hours(4)).await;
    assert_eq!(nothing.status, EmailStatus::NotNeeded { reason: "no findings".into() }, "nothing ever to report");
    cycle(&cfg, dir.path(), &r, now()).await;
    let again = cycle(&cfg, dir.path(), &r, now() + TimeDelta::hours(4)).await;
    assert!(matches!(again.status, EmailStatus::Sent { .. }), "{again:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(subject(&got[1]), "[midwatch] CRITICAL acme: 1 MID Server user issue (no change)");
    assert_ne!(message_id(&got[0]), message_id(&got[1]), "every message has its own Message-ID");
    let all_clear = cycle(&cfg, dir.path(), &report(Vec::new()), now() + TimeDelta::hours(6)).await;
    assert!(matches!(all_clear.status, EmailStatus::Sent { .. }), "{all_clear:?}");
    let again = cycle(&cfg, dir.path(), &report(Vec::new()), now() + TimeDelta::hours(7)).await;
    assert!(matches!(again.status, EmailStatus::Sent { .. }), "always, even when all is well: {again:?}");
    assert_eq!(subject(&sink.messages()[3]), "[midwatch] OK acme: no MID Server user issues");

    cfg.send = SendPolicy::Never;
    let never = cycle(&cfg, dir.path(), &r, now() + TimeDelta::hours(8)).await;
    assert_eq!(never.status, EmailStatus::NotNeeded { reason: "send = \"never\"".into() });
    assert_eq!(sink.messages().len(), 4);
}

#[tokio::test]
async fn dry_run_renders_but_sends_queues_and_records_nothing() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let r = report(vec![finding("u1", Category::Network)]);
    let outcome = notify(&cfg, dir.path(), &r, &links(), Mode::DryRun, now()).await;
    match &outcome.status {
        EmailStatus::DryRun { subject, recipients, text, outbox_pending } => {
            assert_eq!(subject, "[midwatch] CRITICAL acme: 1 MID Server user issue (1 new)");
            assert_eq!(recipients, &vec!["alice@acme.example".to_string(), "bob@acme.example".to_string()]);
            assert!(text.contains("User u1 is associated with 1 down MID Server."));
            assert_eq!(*outbox_pending, 0);
        }
        other => panic!("expected a dry run, got {other:?}"),
    }
    assert!(outcome.summary().starts_with("email dry run: would send \"[midwatch] CRITICAL acme"));
    assert_eq!(sink.connections(), 0);
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0, "nothing written to the state directory");
}

// ------------------------------------------------------------------------------------------------------------
// Never lost, never twice

#[tokio::test]
async fn a_451_keeps_the_message_in_the_outbox_and_the_next_cycle_delivers_it_exactly_once() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let r = report(vec![finding("u1", Category::Authentication)]);

    sink.set_reply(SmtpStage::Rcpt, None, 451, "4.3.0 mailbox temporarily unavailable");
    let first = cycle(&cfg, dir.path(), &r, now()).await;
    match &first.status {
        EmailStatus::Queued { queued_for, reason, .. } => {
            assert_eq!(queued_for.len(), 2);
            assert!(reason.contains("451"), "{reason}");
        }
        other => panic!("expected queued, got {other:?}"),
    }
    assert!(first.summary().starts_with("email queued ("), "{}", first.summary());
    assert_eq!(first.outbox_pending, 1);
    assert_eq!(outbox_count(dir.path()), 1);
    assert_eq!(sink.messages().len(), 0);

    // Same findings next cycle: nothing new to compose (on_change), but the queued one goes out.
    sink.clear_replies();
    let second = cycle(&cfg, dir.path(), &r, now() + TimeDelta::hours(4)).await;
    assert!(matches!(second.status, EmailStatus::NotNeeded { .. }), "{second:?}");
    assert_eq!(second.outbox_delivered, 1);
    assert_eq!(second.outbox_pending, 0);
    assert!(second.summary().contains("1 earlier email from the outbox delivered"), "{}", second.summary());
    assert_eq!(outbox_count(dir.path()), 0);
    let third = cycle(&cfg, dir.path(), &r, now() + TimeDelta::hours(8)).await;
    assert!(matches!(third.status, EmailStatus::NotNeeded { .. }));
    let got = sink.messages();
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(got[0].to.len(), 2);
}

#[tokio::test]
async fn a_451_after_the_data_and_for_one_recipient_only() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let r = report(vec![finding("u1", Category::Authentication)]);

    sink.set_reply(SmtpStage::EndOfData, None, 451, "4.3.0 queue full");
    let first = cycle(&cfg, dir.path(), &r, now()).await;
    assert!(matches!(first.status, EmailStatus::Queued { .. }), "{first:?}");
    sink.clear_replies();
    sink.set_reply(SmtpStage::Rcpt, Some("bob@acme.example"), 452, "4.2.2 mailbox full");
    let second = cycle(&cfg, dir.path(), &r, now() + TimeDelta::hours(4)).await;
    assert_eq!(second.outbox_delivered, 0, "bob is still owed it");
    assert_eq!(second.outbox_pending, 1);
    sink.clear_replies();
    let third = cycle(&cfg, dir.path(), &r, now() + TimeDelta::hours(8)).await;
    assert_eq!(third.outbox_delivered, 1);
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].to, vec!["alice@acme.example".to_string()]);
    assert_eq!(got[1].to, vec!["bob@acme.example".to_string()]);
    assert_eq!(message_id(&got[0]), message_id(&got[1]), "one message, delivered in two parts");
}

#[tokio::test]
async fn no_server_listening_keeps_the_message_and_the_next_cycle_delivers_it_exactly_once() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let r = report(vec![finding("u1", Category::Network), finding("u2", Category::Authorization)]);

    let first = cycle(&email_config(port), dir.path(), &r, now()).await;
    match &first.status {
        EmailStatus::Queued { reason, .. } => assert!(reason.starts_with("smtp down: "), "{reason}"),
        other => panic!("expected queued, got {other:?}"),
    }
    assert!(first.summary().starts_with("email queued (smtp down: "), "{}", first.summary());
    assert_eq!(outbox_count(dir.path()), 1);
    // A different finding set while the server is still down: a second message queues behind the first.
    let r2 = report(vec![finding("u1", Category::Network)]);
    let second = cycle(&email_config(port), dir.path(), &r2, now() + TimeDelta::hours(4)).await;
    assert!(matches!(second.status, EmailStatus::Queued { .. }), "{second:?}");
    assert_eq!(outbox_count(dir.path()), 2);

    let sink = SmtpSink::start(None).await.expect("sink");
    let third = cycle(&email_config(sink.port()), dir.path(), &r2, now() + TimeDelta::hours(8)).await;
    assert!(matches!(third.status, EmailStatus::NotNeeded { .. }), "{third:?}");
    assert_eq!(third.outbox_delivered, 2);
    assert_eq!(outbox_count(dir.path()), 0);
    let fourth = cycle(&email_config(sink.port()), dir.path(), &r2, now() + TimeDelta::hours(12)).await;
    assert!(matches!(fourth.status, EmailStatus::NotNeeded { .. }));
    let got = sink.messages();
    assert_eq!(got.len(), 2, "each queued message exactly once");
    assert_eq!(subject(&got[0]), "[midwatch] CRITICAL acme: 2 MID Server user issues (2 new)", "oldest first");
    assert_eq!(subject(&got[1]), "[midwatch] CRITICAL acme: 1 MID Server user issue (1 resolved)");
    assert_eq!(sink.connections(), 1, "one connection for the whole outbox");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_the_message_stays_queued() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = email_config(port);
    cfg.timeout = Duration::from_secs(1);
    let r = report(vec![finding("u1", Category::Network)]);
    let started = std::time::Instant::now();
    let first = cycle(&cfg, dir.path(), &r, now()).await;
    assert!(started.elapsed() < Duration::from_secs(5), "bounded by the timeout: {:?}", started.elapsed());
    match &first.status {
        EmailStatus::Queued { reason, .. } => assert!(reason.contains("within 1s"), "{reason}"),
        other => panic!("expected queued, got {other:?}"),
    }
    silent.abort();

    let sink = SmtpSink::start(None).await.expect("sink");
    let second = cycle(&email_config(sink.port()), dir.path(), &r, now() + TimeDelta::hours(4)).await;
    assert_eq!(second.outbox_delivered, 1);
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn the_outcome_serializes_for_the_json_report() {
    let outcome = EmailOutcome {
        status: EmailStatus::Queued {
            message_id: "<m@x>".into(),
            subject: "s".into(),
            reason: "smtp down: refused".into(),
            delivered_to: Vec::new(),
            queued_for: vec!["a@x".into()],
        },
        outbox_delivered: 0,
        outbox_pending: 1,
        permanent_failures: Vec::new(),
        problems: Vec::new(),
    };
    let json = serde_json::to_value(&outcome).expect("serializes");
    assert_eq!(json["result"], "queued");
    assert_eq!(json["reason"], "smtp down: refused");
    assert_eq!(json["outbox_pending"], 1);
    assert_eq!(outcome.summary(), "email queued (smtp down: refused)");
}

#[tokio::test]
async fn a_550_for_one_recipient_is_logged_and_does_not_block_the_next_message() {
    let (logs, _guard) = capture_logs();
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());

    sink.set_reply(SmtpStage::Rcpt, Some("bob@acme.example"), 550, "5.1.1 <bob@acme.example>: no such user");
    let first = cycle(&cfg, dir.path(), &report(vec![finding("u1", Category::Network)]), now()).await;
    match &first.status {
        EmailStatus::Rejected { delivered_to, .. } => assert_eq!(delivered_to, &vec!["alice@acme.example".to_string()]),
        other => panic!("expected a partial rejection, got {other:?}"),
    }
    assert_eq!(first.permanent_failures.len(), 1);
    assert_eq!(first.permanent_failures[0].recipient, "bob@acme.example");
    assert_eq!(first.permanent_failures[0].reply, "550 5.1.1 <bob@acme.example>: no such user");
    assert!(first.summary().contains("1 recipient refused permanently"), "{}", first.summary());
    assert_eq!(outbox_count(dir.path()), 0, "nothing left to retry");
    let log = logs.text();
    let line = log.lines().find(|l| l.contains("ERROR")).unwrap_or_else(|| panic!("an error is logged: {log}"));
    assert!(line.contains("bob@acme.example") && line.contains("550 5.1.1"), "{line}");

    // The next message goes out normally, to both once bob exists again.
    sink.clear_replies();
    let second =
        cycle(&cfg, dir.path(), &report(vec![finding("u2", Category::Network)]), now() + TimeDelta::hours(4)).await;
    assert!(matches!(second.status, EmailStatus::Sent { .. }), "{second:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].to, vec!["alice@acme.example".to_string()]);
    assert_eq!(got[1].to.len(), 2);

    // Every recipient refused: the message is dropped, later mail still flows.
    sink.set_reply(SmtpStage::Mail, None, 553, "5.7.1 sender rejected");
    let third =
        cycle(&cfg, dir.path(), &report(vec![finding("u3", Category::Network)]), now() + TimeDelta::hours(8)).await;
    assert!(
        matches!(third.status, EmailStatus::Rejected { ref delivered_to, .. } if delivered_to.is_empty()),
        "{third:?}"
    );
    assert_eq!(third.summary(), "email refused permanently for every recipient; 2 recipients refused permanently");
    assert_eq!(outbox_count(dir.path()), 0);
}

#[tokio::test]
async fn a_crash_after_the_data_sends_the_message_again_at_most_once() {
    let (logs, _guard) = capture_logs();
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let r = report(vec![finding("u1", Category::Authentication)]);

    // The server takes the message and the connection dies before its answer: as if midwatch had crashed
    // between the server's 250 and the removal from the outbox.
    sink.set_reply(SmtpStage::EndOfData, None, 0, "");
    let first = cycle(&cfg, dir.path(), &r, now()).await;
    assert!(matches!(first.status, EmailStatus::Queued { .. }), "{first:?}");
    let (entries, _) = Outbox::new(dir.path()).load();
    assert_eq!(entries.len(), 1);
    let marker = entries[0].sending.as_ref().expect("the sending marker survives");
    assert_eq!(marker.recipients.len(), 2);
    assert_eq!(sink.messages().len(), 1, "the server has it");

    sink.clear_replies();
    let second = cycle(&cfg, dir.path(), &r, now() + TimeDelta::hours(4)).await;
    assert_eq!(second.outbox_delivered, 1);
    assert!(logs.text().contains("may get it twice"), "the possible duplicate is logged");
    for later in 1..=3 {
        cycle(&cfg, dir.path(), &r, now() + TimeDelta::hours(4 + 4 * later)).await;
    }
    let got = sink.messages();
    assert_eq!(got.len(), 2, "one duplicate at most");
    assert_eq!(got[0].data, got[1].data, "byte for byte the same message, same Message-ID");
    assert_eq!(outbox_count(dir.path()), 0);
}

#[tokio::test]
async fn a_crash_leaving_only_the_outbox_file_is_delivered_once_by_the_next_cycle() {
    // Simulates a process that queued a message and died before any SMTP: the file alone must be enough.
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let r = report(vec![finding("u1", Category::Network)]);
    cycle(&email_config(port), dir.path(), &r, now()).await;
    let (entries, problems): (Vec<OutboxEntry>, _) = Outbox::new(dir.path()).load();
    assert!(problems.is_empty());
    assert_eq!(entries.len(), 1);
    assert!(entries[0].sending.is_none(), "no marker: the data was never sent");
    assert_eq!(entries[0].recipients.len(), 2);
    assert!(entries[0].message.contains("Subject: [midwatch] CRITICAL acme"));

    // A stray temp file from a torn write and a corrupt entry never block the outbox.
    let outbox = Outbox::new(dir.path());
    std::fs::write(outbox.dir().join(".00000001-x.json.tmp-1-1"), b"{").expect("write");
    std::fs::write(outbox.dir().join("00000000-corrupt.json"), b"{ not json").expect("write");

    let sink = SmtpSink::start(None).await.expect("sink");
    let next = cycle(&email_config(sink.port()), dir.path(), &r, now() + TimeDelta::hours(4)).await;
    assert_eq!(next.outbox_delivered, 1, "{next:?}");
    assert_eq!(next.problems.len(), 1, "the corrupt file is reported: {:?}", next.problems);
    assert!(outbox.dir().join("00000000-corrupt.bad").exists(), "and moved aside");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn the_state_file_records_the_findings_and_their_digest() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let r = report(vec![finding("u2", Category::Network), finding("u1", Category::Authentication)]);
    let outcome = cycle(&email_config(sink.port()), dir.path(), &r, now()).await;
    let EmailStatus::Sent { message_id: sent_id, .. } = &outcome.status else { panic!("{outcome:?}") };
    let state = NotifiedState::load(dir.path()).expect("readable").expect("written");
    assert_eq!(&state.message_id, sent_id);
    assert_eq!(state.notified_at, now());
    assert_eq!(state.findings.len(), 2);
    assert_eq!(state.findings[0].user, "u1", "sorted");
    assert_eq!(state.digest.len(), 64);
    assert_eq!(state.digest, midwatch::notify::outbox::digest(&FindingKey::of_report(&r)));
    // Nothing left behind but the state and an empty outbox.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["email-state.json".to_string(), "outbox".to_string()]);
}

// ------------------------------------------------------------------------------------------------------------
// Configuration and probe

struct Env(BTreeMap<String, String>);

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        self.0.get(&path.display().to_string()).cloned().ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }
}

const INSTANCE: &str = r#"
[instance]
url = "https://acme.service-now.com"
user = "midwatch"
password = "x"
"#;

fn parse(email: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    let env = Env(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    Config::parse("test.toml", &format!("{INSTANCE}\n[email]\n{email}"), &env).map_err(|e| e.to_string())
}

#[test]
fn email_config_defaults_and_credentials() {
    let c = parse(
        r#"
url = "smtp://smtp.acme.com:587"
user = "midwatch@acme.com"
password_file = "/run/smtp"
from = "midwatch <midwatch@acme.com>"
to = "admins@acme.com"
"#,
        &[("/run/smtp", "hunter2\n")],
    )
    .expect("valid");
    let e = c.email.expect("an [email] section");
    assert_eq!((e.host.as_str(), e.port, e.tls), ("smtp.acme.com", 587, TlsMode::Required));
    assert_eq!(e.timeout, Duration::from_secs(30));
    assert_eq!(e.send, SendPolicy::OnChange);
    assert_eq!(e.to.len(), 1);
    let creds = e.credentials.as_ref().expect("credentials");
    assert_eq!(secrecy::ExposeSecret::expose_secret(&creds.password), "hunter2");
    assert!(!format!("{e:?}").contains("hunter2"), "no secret in Debug output");

    let s = parse("url = \"smtps://mail.acme.com\"\nfrom = \"a@acme.com\"\nto = [\"b@acme.com\", \"B@acme.com\"]", &[])
        .expect("valid")
        .email
        .expect("email");
    assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
    assert_eq!(s.to.len(), 1, "duplicates dropped");
    assert_eq!(s.server_url(), "smtps://mail.acme.com:465");

    let l = parse("url = \"smtp://localhost:2525\"\ntls = \"none\"\nfrom = \"a@x.org\"\nto = [\"b@x.org\"]", &[])
        .expect("valid")
        .email
        .expect("email");
    assert_eq!((l.port, l.tls), (2525, TlsMode::None));
    assert!(Config::parse("t", INSTANCE, &Env(BTreeMap::new())).expect("valid").email.is_none());
}

#[test]
fn every_invalid_email_value_is_named_with_its_key() {
    let err = parse(
        r#"
url = "smtp://smtp.acme.com"
tls = "none"
password_env = "SMTP_PASSWORD"
from = "not an address"
to = ["ok@acme.com", "broken@"]
timeout = "forever"
send = "sometimes"
"#,
        &[],
    )
    .expect_err("invalid");
    for needle in [
        "[email] tls = \"none\" sends mail (and any password) in clear, so it is accepted only for loopback hosts",
        "[email] a password is set but [email] user is not",
        "[email] from = \"not an address\" is not a valid address",
        "[email] to[1] = \"broken@\" is not a valid address",
        "[email] timeout = \"forever\" is not a duration",
        "[email] send = \"sometimes\": expected \"on_change\", \"always\" or \"never\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let err = parse("tls = \"fancy\"\nto = []", &[]).expect_err("invalid");
    for needle in ["[email] url is required", "[email] from is required", "[email] to needs at least one address"] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let err = parse("url = \"smtps://m.acme.com\"\ntls = \"none\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"", &[])
        .expect_err("invalid");
    assert!(err.contains("[email] tls = \"none\" does not apply to smtps://"), "{err}");
    let err = parse("url = \"smtp://u:p@m.acme.com\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"", &[]).expect_err("x");
    assert!(err.contains("[email] url must not contain credentials"), "{err}");
    assert!(!err.contains(":p@"), "the password in the URL is not echoed: {err}");
    let err = parse("url = \"http://m.acme.com\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"", &[]).expect_err("x");
    assert!(err.contains("has scheme http"), "{err}");
    let err = parse(
        "url = \"smtp://m.acme.com\"\nuser = \"u\"\npassword_env = \"NOPE\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"",
        &[],
    )
    .expect_err("x");
    assert!(err.contains("[email] password_env names the environment variable NOPE"), "{err}");
    let err = parse("url = \"smtp://m.acme.com\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"\nport = 25", &[])
        .expect_err("unknown key");
    assert!(err.contains("port"), "{err}");
}

#[tokio::test]
async fn probe_connects_and_checks_sender_and_recipients_without_sending() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let mut cfg = email_config(sink.port());
    assert_eq!(probe(&cfg).await, Vec::<String>::new());
    sink.set_reply(SmtpStage::Rcpt, Some("bob@acme.example"), 550, "5.1.1 no such user");
    let problems = probe(&cfg).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("[email] to bob@acme.example") && problems[0].contains("550 5.1.1"), "{problems:?}");
    sink.clear_replies();
    assert_eq!(sink.messages().len(), 0, "the probe sends no mail");

    // Credentials over the loopback plaintext connection (the sink accepts any).
    cfg.credentials = Some(midwatch::notify::SmtpCredentials {
        user: "midwatch".into(),
        password: secrecy::SecretString::from("pw"),
    });
    assert_eq!(probe(&cfg).await, Vec::<String>::new());

    cfg.tls = TlsMode::Required;
    let problems = probe(&cfg).await;
    assert!(problems.iter().any(|p| p.contains("does not offer STARTTLS")), "{problems:?}");
    cfg.tls = TlsMode::Opportunistic;
    let problems = probe(&cfg).await;
    assert!(problems.iter().any(|p| p.contains("refusing to send the password in clear")), "{problems:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let problems = probe(&email_config(port)).await;
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with(&format!("[email] smtp://127.0.0.1:{port}: ")), "{problems:?}");
}

#[tokio::test]
async fn a_second_process_holding_the_state_directory_skips_the_cycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    // pid 1 always exists on Linux and is never this test.
    let mut f = std::fs::File::create(dir.path().join("email.lock")).expect("lock");
    writeln!(f, "1").expect("write");
    let sink = SmtpSink::start(None).await.expect("sink");
    let outcome =
        cycle(&email_config(sink.port()), dir.path(), &report(vec![finding("u", Category::Network)]), now()).await;
    if Path::new("/proc/1").exists() {
        assert!(matches!(outcome.status, EmailStatus::Skipped { .. }), "{outcome:?}");
        assert_eq!(sink.messages().len(), 0);
    }
    // A stale lock (a pid that no longer exists) is taken over.
    std::fs::write(dir.path().join("email.lock"), format!("{}\n", u32::MAX - 1)).expect("write");
    let outcome =
        cycle(&email_config(sink.port()), dir.path(), &report(vec![finding("u", Category::Network)]), now()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    assert!(!dir.path().join("email.lock").exists(), "released");
}

// ------------------------------------------------------------------------------------------------------------
// Rendering snapshots of the documentation's scenario (the demo data set)

/// The demo data set at its reference time, through the simulated instance, the Table API client and the rules.
async fn documented_scenario() -> Report {
    let reference = sn_time::parse(midwatch_sim::REFERENCE_TIME).expect("reference time");
    let dataset = midwatch_sim::Dataset::demo(reference);
    let instance = midwatch_sim::FakeInstance::start(dataset, "svc.midwatch", "demo-password").await.expect("instance");
    let config = midwatch::demo::demo_config(&instance.url()).expect("config");
    let client = midwatch::cycle::client(&config, midwatch::snow::RetryPolicy::default()).expect("client");
    let window = Window::ending_at(reference, Duration::from_secs(4 * 3600));
    let snapshot = midwatch::collect::collect(&client, &window).await.expect("collect");
    let ctx = midwatch::evaluate::Context {
        instance: "acme",
        window,
        messages: MessageStyle::Documented,
        down_for: Duration::ZERO,
    };
    midwatch::evaluate::evaluate(&snapshot, &ctx)
}

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("snapshots").join(name)
}

fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_path(name);
    if std::env::var_os("MIDWATCH_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with MIDWATCH_BLESS=1 to create it", path.display()));
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(a, b)| a != b);
        panic!(
            "{} differs from the rendering (first differing line {:?}); run with MIDWATCH_BLESS=1 to accept.\n\
             --- actual ---\n{actual}",
            path.display(),
            first.map(|i| i + 1)
        );
    }
}

fn scenario_links(report: &Report) -> Links {
    let mut links = links();
    links.user_ids = report.user_ids.clone();
    // Write-back knows some record ids; the others link to the filtered list.
    for (i, f) in report.findings.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        links.issue_ids.insert(f.message.clone(), format!("ec01{:028x}", i + 1));
    }
    links
}

#[tokio::test]
async fn rendering_snapshot_of_the_first_email_of_the_documented_scenario() {
    let report = documented_scenario().await;
    assert!(report.findings.len() >= 4, "the scenario has findings in several categories: {:?}", report.findings);
    let delta = midwatch::notify::changes(&report, None);
    let email = email::render(&report, &delta, &scenario_links(&report), now());
    assert_snapshot("email_first.subject.txt", &format!("{}\n", email.subject));
    assert_snapshot("email_first.txt", &email.text);
    assert_snapshot("email_first.html", &email.html);
    // Deterministic given now.
    let again = email::render(&report, &midwatch::notify::changes(&report, None), &scenario_links(&report), now());
    assert_eq!(email, again);
}

#[tokio::test]
async fn rendering_snapshot_of_a_later_email_with_new_still_open_and_resolved_findings() {
    let mut report = documented_scenario().await;
    // Since when, as write-back's read of ecc_agent_issue gives it: the first finding is back after being
    // resolved, the others have been open for a while.
    let end = report.window.end;
    for (i, f) in report.findings.iter_mut().enumerate() {
        f.history = Some(match i {
            0 => midwatch::domain::FindingHistory {
                first_detected: end,
                times_detected: 1,
                resolved_before: Some(end - TimeDelta::days(2)),
            },
            i => midwatch::domain::FindingHistory {
                first_detected: end - TimeDelta::hours(4 * 18 * i as i64),
                times_detected: 1 + 18 * i as u64,
                resolved_before: None,
            },
        });
    }
    // The last email knew every finding but the first, plus one that has since been fixed.
    let mut previous: Vec<FindingKey> =
        FindingKey::of_report(&report).into_iter().filter(|f| f.message != report.findings[0].message).collect();
    previous.push(FindingKey {
        user: "mid.oslo".into(),
        category: Category::Network,
        message: "User mid.oslo is associated with 1 down MID Server. No login attempts within reporting period."
            .into(),
    });
    let delta = Delta::against(&report, &previous, Some(now() - TimeDelta::hours(4)));
    assert_eq!(delta.new.len(), 1);
    assert_eq!(delta.resolved.len(), 1);
    let email = email::render(&report, &delta, &scenario_links(&report), now());
    assert_snapshot("email_changes.subject.txt", &format!("{}\n", email.subject));
    assert_snapshot("email_changes.txt", &email.text);
    assert_snapshot("email_changes.html", &email.html);
}

#[test]
fn text_wraps_at_76_columns_without_breaking_words() {
    let w = email::wrap("one two three four five six seven", "  * ", "    ", 16);
    assert_eq!(w, "  * one two\n    three four\n    five six\n    seven\n");
    let long = email::wrap("see https://acme.service-now.com/a/very/long/path/that/does/not/fit", "", "  ", 20);
    assert_eq!(long, "see\n  https://acme.service-now.com/a/very/long/path/that/does/not/fit\n");
}

#[test]
fn the_futures_can_be_spawned_on_a_multi_thread_runtime() {
    fn assert_send<T: Send>(_: &T) {}
    let cfg = email_config(25);
    let r = report(Vec::new());
    let links = links();
    let dir = PathBuf::from("/nonexistent");
    let fut = notify(&cfg, &dir, &r, &links, Mode::Send, now());
    assert_send(&fut);
    let probe = probe(&cfg);
    assert_send(&probe);
}

#[tokio::test]
async fn the_state_directory_and_its_outbox_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("var").join("midwatch");
    // No server listens here: the message stays in the outbox, which must exist now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let outcome = cycle(&email_config(port), &state, &report(vec![finding("u", Category::Network)]), now()).await;
    assert!(matches!(outcome.status, EmailStatus::Queued { .. }), "{outcome:?}");
    for d in [dir.path().join("var"), state.clone(), state.join("outbox")] {
        let mode = std::fs::metadata(&d).expect("created").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
}
