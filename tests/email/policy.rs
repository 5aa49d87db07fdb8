//! When an email is sent: on change, always, never, dry run.

use super::*;

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
    let notice = Notice { report: &r, links: &links(), now: now() };
    let outcome = notify(&cfg, dir.path(), &notice, Mode::DryRun, no_deadline()).await;
    match &outcome.status {
        EmailStatus::DryRun { subject, recipients, text, size, outbox_pending } => {
            assert_eq!(subject, "[midwatch] CRITICAL acme: 1 MID Server user issue (1 new)");
            assert_eq!(recipients, &vec!["alice@acme.example".to_string(), "bob@acme.example".to_string()]);
            assert!(text.contains("User u1 is associated with 1 down MID Server."));
            assert!(*size > 2 * text.len(), "the message as sent: headers, text and HTML: {size}");
            assert_eq!(*outbox_pending, 0);
        }
        other => panic!("expected a dry run, got {other:?}"),
    }
    assert!(outcome.summary().starts_with("email dry run: would send \"[midwatch] CRITICAL acme"));
    assert_eq!(sink.connections(), 0);
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0, "nothing written to the state directory");
}

#[tokio::test]
async fn remind_every_sends_one_reminder_per_interval_while_findings_stay_open() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = email_config(sink.port());
    cfg.remind_every = Some(std::time::Duration::from_secs(24 * 3600));
    // Its history, as the cycle fills it in from midwatch's own records: open since the first email, seen often.
    let mut seen = finding("u1", Category::Authentication);
    seen.history =
        Some(midwatch::domain::FindingHistory { first_detected: now(), times_detected: 7, resolved_before: None });
    let open = report(vec![seen]);

    assert!(matches!(cycle(&cfg, dir.path(), &open, now()).await.status, EmailStatus::Sent { .. }));
    // Unchanged before the interval: nothing.
    for hours in [1, 12, 23] {
        let quiet = cycle(&cfg, dir.path(), &open, now() + TimeDelta::hours(hours)).await;
        assert_eq!(quiet.status, EmailStatus::NotNeeded { reason: "findings unchanged since the last email".into() });
    }
    assert_eq!(sink.messages().len(), 1, "no reminder before remind_every");

    // Once the interval has passed: one reminder, listing what is still open.
    let due = cycle(&cfg, dir.path(), &open, now() + TimeDelta::hours(24)).await;
    assert!(matches!(due.status, EmailStatus::Sent { .. }), "{due:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(subject(&got[1]), "[midwatch] CRITICAL acme: 1 MID Server user issue (reminder: still open)");
    let (text, _) = text_and_html(&got[1]);
    let still = text.split("STILL OPEN (1)").nth(1).expect("a still open section");
    assert!(still.contains("for User u1"), "{text}");
    // Since when and how often it was seen, with its remediation step.
    let first = midwatch::domain::sn_time::format(now());
    let unwrapped = still.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(unwrapped.contains(&format!(", detected by 7 checks since {first} UTC")), "{still}");
    assert!(unwrapped.contains("What to do: Check the password of the MID Server user"), "{still}");

    // The next reminder waits a whole interval again; a change still goes at once.
    let quiet = cycle(&cfg, dir.path(), &open, now() + TimeDelta::hours(47)).await;
    assert!(matches!(quiet.status, EmailStatus::NotNeeded { .. }), "{quiet:?}");
    let changed = report(vec![finding("u1", Category::Authentication), finding("u2", Category::Network)]);
    let at_once = cycle(&cfg, dir.path(), &changed, now() + TimeDelta::hours(47)).await;
    assert!(matches!(at_once.status, EmailStatus::Sent { .. }), "{at_once:?}");
    assert_eq!(subject(&sink.messages()[2]), "[midwatch] CRITICAL acme: 2 MID Server user issues (1 new)");

    // Without remind_every, unchanged findings stay silent however long they stay open.
    cfg.remind_every = None;
    let silent = cycle(&cfg, dir.path(), &changed, now() + TimeDelta::days(30)).await;
    assert!(matches!(silent.status, EmailStatus::NotNeeded { .. }), "{silent:?}");
    assert_eq!(sink.messages().len(), 3);
}

/// An early warning of `user` (a user of an Up MID Server refused from an unknown address).
fn warning(user: &str) -> midwatch::domain::Warning {
    midwatch::domain::Warning::FailingOnUpMid {
        user: user.into(),
        mid_servers: vec![format!("mid-of-{user}")],
        failures: 2,
        last_failure: now(),
        source_ip: Some("192.0.2.7".into()),
        source_mid: None,
        failed_attempts: Some(2),
        text: format!("User {user} of Up MID Server mid-of-{user} is being refused: 2 login failures"),
    }
}

#[tokio::test]
async fn a_new_or_gone_early_warning_is_a_change_and_an_unchanged_one_is_not() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let mut warned = report(Vec::new());
    warned.warnings = vec![warning("mid.paris")];
    warned.status = Status::Warning;

    let first = cycle(&cfg, dir.path(), &warned, now()).await;
    assert!(matches!(first.status, EmailStatus::Sent { .. }), "a warning alone is news: {first:?}");
    assert_eq!(subject(&sink.messages()[0]), "[midwatch] WARNING acme: no MID Server user issues, 1 early warning");
    let (text, html) = text_and_html(&sink.messages()[0]);
    assert!(text.contains("EARLY WARNINGS (1)"), "{text}");
    assert!(flat(&text).contains("User mid.paris of Up MID Server mid-of-mid.paris is being refused"), "{text}");
    assert!(html.contains("Early warnings (1)"), "{html}");
    assert!(!text.contains("No MID Server user has a problem now"), "not all clear: {text}");

    let same = cycle(&cfg, dir.path(), &warned, now() + TimeDelta::hours(4)).await;
    assert!(matches!(same.status, EmailStatus::NotNeeded { .. }), "{same:?}");

    // A second warning: news, and only it is marked new.
    let mut more = warned.clone();
    more.warnings.push(warning("mid.oslo"));
    let second = cycle(&cfg, dir.path(), &more, now() + TimeDelta::hours(8)).await;
    assert!(matches!(second.status, EmailStatus::Sent { .. }), "{second:?}");
    let (text, _) = text_and_html(&sink.messages()[1]);
    assert!(flat(&text).contains("New: User mid.oslo"), "{text}");
    assert!(!flat(&text).contains("New: User mid.paris"), "{text}");

    // Both gone: the email says so, then nothing while it stays so.
    let gone = cycle(&cfg, dir.path(), &report(Vec::new()), now() + TimeDelta::hours(12)).await;
    assert!(matches!(gone.status, EmailStatus::Sent { .. }), "{gone:?}");
    let (text, _) = text_and_html(&sink.messages()[2]);
    assert!(
        flat(&text).contains(
            "No longer warned since the last email: failing_on_up_mid: mid.oslo; failing_on_up_mid: mid.paris"
        ),
        "{text}"
    );
    let quiet = cycle(&cfg, dir.path(), &report(Vec::new()), now() + TimeDelta::hours(16)).await;
    assert!(matches!(quiet.status, EmailStatus::NotNeeded { .. }), "{quiet:?}");
    assert_eq!(sink.messages().len(), 3);
}
