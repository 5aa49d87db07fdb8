//! `midwatch config check` online and offline, through the binary.

use wiremock::matchers::path;
use wiremock::{Mock, MockServer};

use crate::support::*;

fn config_check(server: &MockServer, extra: &str) -> (i32, String) {
    let (dir, file) = config_file(&server.uri());
    if !extra.is_empty() {
        let text = std::fs::read_to_string(&file).expect("read") + extra;
        std::fs::write(&file, text).expect("write");
    }
    let (code, stdout, stderr) = run_binary(&["config", "check", "--config", file.to_str().expect("utf-8")]);
    drop(dir);
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
    (code, stdout)
}

#[tokio::test]
async fn config_check_names_every_unreadable_table() {
    let server = MockServer::start().await;
    let forbidden = r#"{"error":{"message":"Insufficient rights to query records","detail":null},"status":"failure"}"#;
    for table in ["sysevent", "ecc_agent_config"] {
        Mock::given(path(format!("/api/now/table/{table}")))
            .respond_with(json_response(403, forbidden))
            .mount(&server)
            .await;
    }
    mount_demo_tables(&server, &["sysevent", "ecc_agent_config", "sys_user_login_history"]).await;
    let (code, stdout) = config_check(&server, "");
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("problem: the account may not read table sysevent"), "{stdout}");
    assert!(stdout.contains("problem: the account may not read table ecc_agent_config"), "{stdout}");
    assert!(stdout.contains("2 problem(s) found"));
}

#[tokio::test]
async fn config_check_passes_on_a_readable_instance() {
    let server = MockServer::start().await;
    mount_demo_tables(&server, &[]).await;
    let (code, stdout) = config_check(&server, "");
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("sys_user_login_history is readable"), "{stdout}");
    assert!(!stdout.contains("warning:"));
}

#[tokio::test]
async fn shared_source_with_the_active_builtin_job_is_a_warning_that_says_why() {
    let server = MockServer::start().await;
    mount_demo_tables(&server, &[]).await;
    let sysauto =
        r#"{"result":[{"sys_id":"5a5a0000000000000000000000000001","name":"MIDUserConnectivity","active":"true"}]}"#;
    Mock::given(path("/api/now/table/sysauto")).respond_with(json_response(200, sysauto)).mount(&server).await;
    let (code, stdout) = config_check(&server, "\n[check]\nissue_source = \"MIDUserConnectivity\"\n");
    assert_eq!(code, 0, "a warning, not a failure: {stdout}");
    assert!(
        stdout.contains("warning: [check] issue_source is \"MIDUserConnectivity\" while the built-in scheduled job"),
        "{stdout}"
    );
    assert!(stdout.contains("resolves the other's records"), "{stdout}");

    let inactive =
        r#"{"result":[{"sys_id":"5a5a0000000000000000000000000001","name":"MIDUserConnectivity","active":"false"}]}"#;
    let server2 = MockServer::start().await;
    mount_demo_tables(&server2, &[]).await;
    Mock::given(path("/api/now/table/sysauto")).respond_with(json_response(200, inactive)).mount(&server2).await;
    let (_, stdout) = config_check(&server2, "\n[check]\nissue_source = \"MIDUserConnectivity\"\n");
    assert!(!stdout.contains("warning:"), "the built-in job is inactive: {stdout}");
}

#[test]
fn offline_config_check_refuses_a_socks_proxy_an_ftp_proxy_and_a_non_pem_ca_file() {
    for proxy in ["socks5://proxy.corp:1080", "ftp://proxy.corp"] {
        let (dir, file) = config_file("https://acme.service-now.com");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").expect("write ca");
        let text = std::fs::read_to_string(&file).expect("read")
            + &format!("proxy = \"{proxy}\"\nca_file = \"{}\"\n", ca.display());
        std::fs::write(&file, text).expect("write");
        let (code, stdout, stderr) =
            run_binary(&["config", "check", "--offline", "--config", file.to_str().expect("utf-8")]);
        assert_eq!(code, 3, "{stdout}{stderr}");
        assert!(stderr.contains(&format!("[instance] proxy \"{proxy}\" has scheme")), "{stderr}");
        assert!(stderr.contains(&format!("[instance] ca_file {} holds no PEM certificate", ca.display())), "{stderr}");
        assert!(!stdout.contains("valid"), "{stdout}");
    }
}

