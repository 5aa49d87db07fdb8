//! A refused login costs one request: the instance counts each refused login toward the account's lockout, so
//! `check`, `config check` and each cycle of `run` prove the credentials with one request before reading
//! anything else, and the first refusal ends every request of the process. The one problem line names the user,
//! where the secret came from and whether it has stray spaces or control characters, never the secret itself.

use std::path::{Path, PathBuf};

use midwatch_sim::{Dataset, FakeInstance, OAuthApp};
use wiremock::MockServer;

use crate::oauth::{CLIENT_ID, CLIENT_SECRET, oauth_config_text};
use crate::support::*;

/// What the instance really expects; the configs below hold something else.
const RIGHT_PASSWORD: &str = "the-right-password";

/// A config signing in as [`USER`] with `password` from a file beside it (mode 0600), and the file's path.
fn basic_site(dir: &Path, url: &str, password: &str) -> (PathBuf, PathBuf) {
    let secret = dir.join("instance_password");
    std::fs::write(&secret, format!("{password}\n")).expect("write password");
    let owner_only = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&secret, owner_only).expect("chmod password");
    let file = dir.join("midwatch.toml");
    let text = format!(
        "[instance]\nurl = \"{url}\"\nname = \"acme\"\nuser = \"{USER}\"\npassword_file = \"{}\"\ntimeout = \"5s\"\n",
        secret.display()
    );
    std::fs::write(&file, text).expect("write config");
    (file, secret)
}

fn run(args: &[&str], config: &Path) -> (i32, String, String) {
    let mut all = args.to_vec();
    all.extend(["--config", config.to_str().expect("utf-8 path")]);
    run_binary(&all)
}

/// The lines of `config check` that name a problem.
fn problems(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("problem: ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_costs_one_request_per_check_and_per_config_check_and_says_what_to_look_at() {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, RIGHT_PASSWORD).await.expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    // The password as a person pasted it: with a trailing space.
    let (config, secret) = basic_site(dir.path(), &instance.url(), &format!("{PASSWORD} "));

    let (code, stdout, stderr) = run(&["check"], &config);
    assert_eq!(code, 3, "{stdout}{stderr}");
    let sent = instance.requests();
    assert_eq!(sent.len(), 1, "one refused login, not one per table: {:?}", paths(&sent));
    assert_eq!(sent[0].status, 401);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("MIDWATCH UNKNOWN - the instance refused the credentials (HTTP 401 on "), "{first}");
    for named in [USER, &format!("[instance] password_file {}", secret.display()), "trailing spaces"] {
        assert!(first.contains(named), "the problem line names {named:?}: {first}");
    }
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD), "never the secret");

    let (code, stdout, stderr) = run(&["config", "check"], &config);
    assert_eq!(code, 3, "{stdout}{stderr}");
    let sent = instance.requests();
    assert_eq!(sent.len(), 2, "config check sent one request: {:?}", paths(&sent));
    let problems = problems(&stdout);
    assert_eq!(problems.len(), 1, "one problem line for one cause:\n{stdout}");
    assert!(problems[0].contains(USER) && problems[0].contains("trailing spaces"), "{}", problems[0]);
    assert!(stdout.contains("1 problem(s) found"), "{stdout}");
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD), "never the secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_but_wrong_password_is_said_to_have_no_stray_characters() {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, RIGHT_PASSWORD).await.expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = basic_site(dir.path(), &instance.url(), PASSWORD);
    let (code, stdout, _) = run(&["check", "--format", "json"], &config);
    assert_eq!(code, 3, "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    let error = doc["error"].as_str().unwrap_or_default();
    assert!(error.contains("no leading or trailing spaces or control characters"), "{error}");
    assert_eq!(instance.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_secret_costs_one_token_request_per_check_and_per_config_check() {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, RIGHT_PASSWORD).await.expect("start");
    instance.enable_oauth(OAuthApp::new(CLIENT_ID, "the-registered-secret"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("midwatch.toml");
    std::fs::write(&config, oauth_config_text(&instance.url(), "oauth_client_credentials")).expect("write config");

    let (code, stdout, stderr) = run(&["check"], &config);
    assert_eq!(code, 3, "{stdout}{stderr}");
    let sent = instance.requests();
    assert_eq!(paths(&sent), ["/oauth_token.do"], "one token request, refused; nothing else");
    assert_eq!(sent[0].status, 401);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("refused the OAuth client credentials grant"), "{first}");
    assert!(first.contains("[instance] client_secret (inline)"), "where the secret came from: {first}");

    let (code, stdout, _) = run(&["config", "check"], &config);
    assert_eq!(code, 3, "{stdout}");
    assert_eq!(instance.requests().len(), 2, "config check sent one token request");
    assert_eq!(problems(&stdout).len(), 1, "{stdout}");
    assert!(!stdout.contains(CLIENT_SECRET) && !stderr.contains(CLIENT_SECRET), "never the secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_refusing_every_token_sees_one_request_and_its_one_repeat_per_check_and_per_config_check() {
    let server = MockServer::start().await;
    crate::oauth::mount_token_and_refuse_every_api_call(&server).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("midwatch.toml");
    std::fs::write(&config, oauth_config_text(&server.uri(), "oauth_client_credentials")).expect("write config");
    let count = |requests: &[wiremock::Request]| {
        let tokens = requests.iter().filter(|r| r.url.path() == "/oauth_token.do").count();
        (tokens, requests.len() - tokens)
    };

    let (code, stdout, _) = run(&["check"], &config);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.starts_with("MIDWATCH UNKNOWN - the instance refused a freshly issued OAuth token on "), "{stdout}");
    let sent = server.received_requests().await.unwrap_or_default();
    assert_eq!(count(&sent), (2, 2), "one API request, refused; one renewal and one repeat, refused; nothing else");

    let (code, stdout, _) = run(&["config", "check"], &config);
    assert_eq!(code, 3, "{stdout}");
    let sent = server.received_requests().await.unwrap_or_default();
    assert_eq!(count(&sent), (4, 4), "config check: the same two and two");
    assert_eq!(problems(&stdout).len(), 1, "{stdout}");
}

fn paths(requests: &[midwatch_sim::RecordedRequest]) -> Vec<&str> {
    requests.iter().map(|r| r.path.as_str()).collect()
}
