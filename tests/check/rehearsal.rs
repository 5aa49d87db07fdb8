//! The README's rehearsal against the simulator: the configuration `midwatch-sim --smtp --write-config` writes
//! (`midwatch_sim::rehearsal`, which the binary runs) passes `midwatch config check`, `check --dry-run` writes
//! and sends nothing, and a `check` exits 2 (CRITICAL), writes `ecc_agent_issue` and delivers one email to the
//! simulator's SMTP server, saved as an `.eml` file. The binary runs with `MIDWATCH_CONFIG`, as the README says.
//! The simulator keeps the host's clock here, as `midwatch-sim` does: the rehearsal is of a live instance.

use std::path::Path;

use midwatch_sim::rehearsal::{self, Rehearsal};

/// Runs `midwatch ARGS` with `MIDWATCH_CONFIG=config`, off the test's runtime (which serves the simulator).
async fn midwatch(config: &Path, args: &[&str]) -> (i32, String, String) {
    let config = config.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_midwatch"))
            .args(&args)
            .env("MIDWATCH_CONFIG", &config)
            .env_remove("RUST_LOG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY")
            .output()
            .expect("run midwatch");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("join")
}

fn midwatch_records(stage: &Rehearsal) -> usize {
    stage
        .instance
        .rows("ecc_agent_issue")
        .iter()
        .filter(|r| r.get("source").and_then(|s| s.as_str()) == Some("midwatch"))
        .count()
}

#[tokio::test]
async fn the_written_config_passes_config_check_and_a_check_is_critical_with_one_email() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mail = dir.path().join("mail");
    let stage = Rehearsal::start(chrono::Utc::now(), true, Some(mail.clone())).await.expect("start the simulator");
    let written = stage.write_config(&dir.path().join("midwatch.toml"), None).expect("write the config");
    let sink = stage.smtp.as_ref().expect("an SMTP server");
    let smtp = stage.smtp_url().expect("its URL");

    let (code, out, err) = midwatch(&written.config, &["config", "check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with(&format!("{}: valid\n", written.config.display())), "{out}");
    assert!(!out.contains("warning:"), "{out}");
    assert!(out.contains(&format!("note: {smtp} accepts midwatch's sender and every recipient")), "{out}");
    assert!(out.contains("the instance answers and the account can read every table a cycle reads"), "{out}");

    let (code, out, err) = midwatch(&written.config, &["check", "--dry-run"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.starts_with("MIDWATCH CRITICAL - "), "{out}");
    assert_eq!((sink.messages().len(), midwatch_records(&stage)), (0, 0), "a dry run writes and sends nothing");

    let (code, out, err) = midwatch(&written.config, &["check"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.starts_with("MIDWATCH CRITICAL - "), "{out}");
    assert!(midwatch_records(&stage) > 0, "ecc_agent_issue is written:\n{out}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "one email:\n{out}");
    assert_eq!(messages[0].to, vec![rehearsal::TO.to_string()]);
    assert!(messages[0].data.contains("Subject: "), "{}", messages[0].data);
    let saved = sink.saved_files();
    assert_eq!(saved.len(), 1);
    assert!(saved[0].starts_with(&mail) && saved[0].extension().is_some_and(|e| e == "eml"), "{saved:?}");
    assert!(written.state_directory.join("email-state.json").is_file(), "the state directory is the written one");
}
