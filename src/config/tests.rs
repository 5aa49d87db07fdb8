use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::strategy::Strategy as _;
use secrecy::ExposeSecret;

use super::check::{MAX_WINDOW, validate_window};
use super::*;
use crate::domain::MessageStyle;
use crate::snow::auth::Credentials;

#[derive(Default)]
struct FakeEnv {
    vars: BTreeMap<String, String>,
    files: BTreeMap<PathBuf, String>,
    /// Where the configuration file is, when it came from one.
    config_directory: Option<PathBuf>,
}

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn config_directory(&self) -> Option<PathBuf> {
        self.config_directory.clone()
    }
}

fn parse(text: &str, env: &FakeEnv) -> Result<Config, ConfigError> {
    Config::parse("test.toml", text, env)
}

/// The Basic-auth password of a config.
fn password(c: &Config) -> &str {
    match &c.instance.auth {
        Credentials::Basic { password, .. } => password.expose_secret(),
        other => panic!("not basic: {other:?}"),
    }
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
    assert_eq!(password(&c), "s3cret", "trailing newline of the file is dropped");
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
    assert_eq!(password(&c), "from-env");
    assert!(!format!("{c:?}").contains("from-env"), "Debug must redact the secret");

    let text = MINIMAL.replace("/run/secret", "instance_password");
    let mut env = FakeEnv::default();
    env.vars.insert("CREDENTIALS_DIRECTORY".into(), "/run/credentials/x".into());
    env.files.insert("/run/credentials/x/instance_password".into(), "cred".into());
    assert_eq!(password(&parse(&text, &env).expect("valid")), "cred");

    let err =
        parse(&MINIMAL.replace("password_file = \"/run/secret\"", "password_env = \"NOPE\""), &FakeEnv::default())
            .expect_err("unset variable");
    assert!(err.to_string().contains("NOPE, which is not set"));
}

