//! The size of an email: the biggest incident's email is never the one a relay refuses (`[email] max_size`,
//! `SIZE=`, the short form after a 552).

use super::*;

/// Postfix's default `message_size_limit`.
const POSTFIX_LIMIT: usize = 10_240_000;

/// The default `[email] max_size`.
const ONE_MB: usize = 1_000_000;

const CATEGORIES: [Category; 4] =
    [Category::Authentication, Category::Authorization, Category::Network, Category::Configuration];

/// The category as the table shows it.
fn name(c: Category) -> String {
    format!("{c:?}").to_lowercase()
}

/// A finding with the detail a real one carries (about 3.8 kB): two down MID Servers with when they went silent, since
/// when midwatch has seen it, the likely cause, and the missing roles of an authorization failure.
fn detailed(i: usize) -> Finding {
    let category = CATEGORIES[i % CATEGORIES.len()];
    let user = format!("mid.user{i:04}");
    let mut f = finding(&user, category);
    if category != Category::Configuration {
        f.down_mid_servers = (0..2)
            .map(|m| MidRef {
                sys_id: format!("ec0a{i:024x}{m:04x}"),
                name: format!("mid-dc2-rack{:02}-{i:04}-{m}", i % 40),
                down_since: Some(now() - TimeDelta::minutes(95)),
            })
            .collect();
    }
    if category == Category::Authorization {
        f.missing_roles = MissingRoles {
            from_event: vec!["soap_script".into(), "soap_ecc".into()],
            from_role_containment: vec!["soap_script".into(), "soap_ecc".into(), "import_transformer".into()],
        };
    }
    f.likely_cause = Some(format!(
        "Every MID Server of {user} in data centre DC2 went silent within the same minute: a data-centre outage \
         rather than a credential problem."
    ));
    f.history = Some(midwatch::domain::FindingHistory {
        first_detected: now() - TimeDelta::hours(2),
        times_detected: 2,
        resolved_before: None,
    });
    f
}

/// `n` detailed findings over the four categories, each user's and issue record's sys_id known (write-back on).
fn incident(n: usize) -> (Report, Links) {
    let mut r = report((0..n).map(detailed).collect());
    let mut links = links();
    for (i, f) in r.findings.iter().enumerate() {
        r.user_ids.insert(f.user.clone(), format!("0a1b{i:028x}"));
        links.issue_ids.insert(f.message.clone(), format!("ec01{i:028x}"));
    }
    (r, links)
}

async fn send(cfg: &EmailConfig, dir: &Path, r: &Report, links: &Links) -> EmailOutcome {
    notify(cfg, dir, &Notice { report: r, links, now: now() }, Mode::Send, no_deadline()).await
}

/// What every form of the email keeps: the table, every finding's message, and the full detail of the first
/// finding of each category; `more` says whether it must say how many more there are and where to see them.
fn assert_keeps_what_matters(m: &ReceivedMessage, r: &Report, more: bool) {
    let (text, html) = text_and_html(m);
    let (flat_text, flat_html) = (flat(&text), flat(&html));
    assert!(text.contains("At a glance:"), "the table");
    assert!(html.contains("At a glance</h3>"), "the table");
    for c in CATEGORIES {
        let n = r.findings.iter().filter(|f| f.category == c).count();
        assert!(flat_text.contains(&format!("{} {n} {n} ", name(c))), "{} row of the table", name(c));
    }
    for f in &r.findings {
        assert!(flat_text.contains(&f.message), "the text body keeps {:?}", f.message);
        assert!(flat_html.contains(&f.message), "the HTML body keeps {:?}", f.message);
    }
    for c in CATEGORIES {
        let first = r.findings.iter().find(|f| f.category == c).expect("a finding of each category");
        let cause = first.likely_cause.as_deref().expect("a likely cause");
        let after = flat_text.split(first.message.as_str()).nth(1).expect("the first finding's message");
        let block = after.split(" * ").next().unwrap_or_default();
        assert!(block.contains("Seen: "), "the full detail of the first {}: {block:.300}", name(c));
        assert!(block.contains(&flat(cause)), "the first {}'s likely cause", name(c));
    }
    let says_more = flat_text.contains("midwatch check --format json") && flat_text.contains("more ");
    assert_eq!(says_more, more, "says how many more and where to see them: {}", &flat_text[..2000]);
    if more {
        assert!(flat_html.contains("midwatch check --format json"));
        assert!(flat_text.contains("https://acme.service-now.com/ecc_agent_issue_list.do"));
    }
}

#[tokio::test]
async fn three_thousand_findings_through_a_relay_of_postfix_s_default_limit_arrive_as_one_email_within_max_size() {
    let sink = SmtpSink::start(None).await.expect("sink");
    sink.set_size_limit(POSTFIX_LIMIT, Some(POSTFIX_LIMIT));
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let (r, links) = incident(3000);
    let full = email::render(&r, &midwatch::notify::changes(&r, None), &links, now());
    let per_finding = (full.text.len() + full.html.len()) / r.findings.len();

    println!(
        "3,000 findings: the full rendering is {} bytes ({per_finding} bytes a finding, text and HTML)",
        full.text.len() + full.html.len()
    );
    let outcome = send(&cfg, dir.path(), &r, &links).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    let size = got[0].data.len();
    println!("3,000 findings: the email sent is {size} bytes (max_size {ONE_MB}, the relay's limit {POSTFIX_LIMIT})");
    assert!(full.text.len() + full.html.len() > POSTFIX_LIMIT, "the full email would be over Postfix's limit");
    assert!(size <= ONE_MB, "{size} bytes");
    assert_eq!(subject(&got[0]), "[midwatch] CRITICAL acme: 3000 MID Server user issues (3000 new)");
    assert_keeps_what_matters(&got[0], &r, true);
    assert_eq!(outbox_count(dir.path()), 0);
}

