//! The `midwatch-sim` binary as a person and `.ci/neighbours.sh` run it: its help, its URLs on stdout (the
//! instance's first), the configuration `--write-config` writes, the SMTP server of `--smtp` saving what it
//! receives, and the refusal to overwrite a file. (`tests/check/rehearsal.rs` of midwatch runs `midwatch` against
//! the same setup, `midwatch_sim::rehearsal`.)

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A directory of this test's own under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("midwatch-sim-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sim(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_midwatch-sim"));
    command.args(args).env_remove("RUST_LOG");
    command
}

/// Sends SIGTERM and returns the exit code and stderr.
fn stop(mut child: Child) -> (Option<i32>, String) {
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
    assert!(term.success(), "kill -TERM");
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    (status.code(), stderr)
}

/// One message through the SMTP server at `port`, as a minimal client says it.
fn send_mail(port: u16) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the SMTP server");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut reply = || {
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("a reply");
            // A multi-line reply ("250-…") ends with its "250 " line.
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.clone();
            }
        }
    };
    assert!(reply().starts_with("220"), "greeting");
    for (command, code) in [
        ("EHLO test\r\n", "250"),
        ("MAIL FROM:<a@test.invalid>\r\n", "250"),
        ("RCPT TO:<b@test.invalid>\r\n", "250"),
        ("DATA\r\n", "354"),
        ("Subject: rehearsal\r\n\r\nhello\r\n.\r\n", "250"),
        ("QUIT\r\n", "221"),
    ] {
        stream.write_all(command.as_bytes()).expect("send");
        let answer = reply();
        assert!(answer.starts_with(code), "{command:?} answered {answer:?}");
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(20), "waited 20 s for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn help_lists_every_option_and_exits_zero() {
    let out = sim(&["--help"]).output().expect("run midwatch-sim --help");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for option in ["--smtp", "--save-dir DIR", "--write-config PATH", "--state-dir DIR", "--help"] {
        assert!(help.contains(option), "--help lacks {option}:\n{help}");
    }
}

#[test]
fn a_wrong_argument_is_a_usage_error_with_the_help() {
    let out = sim(&["--stmp"]).output().expect("run midwatch-sim --stmp");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unexpected argument \"--stmp\"") && stderr.contains("usage: midwatch-sim"), "{stderr}");
}

#[test]
fn alone_it_prints_only_the_instance_url_and_stops_on_sigterm() {
    let mut child = sim(&[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the first line");
    assert!(first.starts_with("http://127.0.0.1:"), "{first:?}");
    let (code, stderr) = stop(child);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("the rest of stdout");
    assert_eq!(rest, "", "one line on stdout without --smtp");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("midwatch-sim: stopped after 0 request(s)"), "{stderr}");
}

#[test]
fn smtp_and_write_config_print_both_urls_write_the_files_and_save_what_arrives() {
    let scratch = Scratch::new("rehearsal");
    let config = scratch.0.join("midwatch.toml");
    let config_arg = config.to_str().expect("UTF-8 path");
    let mut child = sim(&["--smtp", "--write-config", config_arg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut instance, mut smtp) = (String::new(), String::new());
    stdout.read_line(&mut instance).expect("the instance's URL");
    stdout.read_line(&mut smtp).expect("the SMTP server's URL");
    let (instance, smtp) = (instance.trim_end(), smtp.trim_end());
    assert!(instance.starts_with("http://127.0.0.1:"), "the first line is the instance's URL: {instance:?}");
    let port: u16 = smtp.strip_prefix("smtp://127.0.0.1:").and_then(|p| p.parse().ok()).expect(smtp);

    let text = std::fs::read_to_string(&config).expect("the written configuration");
    for line in [
        format!("url = \"{instance}\"\n"),
        "user = \"svc.midwatch\"\n".to_string(),
        "password_file = \"instance_password\"\n".to_string(),
        format!("directory = \"{}\"\n", scratch.0.join("state").display()),
        format!("url = \"{smtp}\"\n"),
        "tls = \"none\"\n".to_string(),
    ] {
        assert!(text.contains(&line), "the configuration lacks {line:?}:\n{text}");
    }
    let password = scratch.0.join("instance_password");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&password).expect("password").permissions());
    assert_eq!(mode & 0o777, 0o600, "the password file is its owner's only");
    assert_eq!(std::fs::read_to_string(&password).expect("password"), "demo-password\n");

    send_mail(port);
    let mail = scratch.0.join("mail");
    let emls = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    };
    wait_for("the .eml file", || emls(&mail).len() == 1);
    let saved = &emls(&mail)[0];
    assert!(std::fs::read_to_string(saved).expect("eml").contains("Subject: rehearsal"));
    // The loop names what arrived within a quarter of a second.
    std::thread::sleep(Duration::from_millis(600));
    let (code, stderr) = stop(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&format!("wrote {}", config.display())), "{stderr}");
    assert!(stderr.contains(&format!("saves each message in {}", mail.display())), "{stderr}");
    assert!(stderr.contains("received an email from a@test.invalid for b@test.invalid"), "{stderr}");
    assert!(stderr.contains(&format!("saved as {}", saved.display())), "{stderr}");
}

#[test]
fn write_config_never_overwrites_and_then_serves_nothing() {
    let scratch = Scratch::new("refusal");
    std::fs::create_dir_all(&scratch.0).expect("mkdir");
    let config = scratch.0.join("midwatch.toml");
    std::fs::write(&config, "# mine\n").expect("an existing file");
    let out = sim(&["--smtp", "--write-config", config.to_str().expect("UTF-8")]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no URL is printed: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("never overwrites a file"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config).expect("read"), "# mine\n");
    assert!(!scratch.0.join("instance_password").exists());
    assert!(!scratch.0.join("mail").exists(), "nothing is started");
}
