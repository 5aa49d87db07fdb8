//! No secret leaves midwatch: every output of full cycles with OAuth at trace level — `check` as text, JSON and
//! dry run, `config check`, a `run` service whose token is renewed and revoked, its log, metrics textfile, state
//! directory and email outbox — is searched for the client secret, the password, every access and refresh token
//! the instance issued, and their base64 and form-encoded forms.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use midwatch_sim::{Dataset, FakeInstance, OAuthApp};

use crate::oauth::{CLIENT_ID, CLIENT_SECRET};
use crate::support::USER;

const PASSWORD: &str = "pa55:w0rd&m0re+x";

/// The config of one site: secrets from the credentials directory, as systemd's `LoadCredential=` provides them.
fn write_site(dir: &Path, url: &str, method: &str) -> PathBuf {
    let credentials = dir.join("credentials");
    std::fs::create_dir_all(&credentials).expect("credentials dir");
    std::fs::write(credentials.join("client_secret"), format!("{CLIENT_SECRET}\n")).expect("client secret");
    std::fs::write(credentials.join("instance_password"), format!("{PASSWORD}\n")).expect("password");
    let account = match method {
        "oauth_password" => format!("user = \"{USER}\"\npassword_file = \"instance_password\"\n"),
        _ => String::new(),
    };
    // An SMTP port nobody listens on: every email stays in the outbox.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let text = format!(
        r#"[instance]
url = "{url}"
name = "acme"
auth = "{method}"
client_id = "{CLIENT_ID}"
client_secret_file = "client_secret"
{account}timeout = "5s"

[check]
schedule = "* * * * * *"

[email]
url = "smtp://127.0.0.1:{closed}"
tls = "none"
from = "midwatch@acme.com"
to = "mid-admins@acme.com"
send = "always"

[state]
directory = "{state}"

[log]
level = "trace"

[metrics]
textfile = "{metrics}"
"#,
        state = dir.join("state").display(),
        metrics = dir.join("midwatch.prom").display(),
    );
    let file = dir.join("midwatch.toml");
    std::fs::write(&file, text).expect("write config");
    file
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_midwatch"));
    command
        .args(args)
        .env("RUST_LOG", "trace")
        .env("CREDENTIALS_DIRECTORY", dir.join("credentials"))
        .env_remove("MIDWATCH_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("STATE_DIRECTORY");
    command
}

/// Runs one command to its end; its stdout and stderr.
async fn output(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut command = command(dir, args);
    let out = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run midwatch");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// `midwatch run` for three cycles, the access tokens revoked after the first (so that a 401 is answered and the
/// token renewed); its log.
async fn run_service(dir: &Path, config: &Path, instance: &FakeInstance) -> String {
    let log = dir.join("run.log");
    let stderr = std::fs::File::create(&log).expect("log file");
    let mut child = command(dir, &["run", "--config", &config.display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn midwatch run");
    let cycles = || std::fs::read_to_string(&log).unwrap_or_default().matches("cycle CRITICAL in ").count();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut revoked = false;
    while cycles() < 3 && Instant::now() < deadline {
        if !revoked && cycles() >= 1 {
            instance.revoke_access_tokens();
            revoked = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let stopped = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(cycles() >= 3, "three cycles ran: {stopped:?}\n{}", tail(&text));
    text
}

fn tail(text: &str) -> String {
    text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A secret as it could leak: itself, form-encoded, and base64 (standard and URL-safe) at each of the three
/// alignments it can have inside a longer encoded string (`user:password`, `Bearer …`).
fn leak_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string(), url::form_urlencoded::byte_serialize(secret.as_bytes()).collect()];
    for engine in [base64::engine::general_purpose::STANDARD_NO_PAD, base64::engine::general_purpose::URL_SAFE_NO_PAD] {
        for shift in 0..3 {
            let mut bytes = vec![b'x'; shift];
            bytes.extend(secret.as_bytes());
            let encoded = engine.encode(&bytes);
            // Leave out the group the prefix touches and the last, partial group.
            let start = if shift == 0 { 0 } else { 4 };
            if let Some(core) = encoded.get(start..encoded.len().saturating_sub(4)) {
                forms.push(core.to_string());
            }
        }
    }
    forms.retain(|f| f.len() >= 8);
    forms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_appears_in_any_output_of_full_cycles_at_trace_level() {
    for method in ["oauth_client_credentials", "oauth_password"] {
        let instance =
            FakeInstance::start(Dataset::demo(chrono::Utc::now()), USER, PASSWORD).await.expect("fake instance");
        instance.enable_oauth(OAuthApp {
            access_lifetime: Duration::from_secs(2),
            ..OAuthApp::new(CLIENT_ID, CLIENT_SECRET)
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_site(dir.path(), &instance.url(), method);
        let config_arg = config.display().to_string();

        let mut outputs: Vec<(String, String)> = Vec::new();
        for args in [
            vec!["check", "--config", &config_arg],
            vec!["check", "--config", &config_arg, "--format", "json"],
            vec!["check", "--config", &config_arg, "--dry-run", "--detail", "detailed"],
            vec!["config", "check", "--config", &config_arg],
        ] {
            let (code, text) = output(dir.path(), &args).await;
            // config check names the SMTP server nobody listens on as its one problem.
            let expected = if args[0] == "config" { 3 } else { 2 };
            assert_eq!(code, Some(expected), "{method} {args:?}:\n{}", tail(&text));
            if args[0] == "config" {
                assert!(text.contains("an OAuth token with the "), "{text}");
                assert!(text.contains("1 problem(s) found"), "{text}");
            }
            outputs.push((args.join(" "), text));
        }
        outputs.push(("run".into(), run_service(dir.path(), &config, &instance).await));
        for (path, text) in crate::support::files_below(dir.path(), false) {
            if !path.starts_with(dir.path().join("credentials")) {
                outputs.push((path.display().to_string(), text));
            }
        }
        assert!(outputs.iter().any(|(what, _)| what.ends_with("midwatch.prom")), "the metrics file was written");
        assert!(outputs.iter().any(|(what, _)| what.contains("outbox")), "an email waits in the outbox");
        let traced = outputs.iter().filter(|(what, _)| what == "run").map(|(_, t)| t.lines().count()).sum::<usize>();
        assert!(traced > 100, "trace level logs plenty: {traced} lines");

        let tokens = instance.issued_tokens();
        let grants = instance.token_requests();
        println!("{method}: {} tokens issued; token requests {grants:?}", tokens.len());
        assert!(tokens.len() >= 3, "{method}: tokens were issued, renewed and replaced: {grants:?}");
        if method == "oauth_password" {
            assert!(grants.iter().any(|(g, _)| g == "refresh_token"), "the refresh path ran: {grants:?}");
        }
        let secrets: Vec<&str> =
            [CLIENT_SECRET, PASSWORD].into_iter().chain(tokens.iter().map(String::as_str)).collect();
        for secret in secrets {
            for form in leak_forms(secret) {
                for (what, text) in &outputs {
                    assert!(!text.contains(&form), "{method}: {what} shows a secret ({form:?})");
                }
            }
        }
    }
}