#[tokio::test]
async fn mail_from_announces_the_size_where_the_relay_offers_size_and_only_there() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let r = report(vec![finding("u1", Category::Authentication)]);
    let outcome = send(&cfg, dir.path(), &r, &links()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let size = sink.messages()[0].data.len();
    let mail = sink.mail_commands();
    assert_eq!(mail.len(), 1);
    let announced: usize = mail[0]
        .split_whitespace()
        .find_map(|p| p.strip_prefix("SIZE="))
        .unwrap_or_else(|| panic!("MAIL FROM without SIZE=: {}", mail[0]))
        .parse()
        .expect("a number");
    // RFC 1870: the size of the message with CRLF line ends, as received (dot-stuffing aside).
    assert_eq!(announced, size, "SIZE={announced} for {size} bytes");

    let quiet = SmtpSink::start(None).await.expect("sink");
    quiet.set_size_limit(POSTFIX_LIMIT, None);
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = send(&email_config(quiet.port()), dir.path(), &r, &links()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let mail = quiet.mail_commands();
    assert!(!mail[0].contains("SIZE="), "no SIZE extension offered, no SIZE= parameter: {}", mail[0]);
}

#[tokio::test]
async fn a_relay_refusing_for_size_a_message_within_max_size_gets_the_short_form_not_a_dropped_notification() {
    let sink = SmtpSink::start(None).await.expect("sink");
    // The relay offers no SIZE and takes 300 kB: midwatch cannot know before it tries.
    sink.set_size_limit(300_000, None);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let (r, links) = incident(160);
    let full = email::render(&r, &midwatch::notify::changes(&r, None), &links, now());
    assert!((300_000..ONE_MB).contains(&(full.text.len() + full.html.len())), "within max_size, over the relay's");

    let outcome = send(&cfg, dir.path(), &r, &links).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    assert!(outcome.permanent_failures.is_empty(), "{outcome:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 1, "the short form, once");
    assert!(got[0].data.len() <= 300_000, "{} bytes", got[0].data.len());
    assert_eq!(got[0].to.len(), 2, "for every recipient");
    assert_keeps_what_matters(&got[0], &r, true);
    assert_eq!(sink.mail_commands().len(), 2, "the full form refused, then the short one");
    assert_eq!(outbox_count(dir.path()), 0);
}

#[tokio::test]
async fn a_relay_offering_a_size_below_the_email_gets_the_short_form_at_once() {
    let sink = SmtpSink::start(None).await.expect("sink");
    sink.set_size_limit(300_000, Some(300_000));
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let (r, links) = incident(160);

    let outcome = send(&cfg, dir.path(), &r, &links).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].data.len() <= 300_000, "{} bytes", got[0].data.len());
    assert_keeps_what_matters(&got[0], &r, true);
    assert_eq!(sink.mail_commands().len(), 1, "no transaction the relay had said it would refuse");
}

#[tokio::test]
async fn an_email_within_max_size_is_the_full_one() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let (r, links) = incident(8);
    let outcome = send(&email_config(sink.port()), dir.path(), &r, &links).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let got = sink.messages();
    let (text, _) = text_and_html(&got[0]);
    assert_keeps_what_matters(&got[0], &r, false);
    for f in &r.findings {
        let after = flat(&text).split(f.message.as_str()).nth(1).map(str::to_string).expect("its message");
        let block = after.split(" * ").next().unwrap_or_default();
        assert!(block.contains("Seen: ") && block.contains("Likely cause: "), "every finding in full: {block:.200}");
    }
}

#[tokio::test]
async fn a_data_centre_outage_of_3000_users_read_from_the_instance_is_one_email_within_max_size() {
    let instance =
        midwatch_sim::FakeInstance::start(midwatch_sim::generate::down_users(3000), "svc.midwatch", "demo-password")
            .await
            .expect("instance");
    let r = evaluated(&instance).await;
    assert_eq!(r.findings.len(), 3000);
    let full = email::render(&r, &midwatch::notify::changes(&r, None), &links(), now());
    println!("a data-centre outage of 3,000 users: the full rendering is {} bytes", full.text.len() + full.html.len());
    let sink = SmtpSink::start(None).await.expect("sink");
    sink.set_size_limit(POSTFIX_LIMIT, Some(POSTFIX_LIMIT));
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = send(&email_config(sink.port()), dir.path(), &r, &links()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let got = sink.messages();
    println!("a data-centre outage of 3,000 users: the email sent is {} bytes", got[0].data.len());
    assert!(got[0].data.len() <= ONE_MB);
    let (text, _) = text_and_html(&got[0]);
    let text = flat(&text);
    for f in &r.findings {
        assert!(text.contains(&f.message), "{}", f.message);
    }
    assert!(text.contains("MID SERVER ID MAP"));
    assert!(text.contains(" more: `midwatch check --format json` lists them all."), "the ID map cut short");
}
