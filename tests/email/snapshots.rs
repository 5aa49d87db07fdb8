//! Rendering snapshots of the documentation's scenario (the demo data set), wrapping, and the state directory.

use super::*;

/// The demo data set at its reference time, through the simulated instance, the Table API client and the rules.
async fn documented_scenario() -> Report {
    let reference = sn_time::parse(midwatch_sim::REFERENCE_TIME).expect("reference time");
    let dataset = midwatch_sim::Dataset::demo(reference);
    let instance = midwatch_sim::FakeInstance::start(dataset, "svc.midwatch", "demo-password").await.expect("instance");
    evaluated(&instance).await
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

#[tokio::test]
async fn both_bodies_start_with_the_status_without_the_performance_data() {
    let report = documented_scenario().await;
    let email = email::render(&report, &midwatch::notify::changes(&report, None), &scenario_links(&report), now());
    let status = report.status_line();
    let (words, perfdata) = status.rsplit_once(" | ").expect("a status line with performance data");
    let first_paragraph = email.text.split("\n\n").next().unwrap_or_default();
    assert_eq!(first_paragraph.split_whitespace().collect::<Vec<_>>().join(" "), words, "{}", email.text);
    assert!(!email.text.contains(perfdata) && !email.text.contains("findings=5"), "{}", email.text);
    assert!(email.html.contains(&format!(">{words}</p>")), "{}", email.html);
    assert!(!email.html.contains("findings=5"), "{}", email.html);
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
    let notice = Notice { report: &r, links: &links, now: now() };
    let fut = notify(&cfg, &dir, &notice, Mode::Send, no_deadline());
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