#[test]
fn secrets_are_read_as_people_write_them() {
    let text = MINIMAL.replace("/run/secret", "instance_password");
    let mut env = FakeEnv { config_directory: Some("/etc/midwatch".into()), ..FakeEnv::default() };
    env.files.insert("/etc/midwatch/instance_password".into(), "\u{feff}beside\r\n".into());
    let c = parse(&text, &env).expect("found next to the config file, without the BOM and the CRLF");
    assert_eq!(password(&c), "beside");
    assert_eq!(
        c.instance.secret_notes,
        ["the password from [instance] password_file /etc/midwatch/instance_password has no leading or trailing \
          spaces or control characters"]
    );

    env.vars.insert("CREDENTIALS_DIRECTORY".into(), "/run/credentials/x".into());
    env.files.insert("/run/credentials/x/instance_password".into(), "systemd's \n".into());
    let c = parse(&text, &env).expect("the credentials directory first");
    assert_eq!(password(&c), "systemd's ");
    assert!(c.instance.secret_notes[0].ends_with("/run/credentials/x/instance_password has trailing spaces"));

    let env = FakeEnv {
        vars: [("CREDENTIALS_DIRECTORY".to_string(), "/run/credentials/x".to_string())].into(),
        config_directory: Some("/etc/midwatch".into()),
        ..FakeEnv::default()
    };
    let err = parse(&text, &env).expect_err("nowhere").to_string();
    for tried in ["/run/credentials/x/instance_password", "/etc/midwatch/instance_password"] {
        assert!(err.contains(tried), "names {tried}: {err}");
    }

    let text = MINIMAL.replace("password_file = \"/run/secret\"", "password_env = \"SN_PASS\"");
    let mut env = FakeEnv::default();
    env.vars.insert("SN_PASS".into(), "from-env\n".into());
    let c = parse(&text, &env).expect("valid");
    assert_eq!(password(&c), "from-env", "a variable loses its line ending as a file does");
    assert_eq!(
        c.instance.secret_notes,
        ["the password from [instance] password_env SN_PASS has no leading or trailing spaces or control characters"]
    );
    env.vars.insert("SN_PASS".into(), "\n".into());
    assert!(parse(&text, &env).is_err(), "a variable holding only a line ending is empty");
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

// ---------------------------------------------------------------------------------------------------------------
// Every problem at once, unknown keys included

#[test]
fn three_unknown_keys_are_named_at_once_with_their_section() {
    let text = r#"
[instance]
url = "https://acme.service-now.com"
user = "midwatch"
pasword_file = "/run/secret"

[check]
windw = "4h"

[extra]
a = 1
"#;
    let err = parse(text, &env_with_secret()).expect_err("three unknown keys");
    let all = err.to_string();
    for needle in [
        "test.toml: [instance] unknown field `pasword_file`: did you mean `password_file`?",
        "test.toml: [check] unknown field `windw`: did you mean `window`?",
        "test.toml: unknown section [extra]: remove it; the sections are [instance], [check], [email], \
         [alertmanager], [state], [log], [metrics]",
    ] {
        assert!(all.lines().any(|l| l == needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn an_unknown_key_without_a_close_spelling_names_where_it_belongs_or_what_the_section_has() {
    let text = format!("{MINIMAL}window = \"4h\"\nfoo = 1\n[emial]\nurl = \"smtp://x\"\n");
    let all = parse(&text, &env_with_secret()).expect_err("unknown keys").to_string();
    assert!(all.contains("[instance] unknown field `window`: it belongs in [check]"), "{all}");
    assert!(all.contains("[instance] unknown field `foo`: remove it; [instance] has url, name, auth,"), "{all}");
    assert!(all.contains("unknown section [emial]: did you mean [email]?"), "{all}");

    let all = parse(&format!("url = \"x\"\n{MINIMAL}"), &env_with_secret()).expect_err("top-level key").to_string();
    assert!(all.contains("`url` is outside any section: move it below the [instance] or [email] line"), "{all}");
}

#[test]
fn a_value_of_the_wrong_type_is_named_and_the_rest_of_its_section_is_still_checked() {
    let text = r#"
[instance]
url = 5
user = "midwatch"
password = 12345
page_size = "10"
timeout = "soon"
"#;
    let all = parse(text, &FakeEnv::default()).expect_err("wrong types").to_string();
    for needle in [
        "[instance] url: invalid type: integer `5`, expected a string",
        "[instance] page_size: invalid type: string \"10\", expected an integer (without quotes)",
        "[instance] password must be a string in quotes (the value is not shown: it is a secret)",
        "[instance] timeout = \"soon\" is not a duration",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(!all.contains("url is required"), "the url is there, with the wrong type:\n{all}");
    assert!(!all.contains("set exactly one of"), "the password is there, with the wrong type:\n{all}");
    assert!(!all.contains("12345"), "a secret is never echoed:\n{all}");
    assert!(all.lines().all(|l| l.starts_with("test.toml: [instance] ")), "one line per problem:\n{all}");

    let all = parse(
        &format!("{MINIMAL}[email]\nurl = \"smtp://m.acme.com\"\nfrom = \"a@acme.com\"\nto = 5\n"),
        &env_with_secret(),
    )
    .expect_err("to is a number")
    .to_string();
    assert!(
        all.contains("[email] to: expected an address or a list of addresses, e.g. to = [\"mid-admins@acme.com\"]"),
        "{all}"
    );
    assert!(!all.contains("to needs at least one address"), "{all}");
}

#[test]
fn a_toml_syntax_error_names_the_line_and_does_not_echo_it() {
    let err = parse("[instance]\npassword = \"s3cret\n", &FakeEnv::default()).expect_err("not TOML").to_string();
    assert!(err.starts_with("test.toml: not valid TOML at line 2, column "), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------------
// [instance] proxy and ca_file, checked offline

#[test]
fn a_proxy_is_http_or_https_only() {
    for ok in ["http://proxy.corp:3128", "https://proxy.corp"] {
        let c = parse(&format!("{MINIMAL}proxy = \"{ok}\"\n"), &env_with_secret()).expect(ok);
        assert!(c.instance.proxy.is_some());
    }
    for (bad, scheme) in [("ftp://proxy.corp:21", "ftp"), ("socks5://proxy.corp:1080", "socks5")] {
        let err = parse(&format!("{MINIMAL}proxy = \"{bad}\"\n"), &env_with_secret()).expect_err(bad).to_string();
        assert!(
            err.contains(&format!(
                "[instance] proxy \"{bad}\" has scheme {scheme}: midwatch talks to a proxy over http:// or https:// \
                 only (it is built without SOCKS support)"
            )),
            "{err}"
        );
    }
    let err = parse(&format!("{MINIMAL}proxy = \"proxy.corp:3128\"\n"), &env_with_secret()).expect_err("no scheme");
    assert!(err.to_string().contains("[instance] proxy \"proxy.corp:3128\""), "{err}");
}

#[test]
fn a_proxy_password_is_neither_echoed_nor_in_debug_output() {
    let c = parse(&format!("{MINIMAL}proxy = \"http://u:pr0xypw@proxy.corp:3128\"\n"), &env_with_secret())
        .expect("a proxy with credentials");
    assert!(!format!("{c:?}").contains("pr0xypw"), "{c:?}");
    let err = parse(&format!("{MINIMAL}proxy = \"socks5://u:pr0xypw@proxy.corp\"\n"), &env_with_secret())
        .expect_err("socks")
        .to_string();
    assert!(err.contains("\"socks5://…@proxy.corp\""), "{err}");
    assert!(!err.contains("pr0xypw"), "{err}");
}

/// A self-signed test CA (`openssl req -x509 -newkey ec …`), valid until 2126.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBjTCCATOgAwIBAgIUEun0QWgTHrY41IHEhkqIfjcWTfYwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQbWlkd2F0Y2ggdGVzdCBDQTAgFw0yNjEyMDEyMTA5MTFaGA8y
MTI2MTEwNzIxMDkxMVowGzEZMBcGA1UEAwwQbWlkd2F0Y2ggdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABFx8W8RoivL1JmB75KBy/875OBCZz3l2kbGC
55OBxQPm/kJRsh6vm+P9s6T/daJzge2YOhw4n5hHxfjn/BFE9/ijUzBRMB0GA1Ud
DgQWBBSlkcSsaN//XDQNRf26jDovyA55CzAfBgNVHSMEGDAWgBSlkcSsaN//XDQN
Rf26jDovyA55CzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIBBZ
BlmYUapBaRLyl0W/2yRyhlrc6x36yr6ko31ubaogAiEA8gYZZgiOMRn1EM+h/903
d5s2UzYvm7bdCJEZbaW6Nis=
-----END CERTIFICATE-----
";

#[test]
fn ca_file_must_hold_a_pem_certificate() {
    let with_ca = |contents: &str| {
        let mut env = env_with_secret();
        env.files.insert("/etc/midwatch/ca.pem".into(), contents.into());
        parse(&format!("{MINIMAL}ca_file = \"/etc/midwatch/ca.pem\"\n"), &env).map_err(|e| e.to_string())
    };
    let c = with_ca(TEST_CA).expect("a PEM certificate");
    assert_eq!(c.instance.ca_file.as_deref(), Some(Path::new("/etc/midwatch/ca.pem")));
    with_ca(&format!("# the proxy's CA\n{TEST_CA}{TEST_CA}")).expect("a bundle with text around it");

    for (contents, expected) in [
        ("not a certificate at all", "[instance] ca_file /etc/midwatch/ca.pem holds no PEM certificate"),
        (
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n",
            "[instance] ca_file /etc/midwatch/ca.pem holds no PEM certificate",
        ),
        (
            "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n",
            "[instance] ca_file /etc/midwatch/ca.pem is not a valid PEM certificate file",
        ),
    ] {
        let err = with_ca(contents).expect_err(contents);
        assert!(err.contains(expected), "{contents:?}: {err}");
        assert!(err.contains("openssl x509 -inform der"), "says how to convert: {err}");
    }
    let err = parse(&format!("{MINIMAL}ca_file = \"/nope.pem\"\n"), &env_with_secret()).expect_err("missing");
    assert!(err.to_string().contains("[instance] ca_file /nope.pem cannot be read"), "{err}");
}

#[test]
fn email_ca_file_is_checked_like_the_instance_one_and_named_as_email() {
    let email = |ca: &str| {
        format!(
            "{MINIMAL}\n[email]\nurl = \"smtp://smtp.acme.com:587\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"\nca_file = \"{ca}\"\n"
        )
    };
    let mut env = env_with_secret();
    env.files.insert("/etc/midwatch/smtp-ca.pem".into(), format!("{TEST_CA}{TEST_CA}"));
    env.files.insert("/etc/midwatch/empty.pem".into(), "no certificate here\n".into());
    let c = parse(&email("/etc/midwatch/smtp-ca.pem"), &env).expect("a PEM bundle");
    let cfg = c.email.expect("[email]");
    assert_eq!(cfg.ca_file.as_deref(), Some(Path::new("/etc/midwatch/smtp-ca.pem")));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let err = parse(&email("/nope.pem"), &env).expect_err("missing").to_string();
    assert!(err.contains("[email] ca_file /nope.pem cannot be read"), "{err}");
    assert!(!err.contains("[instance]"), "{err}");
    let err = parse(&email("/etc/midwatch/empty.pem"), &env).expect_err("no certificate").to_string();
    assert!(err.contains("[email] ca_file /etc/midwatch/empty.pem holds no PEM certificate"), "{err}");
    assert!(err.contains("openssl x509 -inform der"), "says how to convert: {err}");
}

#[test]
fn email_ca_file_with_plaintext_smtp_is_a_warning() {
    let mut env = env_with_secret();
    env.files.insert("/etc/midwatch/smtp-ca.pem".into(), TEST_CA.into());
    let text =
        format!("{MINIMAL}{EMAIL_LOOPBACK}url = \"smtp://127.0.0.1:25\"\nca_file = \"/etc/midwatch/smtp-ca.pem\"\n");
    let c = parse(&text, &env).expect("valid");
    assert!(
        c.warnings.iter().any(|w| w.contains("[email] ca_file is not used with tls = \"none\"")),
        "{:?}",
        c.warnings
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Loopback, instance names, the window maximum

const EMAIL_LOOPBACK: &str = "\n[email]\ntls = \"none\"\nfrom = \"a@acme.com\"\nto = \"b@acme.com\"\n";

#[test]
fn email_max_size_is_1mb_by_default_and_takes_bytes_or_a_unit_within_its_bounds() {
    let with = |v: &str| format!("{MINIMAL}{EMAIL_LOOPBACK}url = \"smtp://127.0.0.1:25\"\n{v}");
    let size = |v: &str| parse(&with(v), &env_with_secret()).map(|c| c.email.expect("[email]").max_size);
    assert_eq!(size("").expect("default"), 1_000_000);
    assert_eq!(size("max_size = 2000000\n").expect("bytes"), 2_000_000);
    assert_eq!(size("max_size = \"5MB\"\n").expect("MB"), 5_000_000);
    assert_eq!(size("max_size = \"500 kB\"\n").expect("kB"), 500_000);
    assert_eq!(size("max_size = \"10MiB\"\n").expect("MiB"), 10 * 1024 * 1024);
    for (bad, says) in [
        ("max_size = \"big\"\n", "[email] max_size = \"big\" is not a size: expected e.g. \"1MB\""),
        ("max_size = \"1.5MB\"\n", "[email] max_size = \"1.5MB\" is not a size"),
        ("max_size = \"99999999999999999999MB\"\n", "is not a size"),
        ("max_size = 1000\n", "[email] max_size = 1000 must be between 100kB and 100MB"),
        ("max_size = -5\n", "[email] max_size = -5 must be between 100kB and 100MB"),
        ("max_size = \"1GB\"\n", "[email] max_size = \"1GB\" is not a size"),
        ("max_size = \"200MB\"\n", "[email] max_size = \"200MB\" must be between 100kB and 100MB"),
        ("max_size = true\n", "[email] max_size: expected a size, e.g. max_size = \"1MB\""),
    ] {
        let e = size(bad).expect_err(bad).to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn plaintext_smtp_is_accepted_for_every_loopback_host_and_refused_elsewhere() {
    for host in ["127.0.0.1", "127.1.2.3", "[::1]", "localhost", "LocalHost"] {
        let text = format!("{MINIMAL}{EMAIL_LOOPBACK}url = \"smtp://{host}:25\"\n");
        let c = parse(&text, &env_with_secret()).unwrap_or_else(|e| panic!("{host}: {e}"));
        let email = c.email.expect("[email]");
        assert_eq!(email.tls, TlsMode::None);
        assert_eq!(email.host, host.trim_matches(['[', ']']));
    }
    for host in ["192.0.2.1", "[2001:db8::1]", "smtp.acme.com", "localhost.acme.com"] {
        let text = format!("{MINIMAL}{EMAIL_LOOPBACK}url = \"smtp://{host}:25\"\n");
        let err = parse(&text, &env_with_secret()).expect_err(host).to_string();
        assert!(err.contains("[email] tls = \"none\" sends mail (and any password) in clear"), "{host}: {err}");
    }
}

#[test]
fn loopback_hosts_are_recognised_by_their_address() {
    for host in ["127.0.0.1", "127.255.0.9", "::1", "[::1]", "localhost", "LOCALHOST"] {
        assert!(is_loopback_host(host), "{host}");
    }
    for host in ["192.0.2.1", "10.0.0.1", "::", "[2001:db8::1]", "localhost.example", "127.0.0.1.example", ""] {
        assert!(!is_loopback_host(host), "{host}");
    }
    assert!(parse_instance_url("http://127.3.2.1:8080").is_ok());
    assert!(parse_instance_url("http://192.0.2.1:8080").is_err());
}

#[test]
fn an_instance_on_an_ip_address_is_named_by_the_whole_address() {
    for (url, name) in [
        ("http://127.0.0.1:8080", "127.0.0.1"),
        ("http://[::1]:8080", "::1"),
        ("https://192.0.2.10", "192.0.2.10"),
        ("https://acme.service-now.com", "acme"),
        ("http://localhost:1", "localhost"),
    ] {
        let text = MINIMAL.replace("https://acme.service-now.com", url);
        assert_eq!(parse(&text, &env_with_secret()).expect(url).instance.name, name, "{url}");
    }
}

#[test]
fn window_above_thirty_days_is_refused_in_the_file_and_on_the_command_line() {
    assert_eq!(validate_window(MAX_WINDOW), Ok(MAX_WINDOW));
    let err = validate_window(MAX_WINDOW + std::time::Duration::from_secs(3600)).expect_err("above");
    assert!(err.starts_with("a window of 30.0 days"), "{err}");
    assert!(err.contains("above the 30-day maximum"), "{err}");
    assert!(err.contains("sysevent rows about 7 days by default"), "says why: {err}");
    assert!(err.ends_with("use at most 30d"), "says what to do: {err}");

    let err = parse_window("1000000000d").expect_err("absurd");
    assert!(err.starts_with("a window of 1000000000 days is above the 30-day maximum"), "{err}");
    assert!(parse_window("30d").is_ok());

    let err = parse(&format!("{MINIMAL}[check]\nwindow = \"31d\"\n"), &env_with_secret()).expect_err("31d");
    assert!(err.to_string().contains("[check] window: a window of 31 days is above the 30-day maximum"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------------
// The example config

/// The example with its commented-out `[email]` section enabled: every line that begins with `#` directly
/// followed by a key or a section header is uncommented (the convention the example's comments describe).
fn example_with_email() -> String {
    include_str!("../../config/midwatch.example.toml")
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn example_env() -> FakeEnv {
    let mut env = FakeEnv::default();
    env.files.insert("/run/credentials/midwatch.service/instance_password".into(), "x".into());
    env.vars.insert("CREDENTIALS_DIRECTORY".into(), "/run/credentials/midwatch.service".into());
    env
}

#[test]
fn example_config_as_shipped_sends_no_email_so_editing_instance_is_enough() {
    let c = parse(include_str!("../../config/midwatch.example.toml"), &example_env()).expect("as shipped");
    assert!(c.email.is_none(), "[email] ships commented out");
    assert_eq!(c.instance.name, "acme");
    assert_eq!(c.check.window, DEFAULT_WINDOW);
}

#[test]
fn example_config_email_section_is_valid_once_uncommented() {
    let text = example_with_email();
    assert!(text.contains("\n[email]\n"), "the convention uncovers [email]");
    let email = parse(&text, &example_env()).expect("[email] uncommented").email.expect("[email]");
    assert_eq!((email.host.as_str(), email.port, email.tls), ("smtp.acme.com", 587, TlsMode::Required));
    assert_eq!(email.send, SendPolicy::OnChange);
    assert!(email.credentials.is_none(), "the alternatives of user/password stay commented");
}

#[test]
fn example_config_alertmanager_section_ships_commented_and_is_valid_once_uncommented() {
    let shipped = parse(include_str!("../../config/midwatch.example.toml"), &example_env()).expect("as shipped");
    assert!(shipped.alertmanager.is_none(), "[alertmanager] ships commented out");
    let text = example_with_email();
    assert!(text.contains("\n[alertmanager]\n"), "the convention uncovers [alertmanager]");
    let peers = parse(&text, &example_env()).expect("uncommented").alertmanager.expect("[alertmanager]");
    let urls: Vec<&str> = peers.urls.iter().map(url::Url::as_str).collect();
    assert_eq!(urls, ["https://am1.acme.com:9093/", "https://am2.acme.com:9093/"]);
    assert!(peers.auth.is_none(), "the credentials stay commented");
    assert_eq!(peers.timeout, Duration::from_secs(10));
}

#[test]
fn the_cycle_deadline_defaults_below_a_plugins_limit_and_is_bounded() {
    let c = parse(MINIMAL, &env_with_secret()).expect("valid");
    assert_eq!(c.check.timeout, Duration::from_secs(50));
    let c = parse(&format!("{MINIMAL}\n[check]\ntimeout = \"2m\"\n"), &env_with_secret()).expect("valid");
    assert_eq!(c.check.timeout, Duration::from_secs(120));
    for bad in ["1s", "2d", "later"] {
        let e = parse(&format!("{MINIMAL}\n[check]\ntimeout = \"{bad}\"\n"), &env_with_secret()).expect_err(bad);
        assert!(e.to_string().contains("[check] timeout"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// OAuth

const CLIENT_CREDENTIALS: &str = r#"
[instance]
url = "https://acme.service-now.com"
auth = "oauth_client_credentials"
client_id = "3f2a8c1e9b7d4e6fa0c5d2b8e1f4a7c9"
client_secret_file = "client_secret"
"#;

fn env_with_client_secret() -> FakeEnv {
    let mut env = FakeEnv::default();
    env.vars.insert("CREDENTIALS_DIRECTORY".into(), "/run/credentials/midwatch.service".into());
    env.files.insert("/run/credentials/midwatch.service/client_secret".into(), "cl1ent-s3cret\n".into());
    env.files.insert("/run/secret".into(), "s3cret\n".into());
    env
}

#[test]
fn client_credentials_take_a_client_id_and_a_secret_from_the_credentials_directory() {
    let c = parse(CLIENT_CREDENTIALS, &env_with_client_secret()).expect("valid");
    let Credentials::OAuthClientCredentials { client } = &c.instance.auth else { panic!("{:?}", c.instance.auth) };
    assert_eq!(client.id, "3f2a8c1e9b7d4e6fa0c5d2b8e1f4a7c9");
    assert_eq!(client.secret.expose_secret(), "cl1ent-s3cret", "looked up in $CREDENTIALS_DIRECTORY, newline dropped");
    assert!(!format!("{c:?}").contains("cl1ent-s3cret"), "Debug must redact the client secret");
    assert_eq!(c.instance.auth.method(), "oauth_client_credentials");
}

#[test]
fn the_password_grant_takes_the_client_and_the_account() {
    let text = format!("{CLIENT_CREDENTIALS}user = \"svc.midwatch\"\npassword_file = \"/run/secret\"\n")
        .replace("oauth_client_credentials", "oauth_password")
        .replace("client_secret_file = \"client_secret\"", "client_secret_env = \"SN_CLIENT_SECRET\"");
    let mut env = env_with_client_secret();
    env.vars.insert("SN_CLIENT_SECRET".into(), "from-env-secret".into());
    let c = parse(&text, &env).expect("valid");
    let Credentials::OAuthPassword { client, user, password } = &c.instance.auth else {
        panic!("{:?}", c.instance.auth)
    };
    assert_eq!(
        (client.secret.expose_secret(), user.as_str(), password.expose_secret()),
        ("from-env-secret", "svc.midwatch", "s3cret")
    );
    let shown = format!("{c:?}");
    assert!(!shown.contains("from-env-secret") && !shown.contains("s3cret"), "{shown}");
}

#[test]
fn each_auth_method_names_the_keys_it_lacks_and_the_keys_it_does_not_use() {
    let all = |text: &str| parse(text, &env_with_client_secret()).expect_err("invalid").to_string();

    let err = all("[instance]\nurl = \"https://acme.service-now.com\"\nauth = \"oauth_client_credentials\"\n");
    assert!(
        err.contains(
            "[instance] client_id is required with OAuth: the Client ID of the instance's Application Registry entry"
        ),
        "{err}"
    );
    assert!(err.contains("[instance] client_secret: set exactly one of [instance] client_secret_file"), "{err}");
    assert!(!err.contains("user is required"), "client credentials need no user: {err}");

    let err = all(&format!("{CLIENT_CREDENTIALS}user = \"svc\"\npassword = \"pw-inline\"\nclient_secret = \"x\"\n"));
    assert!(err.contains("[instance] user is not used with auth = \"oauth_client_credentials\": the calls run as the OAuth Application User"), "{err}");
    assert!(err.contains("[instance] password is not used with auth"), "{err}");
    assert!(err.contains("[instance] client_secret: set exactly one of"), "two sources: {err}");
    assert!(!err.contains("pw-inline"), "{err}");

    let err = all(&format!("{MINIMAL}client_id = \"abc\"\nclient_secret_env = \"X\"\n"));
    assert!(err.contains("[instance] client_id is not used with auth = \"basic\": it belongs to OAuth"), "{err}");
    assert!(err.contains("[instance] client_secret_env is not used with auth = \"basic\""), "{err}");

    let err = all(&CLIENT_CREDENTIALS.replace("oauth_client_credentials", "oauth_password"));
    assert!(err.contains("[instance] user is required"), "{err}");
    assert!(err.contains("[instance] password: set exactly one of"), "{err}");

    let err = all(&MINIMAL.replace("user = ", "auth = \"oauth\"\nuser = "));
    assert!(err.contains("[instance] auth = \"oauth\" is not known: expected \"basic\", \"oauth_client_credentials\" or \"oauth_password\": OAuth is"), "{err}");
}

#[test]
fn a_client_secret_of_the_wrong_type_is_not_echoed() {
    let text = CLIENT_CREDENTIALS.replace("client_secret_file = \"client_secret\"", "client_secret = 987654321");
    let err = parse(&text, &env_with_client_secret()).expect_err("a number").to_string();
    assert!(
        err.contains("[instance] client_secret must be a string in quotes (the value is not shown: it is a secret)"),
        "{err}"
    );
    assert!(!err.contains("987654321"), "{err}");
    assert!(!err.contains("set exactly one of"), "the secret is there, with the wrong type: {err}");
}

#[test]
fn example_config_oauth_examples_are_valid_once_uncommented() {
    // Each OAuth method of the example: its `# auth = …` line and the client lines uncommented, and, for client
    // credentials, the Basic-auth account removed.
    let example = include_str!("../../config/midwatch.example.toml");
    for method in ["oauth_client_credentials", "oauth_password"] {
        let auth_line = format!("# auth = \"{method}\"");
        assert!(example.lines().any(|l| l == auth_line), "the example shows {method}");
        let text: Vec<&str> = example
            .lines()
            .filter_map(|line| match line {
                "auth = \"basic\"" => None,
                "user = \"svc.midwatch\"" | "password_file = \"instance_password\""
                    if method == "oauth_client_credentials" =>
                {
                    None
                }
                l if l == auth_line || l.starts_with("# client_id = ") || l.starts_with("# client_secret_file = ") => {
                    l.get(2..)
                }
                l => Some(l),
            })
            .collect();
        let text = text.join("\n");
        let mut env = example_env();
        env.files.insert("/run/credentials/midwatch.service/client_secret".into(), "x".into());
        let c = parse(&text, &env).unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(c.instance.auth.method(), method);
    }
}

#[test]
fn a_secret_file_others_can_read_is_a_warning_naming_the_chmod_to_run() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("password");
    std::fs::write(&secret, "s3cret\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let text = MINIMAL.replace("password_file = \"/run/secret\"", &format!("password_file = \"{}\"", secret.display()));
    let c = Config::parse("test.toml", &text, &super::ProcessEnvironment).expect("valid: only a warning");
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("mode 644") && c.warnings[0].contains(&format!("chmod 600 {}", secret.display())));
    assert!(!c.warnings[0].contains("s3cret"), "never the secret itself");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let c = Config::parse("test.toml", &text, &super::ProcessEnvironment).expect("valid");
    assert_eq!(c.warnings, Vec::<String>::new());
}

proptest::proptest! {
    #![proptest_config(crate::proptest_config())]

    /// No file makes the config parser panic: arbitrary text, and well-formed sections with arbitrary values.
    #[test]
    fn no_config_file_panics(text in "\\PC{0,400}") {
        let _ = Config::parse("fuzz.toml", &text, &FakeEnv::default());
    }

    #[test]
    fn no_value_of_a_known_key_panics(
        key in proptest::prop_oneof![
            "url", "name", "user", "password", "timeout", "page_size", "concurrency", "auth", "ca_file", "proxy",
            "window", "schedule", "down_for", "early_warnings", "messages", "issue_source", "directory", "format", "level", "textfile",
            "tls", "from", "to", "send", "outbox_max_age", "outbox_max_messages", "remind_every",
        ],
        section in proptest::prop_oneof!["instance", "check", "email", "state", "log", "metrics"],
        value in proptest::prop_oneof![
            "\\PC{0,30}".prop_map(|s| format!("{s:?}")),
            proptest::num::i64::ANY.prop_map(|n| n.to_string()),
            proptest::num::f64::ANY.prop_map(|f| format!("{f:?}")),
            proptest::bool::ANY.prop_map(|b| b.to_string()),
            "\\PC{0,10}".prop_map(|s| format!("[{s:?}, {s:?}]")),
        ],
    ) {
        let base = "[instance]\nurl = \"https://acme.service-now.com\"\nuser = \"u\"\npassword = \"p\"\n";
        let text = if section == "instance" {
            format!("{base}{key} = {value}\n")
        } else {
            format!("{base}\n[{section}]\n{key} = {value}\n")
        };
        let _ = Config::parse("fuzz.toml", &text, &FakeEnv::default());
    }
}

#[test]
fn a_refused_instance_url_is_said_in_words_with_the_url_to_write() {
    let refused = |u: &str| parse_instance_url(u).expect_err(u);
    assert_eq!(
        refused("mycorp"),
        "\"mycorp\" is not a URL (it needs https:// and the whole host name): write \"https://mycorp.service-now.com\""
    );
    assert_eq!(
        refused("mycorp.service-now.com"),
        "\"mycorp.service-now.com\" is not a URL (it needs https:// in front): write \"https://mycorp.service-now.com\""
    );
    assert_eq!(
        refused("mycorp.service-now.com:443"),
        "\"mycorp.service-now.com:443\" has no host name: write \"https://mycorp.service-now.com\""
    );
    assert_eq!(
        refused("https://mycorp.service-now.com/api/now/table/sys_user"),
        "\"https://mycorp.service-now.com/api/now/table/sys_user\" must be the instance root, without a path: write \
         \"https://mycorp.service-now.com\" (midwatch adds /api/now/… itself)"
    );
    assert!(
        refused("https://mycorp.service-now.com/now/nav/ui/classic?x=1")
            .contains("write \"https://mycorp.service-now.com\"")
    );
    assert!(refused("http://mycorp.service-now.com").ends_with("write \"https://mycorp.service-now.com\""));
    assert_eq!(refused("https://"), "\"https://\" has no host name: expected e.g. \"https://acme.service-now.com\"");
    assert_eq!(
        refused("https://mycorp.service-now.com:99999"),
        "\"https://mycorp.service-now.com:99999\" has a port that is not a number from 1 to 65535: expected e.g. \
         \"https://mycorp.service-now.com\""
    );
    // The url crate's own words are not the message; credentials typed into the URL are never repeated.
    for u in ["mycorp", "https://", "https://my corp.service-now.com", "user:secret@mycorp"] {
        let e = refused(u);
        assert!(!e.contains("relative URL") && !e.contains("empty host") && !e.contains("secret"), "{u}: {e}");
    }
}

#[test]
fn an_smtp_url_without_its_scheme_gets_the_urls_to_write() {
    let text = format!("{MINIMAL}[email]\nurl = \"smtp.mycorp.com\"\nfrom = \"a@mycorp.com\"\nto = \"b@mycorp.com\"\n");
    let all = parse(&text, &FakeEnv::default()).expect_err("no scheme").to_string();
    assert!(
        all.contains(
            "[email] url = \"smtp.mycorp.com\" needs smtp:// or smtps:// in front: write \"smtp://smtp.mycorp.com:587\" \
             (STARTTLS) or \"smtps://smtp.mycorp.com\" (implicit TLS)"
        ),
        "{all}"
    );
    assert!(!all.contains("relative URL"), "{all}");
}
