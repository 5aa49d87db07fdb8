//! The command line as a monitoring system and a shell see it: exit codes, pipes, one JSON document.

use std::io::Read as _;
use std::process::{Command, Stdio};

use crate::support::run_binary;

#[test]
fn usage_errors_are_unknown_never_critical() {
    let cases: &[&[&str]] = &[
        &["check", "--window", "1m"],
        &["check", "--format", "xml"],
        &["check", "--bogus"],
        &["run", "--window", "1m"],
        &["demo", "--config", "/etc/midwatch/midwatch.toml"],
        &["frobnicate"],
        &[],
    ];
    for args in cases {
        let (code, stdout, stderr) = run_binary(args);
        assert_eq!(code, 3, "midwatch {args:?}: {stderr}");
        assert!(stdout.is_empty(), "midwatch {args:?} printed on stdout: {stdout}");
        assert!(stderr.contains("Usage:") || stderr.contains("error:"), "clap's message for {args:?}: {stderr}");
    }
}

#[test]
fn help_and_version_exit_zero_on_stdout() {
    for args in [&["--help"][..], &["check", "--help"], &["demo", "--help"], &["help"]] {
        let (code, stdout, _) = run_binary(args);
        assert_eq!(code, 0, "{args:?}");
        assert!(stdout.contains("Usage:"), "{args:?}: {stdout}");
    }
    let (code, stdout, _) = run_binary(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), format!("midwatch {}", env!("CARGO_PKG_VERSION")));
    let (_, demo_help, _) = run_binary(&["demo", "--help"]);
    assert!(!demo_help.contains("--config"), "the demo reads no config:\n{demo_help}");
}

#[test]
fn a_closed_stdout_ends_the_demo_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_midwatch"))
        .arg("demo")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn midwatch demo");
    // Read nothing and close the pipe, as `midwatch demo | head -0` would.
    drop(child.stdout.take());
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(status.code(), Some(141), "the usual status of a pipeline's writer whose reader left: {stderr}");
}

#[test]
fn demo_json_is_one_document_with_both_cycles() {
    let (code, stdout, stderr) = run_binary(&["demo", "--format", "json"]);
    assert_eq!(code, 2, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("exactly one JSON document");
    let cycles = doc["cycles"].as_array().expect("cycles");
    assert_eq!(cycles.len(), 2);
    assert_eq!(cycles[0]["write_back"]["applied"]["created"].as_array().map(Vec::len), Some(5));
    assert_eq!(cycles[1]["status"], "CRITICAL");
    assert_eq!(cycles[1]["exit_code"], 2);
}

#[test]
fn both_cycles_of_the_demo_carry_their_duration_and_the_summary_counts_align_in_one_column() {
    let (code, stdout, stderr) = run_binary(&["demo", "--detail", "summary"]);
    assert_eq!(code, 2, "{stderr}");
    let status: Vec<&str> = stdout.lines().filter(|l| l.starts_with("MIDWATCH ")).collect();
    assert_eq!(status.len(), 2, "{stdout}");
    for line in status {
        let perfdata = line.rsplit_once(" | ").map(|(_, p)| p).unwrap_or_default();
        let took = perfdata.split(' ').find_map(|p| p.strip_prefix("duration="));
        assert!(took.is_some_and(|t| t.ends_with('s') && t.trim_end_matches('s').parse::<f64>().is_ok()), "{line}");
    }
    // Every count of the summary in the same short column before its label, however long the label.
    let counts: Vec<&str> = stdout
        .lines()
        .take_while(|l| !l.starts_with("Recently down") && !l.starts_with("ecc_agent_issue"))
        .filter(|l| l.trim_start().split("  ").next().is_some_and(|n| n.parse::<usize>().is_ok()))
        .collect();
    assert!(counts.len() >= 18, "ten counts, four categories, the conditions:\n{stdout}");
    for line in &counts {
        assert!(line.len() > 7 && line[..5].trim_start().parse::<usize>().is_ok() && &line[5..7] == "  ", "{line:?}");
        assert!(!line[7..].contains("   ") && !line.ends_with(' '), "no padding after the label: {line:?}");
    }
    assert!(counts.iter().any(|l| l.ends_with("  Users with the mid_server role")), "{stdout}");
}

#[test]
fn a_duration_written_as_two_words_gets_a_hint_to_write_it_as_one() {
    for (args, hint) in [
        (
            &["check", "--window", "4", "hours"][..],
            "tip: a duration is one argument: write --window 4h (or --window \"4 hours\")",
        ),
        (
            &["check", "--timeout", "30", "Seconds"],
            "tip: a duration is one argument: write --timeout 30s (or --timeout \"30 seconds\")",
        ),
        (
            &["check", "--until-ok", "--every", "2", "min"],
            "tip: a duration is one argument: write --every 2m (or --every \"2 min\")",
        ),
        (
            &["run", "--window", "1", "day"],
            "tip: a duration is one argument: write --window 1d (or --window \"1 day\")",
        ),
    ] {
        let (code, stdout, stderr) = run_binary(args);
        assert_eq!(code, 3, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(stderr.contains(hint), "{args:?}: {stderr}");
    }
    // A word that is no unit gets clap's message alone.
    let (code, _, stderr) = run_binary(&["check", "--window", "4", "parsecs"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("unexpected argument 'parsecs'") && !stderr.contains("tip:"), "{stderr}");
}
