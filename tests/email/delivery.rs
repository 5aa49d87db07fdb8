//! Never lost, never twice: the outbox through 4xx, 5xx, silence, outages and crashes.

use super::*;

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

#[tokio::test]
async fn a_message_for_a_server_that_answers_like_http_is_queued_saying_it_does_not_speak_smtp() {
    let (port, _server) = crate::http_answering_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = email_config(port);
    cfg.timeout = Duration::from_secs(30);
    let started = std::time::Instant::now();
    let outcome = cycle(&cfg, dir.path(), &report(vec![finding("u1", Category::Network)]), now()).await;
    assert!(started.elapsed() < Duration::from_secs(2), "at once: {:?}", started.elapsed());
    match &outcome.status {
        EmailStatus::Queued { reason, .. } => assert!(
            reason.starts_with(&format!(
                "the server at 127.0.0.1:{port} does not speak SMTP: it answered `HTTP/1.1 400 Bad Request`"
            )),
            "{reason}"
        ),
        other => panic!("expected queued, got {other:?}"),
    }
    assert_eq!(outcome.outbox_pending, 1, "kept for when [email] url is fixed");
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
        outbox_reason: None,
        permanent_failures: Vec::new(),
        dropped: Vec::new(),
        problems: Vec::new(),
        text: Some("the message's text".into()),
    };
    let json = serde_json::to_value(&outcome).expect("serializes");
    assert!(json.get("text").is_none(), "the text is for --show-email, not the JSON report: {json}");
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
    // Nothing left behind but the state, an empty outbox and the (unlocked) lock file, which stays: removing a
    // lock file would let two processes lock two different files.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["email-state.json".to_string(), "email.lock".to_string(), "outbox".to_string()]);
}

#[tokio::test]
async fn no_data_is_sent_when_the_sending_marker_cannot_be_written() {
    // A message queued while the server was down.
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let r = report(vec![finding("u1", Category::Network)]);
    cycle(&email_config(port), dir.path(), &r, now()).await;
    let outbox = Outbox::new(dir.path());
    let queued = std::fs::read_dir(outbox.dir())
        .expect("outbox")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("one queued message");
    // An injected file-system failure: under a name this long, the temporary file of an atomic rewrite
    // cannot be created (ENAMETOOLONG), so the marker cannot be recorded; the entry itself still loads.
    let long = outbox.dir().join(format!("{}.json", "9".repeat(240)));
    std::fs::rename(&queued, &long).expect("rename");

    let sink = SmtpSink::start(None).await.expect("sink");
    let next = cycle(&email_config(sink.port()), dir.path(), &r, now() + TimeDelta::hours(4)).await;
    assert_eq!(sink.messages().len(), 0, "no DATA without a persisted marker: {next:?}");
    assert!(next.problems.iter().any(|p| p.contains("not sent") && p.contains("cannot write")), "{next:?}");
    assert!(long.exists(), "the message stays queued");
    let (entries, _) = outbox.load();
    assert!(entries[0].sending.is_none() && entries[0].recipients.len() == 2, "{entries:?}");
}

#[tokio::test]
async fn a_state_that_cannot_be_recorded_stops_email_instead_of_repeating_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An injected failure: the state file's place is taken by a directory, so it can be neither read nor
    // replaced.
    std::fs::create_dir(dir.path().join("email-state.json")).expect("mkdir");
    let sink = SmtpSink::start(None).await.expect("sink");
    let r = report(vec![finding("u1", Category::Network)]);
    for hours in [0, 4, 8] {
        let outcome = cycle(&email_config(sink.port()), dir.path(), &r, now() + TimeDelta::hours(hours)).await;
        assert!(matches!(outcome.status, EmailStatus::Skipped { .. }), "{outcome:?}");
        assert!(outcome.problems.iter().any(|p| p.contains("email-state.json")), "{outcome:?}");
    }
    assert_eq!(sink.messages().len(), 0, "never sent, so never sent again");
    assert_eq!(outbox_count(dir.path()), 0, "and not left queued either");
}

#[tokio::test(flavor = "current_thread")]
async fn a_relay_down_for_days_gets_no_burst_of_stale_mail_what_is_dropped_is_logged_and_counted() {
    let (logs, _guard) = capture_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let down = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut cfg = email_config(down);
    cfg.outbox_max_messages = 2;
    // Three different sets of findings, a day apart, while the relay is down: three messages queued, the
    // third pushing the first out of a two-message outbox.
    let users = ["u1", "u2", "u3"];
    let mut last = None;
    for (day, user) in users.iter().enumerate() {
        let r = report(vec![finding(user, Category::Network)]);
        last = Some(cycle(&cfg, dir.path(), &r, now() + TimeDelta::days(day as i64)).await);
    }
    let third = last.expect("three cycles");
    assert_eq!(third.dropped.len(), 1, "{third:?}");
    assert!(third.dropped[0].reason.contains("beyond outbox_max_messages (2)"), "{:?}", third.dropped);
    assert!(third.summary().contains("1 earlier email dropped from the outbox undelivered"), "{}", third.summary());
    assert_eq!(outbox_count(dir.path()), 2);

    // The relay returns three and a half days after the second message: it is older than the default three
    // days and dropped; only the third, two and a half days old, goes out.
    let sink = SmtpSink::start(None).await.expect("sink");
    let r = report(vec![finding("u3", Category::Network)]);
    let back = cycle(&email_config(sink.port()), dir.path(), &r, now() + TimeDelta::hours(4 * 24 + 12)).await;
    assert_eq!(back.dropped.len(), 1, "{back:?}");
    assert!(back.dropped[0].reason.contains("older than outbox_max_age (3days)"), "{:?}", back.dropped);
    assert_eq!(sink.messages().len(), 1, "no burst: only the message young enough");
    assert!(subject(&sink.messages()[0]).contains("1 MID Server user issue"));
    assert_eq!(outbox_count(dir.path()), 0);
    let log = logs.text();
    let dropped: Vec<&str> = log.lines().filter(|l| l.contains("dropped an undelivered email")).collect();
    assert_eq!(dropped.len(), 2, "{log}");
    assert!(dropped.iter().all(|l| l.contains("ERROR") && l.contains("subject=")), "{dropped:?}");
}
