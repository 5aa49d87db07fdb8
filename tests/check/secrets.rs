//! Secrets as people write them, through the binary against the simulated instance: a file saved with a
//! byte-order mark and a CRLF, a variable holding a trailing newline, and a relative `password_file` run outside
//! systemd (found next to the configuration file) or under it (found in `$CREDENTIALS_DIRECTORY` first).

use std::path::Path;
use std::process::Command;

use midwatch_sim::{Dataset, FakeInstance};

use crate::support::*;

/// Runs `midwatch check --dry-run` on `config` from `/` with exactly the given environment variables (besides
/// `PATH`); returns (exit code, stdout, stderr).
fn check_with(config: &Path, vars: &[(&str, &str)]) -> (i32, String, String) {
    run_with(&["check", "--dry-run"], config, vars)
}

fn run_with(args: &[&str], config: &Path, vars: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_midwatch"))
        .args(args)
        .args(["--config", config.to_str().expect("utf-8 path")])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .current_dir("/")
        .output()
        .expect("run midwatch");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A config at `dir/midwatch.toml` for `url` whose password comes from `password_line`.
fn site(dir: &Path, url: &str, password_line: &str) -> std::path::PathBuf {
    let file = dir.join("midwatch.toml");
    let text =
        format!("[instance]\nurl = \"{url}\"\nname = \"acme\"\nuser = \"{USER}\"\n{password_line}\ntimeout = \"5s\"\n");
    std::fs::write(&file, text).expect("write config");
    file
}

fn write_secret(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write secret");
    let owner_only = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(path, owner_only).expect("chmod secret");
}

/// The check signed in: it completed (exit 0 to 2) and the instance refused nothing.
fn assert_signed_in(instance: &FakeInstance, (code, stdout, stderr): (i32, String, String)) {
    assert!((0..=2).contains(&code), "exit {code}:\n{stdout}{stderr}");
    let refused: Vec<_> = instance.requests().into_iter().filter(|r| r.status == 401).collect();
    assert!(refused.is_empty(), "{} requests refused", refused.len());
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD), "never the secret");
}

async fn instance() -> FakeInstance {
    FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_file_saved_with_a_byte_order_mark_and_a_crlf_signs_in() {
    let instance = instance().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("pw");
    write_secret(&secret, format!("\u{feff}{PASSWORD}\r\n").as_bytes());
    let config = site(dir.path(), &instance.url(), &format!("password_file = \"{}\"", secret.display()));
    assert_signed_in(&instance, check_with(&config, &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_variable_with_a_trailing_newline_signs_in() {
    let instance = instance().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = site(dir.path(), &instance.url(), "password_env = \"MIDWATCH_TEST_PASSWORD\"");
    let value = format!("{PASSWORD}\n");
    assert_signed_in(&instance, check_with(&config, &[("MIDWATCH_TEST_PASSWORD", &value)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_password_file_is_found_next_to_the_config_file_outside_systemd() {
    let instance = instance().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_secret(&dir.path().join("instance_password"), format!("{PASSWORD}\n").as_bytes());
    let config = site(dir.path(), &instance.url(), "password_file = \"instance_password\"");
    // Run from `/`, as the README's Icinga CheckCommand and `sudo midwatch check` are.
    assert_signed_in(&instance, check_with(&config, &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_password_file_is_looked_up_in_the_credentials_directory_first() {
    let instance = instance().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = tempfile::tempdir().expect("credentials directory");
    write_secret(&credentials.path().join("instance_password"), format!("{PASSWORD}\n").as_bytes());
    // A stale copy next to the config file is not the one systemd hands over.
    write_secret(&dir.path().join("instance_password"), b"stale-password\n");
    let config = site(dir.path(), &instance.url(), "password_file = \"instance_password\"");
    let credentials_dir = credentials.path().to_str().expect("utf-8");
    assert_signed_in(&instance, check_with(&config, &[("CREDENTIALS_DIRECTORY", credentials_dir)]));
}

#[test]
fn a_relative_password_file_that_is_nowhere_names_every_path_tried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = tempfile::tempdir().expect("credentials directory");
    let config = site(dir.path(), "https://acme.service-now.com", "password_file = \"instance_password\"");
    let credentials_dir = credentials.path().to_str().expect("utf-8");
    let (code, stdout, stderr) =
        run_with(&["config", "check", "--offline"], &config, &[("CREDENTIALS_DIRECTORY", credentials_dir)]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    for tried in [credentials.path().join("instance_password"), dir.path().join("instance_password")] {
        assert!(stderr.contains(&tried.display().to_string()), "names {}:\n{stderr}", tried.display());
    }
    let (code, _, stderr) = run_with(&["config", "check", "--offline"], &config, &[]);
    assert_eq!(code, 3);
    assert!(stderr.contains(&dir.path().join("instance_password").display().to_string()), "{stderr}");
}
