//! The email of `check` as the text report tells of it: `--dry-run` says whom it would go to, its subject and
//! its size (not the whole message), and `--show-email` prints its text, with `--dry-run` sending nothing.

use midwatch_sim::smtp::SmtpSink;

use crate::selection::{binary, live_demo};

/// The live demo's config file with `[email]` to `relay` and a state directory beside it.
async fn with_email() -> (midwatch_sim::FakeInstance, tempfile::TempDir, String, SmtpSink) {
    let (instance, dir, config) = live_demo().await;
    let relay = SmtpSink::start(None).await.expect("relay");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[state]\ndirectory = \"{}\"\n\n[email]\nurl = \"smtp://127.0.0.1:{}\"\ntls = \"none\"\n\
         from = \"midwatch@acme.example\"\nto = [\"alice@acme.example\", \"bob@acme.example\"]\n",
        dir.path().join("state").display(),
        relay.port()
    ));
    std::fs::write(&config, text).expect("write config");
    (instance, dir, config, relay)
}

/// The report's lines from the email section on.
fn email_section(out: &str) -> Vec<&str> {
    out.lines().skip_while(|l| !l.starts_with("Email")).collect()
}

#[tokio::test]
async fn a_dry_run_says_whom_the_email_would_go_to_its_subject_and_size_not_the_whole_message() {
    let (_instance, _dir, config, relay) = with_email().await;
    let (code, out, err) = binary(&["check", "--config", &config, "--dry-run"]).await;
    assert_eq!(code, 2, "{out}{err}");
    let section = email_section(&out);
    assert_eq!(section.len(), 3, "{out}");
    assert_eq!(section[0], "Email (dry run, not sent): would go to alice@acme.example, bob@acme.example");
    assert!(section[1].starts_with("  Subject: [midwatch] CRITICAL acme: 5 MID Server user issues"), "{out}");
    let size = section[2]
        .strip_prefix("  Size:    ")
        .and_then(|s| s.strip_suffix(" kB (text and HTML); add --show-email to print its text"));
    assert!(size.is_some_and(|kb| kb.parse::<f64>().is_ok_and(|kb| kb > 5.0)), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("  | ")), "no rendered email in the report:\n{out}");
    assert_eq!(relay.connections(), 0, "nothing sent");
}

#[tokio::test]
async fn show_email_with_a_dry_run_prints_the_text_and_sends_nothing() {
    let (_instance, _dir, config, relay) = with_email().await;
    let (code, out, err) = binary(&["check", "--config", &config, "--dry-run", "--show-email"]).await;
    assert_eq!(code, 2, "{out}{err}");
    let section = email_section(&out);
    assert!(section[2].ends_with("(text and HTML); its text follows"), "{out}");
    assert_eq!(section[3], "  | MIDWATCH CRITICAL - 5 findings (1 authentication, 1 authorization, 2", "{out}");
    assert!(section.iter().any(|l| l.starts_with("  | ") && l.contains("User midserver2")), "{out}");
    assert_eq!(relay.connections(), 0, "nothing sent");
}

#[tokio::test]
async fn show_email_without_a_dry_run_prints_the_text_of_the_email_it_sent() {
    let (_instance, _dir, config, relay) = with_email().await;
    let (code, out, err) = binary(&["check", "--config", &config, "--no-write", "--show-email"]).await;
    assert_eq!(code, 2, "{out}{err}");
    let section = email_section(&out);
    assert_eq!(section[0], "Email: email sent to 2 recipients", "{out}");
    assert_eq!(section[1], "  | MIDWATCH CRITICAL - 5 findings (1 authentication, 1 authorization, 2", "{out}");
    assert!(section.iter().any(|l| l.starts_with("  | ") && l.contains("User midserver2")), "{out}");
    assert_eq!(relay.messages().len(), 1, "sent once");
}
