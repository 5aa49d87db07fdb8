use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::*;
use crate::messages::MessageStyle;

#[derive(Default)]
struct FakeEnv {
    vars: BTreeMap<String, String>,
    files: BTreeMap<PathBuf, String>,
}

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

fn parse(text: &str, env: &FakeEnv) -> Result<Config, ConfigError> {
    Config::parse("test.toml", text, env)
}

const MINIMAL: &str = r#"
[instance]
url = "https://acme.service-now.com"
user = "midwatch"
password_file = "/run/secret"
"#;

fn env_with_secret() -> FakeEnv {
    let mut env = FakeEnv::default();
    env.files.insert("/run/secret".into(), "s3cret\n".into());
    env
}

#[test]
fn minimal_config_gets_every_default() {
    let c = parse(MINIMAL, &env_with_secret()).expect("valid");
    assert_eq!(c.instance.name, "acme");
    assert_eq!(c.instance.password.expose_secret(), "s3cret", "trailing newline of the file is dropped");
    assert_eq!(c.instance.page_size, 1000);
    assert_eq!(c.check.window, DEFAULT_WINDOW);
    assert_eq!(c.check.issue_source, "midwatch");
    assert_eq!(c.check.messages, MessageStyle::Documented);
    assert!(c.check.write_issues);
}

#[test]
fn example_config_is_valid() {
    let text = include_str!("../../config/midwatch.example.toml");
    let mut env = FakeEnv::default();
    env.files.insert("/run/credentials/midwatch.service/instance_password".into(), "x".into());
    env.vars.insert("CREDENTIALS_DIRECTORY".into(), "/run/credentials/midwatch.service".into());
    parse(text, &env).expect("the documented example parses");
}

#[test]
fn every_problem_is_named_with_its_key() {
    let text = r#"
[instance]
url = "http://acme.service-now.com"
page_size = 0
timeout = "soon"
password = "a"
password_env = "B"

[check]
window = "2m"
messages = "fancy"
"#;
    let err = parse(text, &FakeEnv::default()).expect_err("invalid");
    let all = err.to_string();
    for needle in [
        "[instance] url \"http://acme.service-now.com\" uses plain http",
        "[instance] user is required",
        "[instance] password: set exactly one of",
        "[instance] timeout = \"soon\" is not a duration",
        "[instance] page_size = 0 is out of range",
        "[check] window: a window of 2m is below the 5-minute minimum",
        "[check] messages = \"fancy\"",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(all.lines().all(|l| l.starts_with("test.toml: ")));
}

#[test]
fn http_is_accepted_only_for_loopback() {
    for ok in ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "https://acme.service-now.com/"] {
        assert!(parse_instance_url(ok).is_ok(), "{ok}");
    }
    for bad in
        ["http://10.0.0.1", "ftp://x", "https://u:p@acme.service-now.com", "https://acme.service-now.com/now/nav"]
    {
        assert!(parse_instance_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn secrets_come_from_env_or_credentials_directory_and_never_print() {
    let text = MINIMAL.replace("password_file = \"/run/secret\"", "password_env = \"SN_PASS\"");
    let mut env = FakeEnv::default();
    env.vars.insert("SN_PASS".into(), "from-env".into());
    let c = parse(&text, &env).expect("valid");
    assert_eq!(c.instance.password.expose_secret(), "from-env");
    assert!(!format!("{c:?}").contains("from-env"), "Debug must redact the secret");

    let text = MINIMAL.replace("/run/secret", "instance_password");
    let mut env = FakeEnv::default();
    env.vars.insert("CREDENTIALS_DIRECTORY".into(), "/run/credentials/x".into());
    env.files.insert("/run/credentials/x/instance_password".into(), "cred".into());
    assert_eq!(parse(&text, &env).expect("valid").instance.password.expose_secret(), "cred");

    let err =
        parse(&MINIMAL.replace("password_file = \"/run/secret\"", "password_env = \"NOPE\""), &FakeEnv::default())
            .expect_err("unset variable");
    assert!(err.to_string().contains("NOPE, which is not set"));
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let err = parse(&format!("{MINIMAL}\npage_sise = 10\n"), &env_with_secret()).expect_err("typo");
    assert!(err.to_string().contains("page_sise"), "{err}");
}

#[test]
fn window_below_five_minutes_is_refused() {
    assert!(validate_window(std::time::Duration::from_secs(299)).is_err());
    assert!(validate_window(std::time::Duration::from_secs(300)).is_ok());
}