#[test]
fn an_unreachable_instance_is_one_problem_with_its_url_and_no_query() {
    // A port nothing listens on: bound, then closed again.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (_dir, file) = config_file(&format!("http://127.0.0.1:{port}"));
    let (code, stdout, stderr) = run_binary(&["config", "check", "--config", file.to_str().expect("utf-8")]);
    let all = format!("{stdout}{stderr}");
    assert_eq!(code, 3, "{all}");
    assert_eq!(all.matches("cannot reach").count(), 1, "one cause, said once: {all}");
    assert!(all.contains(&format!("problem: cannot reach http://127.0.0.1:{port}: ")), "{all}");
    assert!(all.contains("check [instance] url, DNS, the proxy and the firewall"), "{all}");
    assert!(!all.contains("sysparm_"), "no query strings: {all}");
    assert!(all.contains("1 problem(s) found"), "{all}");
}

/// A config for `config check --offline` that sends email, keeping its outbox in `state`.
fn config_with_state(state: &std::path::Path) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, file) = config_file("https://acme.service-now.com");
    let text = std::fs::read_to_string(&file).expect("read")
        + &format!(
            "\n[email]\nurl = \"smtp://127.0.0.1:2525\"\ntls = \"none\"\nfrom = \"midwatch@acme.com\"\nto = \
             \"admins@acme.com\"\n\n[state]\ndirectory = \"{}\"\n",
            state.display()
        );
    std::fs::write(&file, text).expect("write");
    (dir, file)
}

/// `config check --offline` on a config whose state directory is `state`: (exit code, its problem lines).
fn state_problems(state: &std::path::Path) -> (i32, Vec<String>) {
    let (_dir, file) = config_with_state(state);
    let (code, stdout, stderr) =
        run_binary(&["config", "check", "--offline", "--config", file.to_str().expect("utf-8")]);
    assert!(stdout.contains(": valid"), "the file itself is valid: {stdout}{stderr}");
    (code, stdout.lines().filter(|l| l.starts_with("problem: ")).map(str::to_string).collect())
}

#[test]
fn config_check_reports_a_state_directory_a_cycle_cannot_use() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    // A file where the directory should be, and a directory below a file: neither can hold the outbox.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").expect("write");
    for state in [file.clone(), file.join("state")] {
        let (code, problems) = state_problems(&state);
        assert_eq!(code, 3, "{problems:?}");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains(&format!("the state directory {}", state.display())), "{problems:?}");
    }
    let root = std::fs::metadata(&file).expect("metadata").uid() == 0;
    // Another user's directory: only root can give one away.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    if std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).is_ok() {
        let (code, problems) = state_problems(&foreign);
        assert_eq!(code, 3, "{problems:?}");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("belongs to uid 65534") && problems[0].contains("sudo -u '#65534'"),
            "{problems:?}"
        );
    } else {
        eprintln!("not root: a directory of another user cannot be set up");
    }
    // Not writable: root writes anywhere, so only an unprivileged run can see this.
    if !root {
        let read_only = dir.path().join("read-only");
        std::fs::create_dir(&read_only).expect("mkdir");
        let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o500);
        std::fs::set_permissions(&read_only, mode).expect("chmod");
        let (code, problems) = state_problems(&read_only);
        assert_eq!(code, 3, "{problems:?}");
        assert!(problems.len() == 1 && problems[0].contains("not writable"), "{problems:?}");
    }
    // A usable directory, and one a cycle will create: no problem, and config check creates nothing.
    let usable = dir.path().join("usable");
    std::fs::create_dir(&usable).expect("mkdir");
    assert_eq!(state_problems(&usable), (0, Vec::new()));
    let missing = dir.path().join("new/state");
    assert_eq!(state_problems(&missing), (0, Vec::new()));
    assert!(!dir.path().join("new").exists(), "config check creates nothing");
    assert_eq!(std::fs::read_dir(&usable).expect("read").count(), 0, "and leaves nothing behind");
}
