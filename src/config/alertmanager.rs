//! `[alertmanager]`: the peers of a Prometheus Alertmanager cluster that every cycle posts its findings to, how
//! midwatch signs in to them and whom it trusts over TLS. `alerts` takes the validated [`AlertmanagerConfig`];
//! this module knows nothing of posting.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::duration::{Bounded, KEY_EXAMPLES};
use super::secret::SecretSource;
use super::{Environment, check_ca_file, is_loopback_host, without_userinfo};

/// `[alertmanager] timeout`: its default and bounds (each request to one peer).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const TIMEOUTS: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(300);

/// The `[alertmanager]` section as written in the file.
#[derive(Debug, Deserialize, Default)]
pub(super) struct RawAlertmanager {
    urls: Option<Vec<String>>,
    bearer_token_file: Option<PathBuf>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    timeout: Option<String>,
}

/// How midwatch signs in to the peers. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub(crate) enum PeerAuth {
    /// `Authorization: Bearer <token>` (`bearer_token_file`).
    Bearer(SecretString),
    /// HTTP Basic (`user` + `password_file`).
    Basic { user: String, password: SecretString },
}

/// A validated `[alertmanager]` section.
#[derive(Debug, Clone)]
pub(crate) struct AlertmanagerConfig {
    /// Every peer of the cluster, each once: alerts go to all of them (the peers do not pass alerts on to each
    /// other; they share only what they notified and their silences).
    pub(crate) urls: Vec<Url>,
    pub(crate) auth: Option<PeerAuth>,
    /// PEM certificates trusted besides the system's roots, as `[instance] ca_file`.
    pub(crate) ca_file: Option<PathBuf>,
    /// The limit of one request to one peer (the cycle's deadline bounds them all).
    pub(crate) timeout: Duration,
}

impl RawAlertmanager {
    /// Validates `[alertmanager]`, naming every problem with its key.
    pub(super) fn validate(
        self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<AlertmanagerConfig> {
        let before = problems.len();
        let urls = validate_urls(self.urls, problems);
        let auth = validate_auth(self.bearer_token_file, self.user, self.password_file, env, (problems, warnings));
        if let Some(ca) = &self.ca_file
            && let Err(e) = check_ca_file("[alertmanager] ca_file", ca, env)
        {
            problems.push(e);
        }
        let timeout =
            Bounded::new(TIMEOUTS, KEY_EXAMPLES, &|_| "[alertmanager] timeout must be between 1s and 5m".into())
                .key_or("[alertmanager] timeout", self.timeout.as_deref(), DEFAULT_TIMEOUT, problems);
        let config = AlertmanagerConfig { urls: urls?, auth: auth?, ca_file: self.ca_file, timeout: timeout? };
        (problems.len() == before).then_some(config)
    }
}

/// `urls`: at least one, each an Alertmanager's root (or the path prefix it is served under), each once.
fn validate_urls(urls: Option<Vec<String>>, problems: &mut Vec<String>) -> Option<Vec<Url>> {
    let list = urls.unwrap_or_default();
    if list.is_empty() {
        problems.push(
            "[alertmanager] urls needs every peer of the Alertmanager cluster, e.g. urls = [\"https://am1:9093\", \
             \"https://am2:9093\"]"
                .into(),
        );
        return None;
    }
    let mut ok = true;
    let mut urls: Vec<Url> = Vec::new();
    for (i, text) in list.iter().enumerate() {
        match parse_peer_url(text) {
            Ok(url) if urls.contains(&url) => {
                ok = false;
                problems.push(format!("[alertmanager] urls[{i}] = \"{text}\" is listed twice: list each peer once"));
            }
            Ok(url) => urls.push(url),
            Err(problem) => {
                ok = false;
                problems.push(format!("[alertmanager] urls[{i}] {problem}"));
            }
        }
    }
    ok.then_some(urls)
}

/// A peer: `https://` anywhere, `http://` only for loopback, as the instance's URL; a path is the prefix the
/// Alertmanager is served under (`--web.route-prefix`, a reverse proxy); no credentials, query or fragment.
fn parse_peer_url(text: &str) -> Result<Url, String> {
    let example = "expected e.g. \"https://am1.acme.com:9093\"";
    let mut url =
        Url::parse(text).map_err(|e| format!("= \"{}\" is not a URL ({e}): {example}", without_userinfo(text)))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain credentials: set [alertmanager] bearer_token_file, or user and password_file".into()
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("= \"{text}\" must not have a query or fragment: {example}"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("= \"{text}\" has no host: {example}"));
    }
    match url.scheme() {
        "https" => {}
        "http" if url.host_str().is_some_and(is_loopback_host) => {}
        "http" => {
            return Err(format!(
                "= \"{text}\" uses plain http: only https is accepted, except for loopback addresses (127.0.0.1, \
                 ::1, localhost)"
            ));
        }
        other => return Err(format!("= \"{text}\" has scheme {other}: {example}")),
    }
    // A prefix ends with `/`, so that `api/v2/alerts` joins below it.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `bearer_token_file`, or `user` with `password_file`, or neither.
fn validate_auth(
    token_file: Option<PathBuf>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    env: &dyn Environment,
    (problems, warnings): (&mut Vec<String>, &mut Vec<String>),
) -> Option<Option<PeerAuth>> {
    let user = user.filter(|u| !u.trim().is_empty());
    let file_secret = |key, file| SecretSource { key, inline: None, file: Some(file), env_var: None };
    match (token_file, user, password_file) {
        (None, None, None) => Some(None),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            problems.push(
                "[alertmanager] set either bearer_token_file or user and password_file, not both: a peer takes one \
                 Authorization header"
                    .into(),
            );
            None
        }
        (Some(file), None, None) => file_secret("[alertmanager] bearer_token", file)
            .resolve(env, problems, warnings)
            .map(|token| Some(PeerAuth::Bearer(token.value))),
        (None, Some(user), Some(file)) => {
            let password = file_secret("[alertmanager] password", file).resolve(env, problems, warnings)?;
            // The Basic header carries `user:password` in base64: what a quoted answer might echo.
            crate::redact::register(&format!("{user}:{}", secrecy::ExposeSecret::expose_secret(&password.value)));
            Some(Some(PeerAuth::Basic { user, password: password.value }))
        }
        (None, Some(_), None) => {
            problems.push("[alertmanager] user is set but password_file is not: set password_file too".into());
            None
        }
        (None, None, Some(_)) => {
            problems.push("[alertmanager] password_file is set but user is not: set user too".into());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use secrecy::ExposeSecret as _;

    use super::*;

    struct Files(Vec<(&'static str, &'static str)>);

    impl Environment for Files {
        fn var(&self, _: &str) -> Option<String> {
            None
        }

        fn read_file(&self, path: &Path) -> std::io::Result<String> {
            let found = self.0.iter().find(|(p, _)| Path::new(p) == path);
            found.map(|(_, text)| text.to_string()).ok_or_else(|| std::io::ErrorKind::NotFound.into())
        }

        fn file_mode(&self, _: &Path) -> Option<u32> {
            Some(0o600)
        }
    }

    fn validate(text: &str, env: &Files) -> Result<AlertmanagerConfig, Vec<String>> {
        let raw: RawAlertmanager = toml::from_str(text).expect("TOML");
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        raw.validate(env, &mut problems, &mut warnings).ok_or(problems)
    }

    #[test]
    fn every_peer_is_kept_in_order_with_its_defaults() {
        let c = validate(r#"urls = ["https://am1.acme.com:9093", "http://127.0.0.1:9093/am"]"#, &Files(vec![]))
            .expect("valid");
        let urls: Vec<&str> = c.urls.iter().map(Url::as_str).collect();
        assert_eq!(urls, ["https://am1.acme.com:9093/", "http://127.0.0.1:9093/am/"]);
        assert!(c.auth.is_none());
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.urls[1].join("api/v2/alerts").expect("join").as_str(), "http://127.0.0.1:9093/am/api/v2/alerts");
    }

    #[test]
    fn plain_http_is_refused_but_for_loopback_and_every_bad_url_is_named() {
        let e = validate(
            r#"urls = ["http://am1.acme.com:9093", "https://u:p@am2:9093", "ftp://am3", "https://am4/?x=1", "https://am4/?x=1"]"#,
            &Files(vec![]),
        )
        .expect_err("refused");
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].starts_with("[alertmanager] urls[0] = \"http://am1.acme.com:9093\" uses plain http"), "{e:?}");
        assert!(e[1].contains("must not contain credentials") && !e[1].contains("u:p"), "{e:?}");
        assert!(e[2].contains("has scheme ftp"), "{e:?}");
        assert!(e[3].contains("must not have a query"), "{e:?}");
        let e = validate(r#"urls = ["https://am1:9093", "https://am1:9093/"]"#, &Files(vec![])).expect_err("twice");
        assert_eq!(e, ["[alertmanager] urls[1] = \"https://am1:9093/\" is listed twice: list each peer once"]);
        let e = validate("urls = []", &Files(vec![])).expect_err("none");
        assert!(e[0].starts_with("[alertmanager] urls needs every peer"), "{e:?}");
    }

    #[test]
    fn a_bearer_token_or_a_user_and_password_come_from_files() {
        let env = Files(vec![("/etc/midwatch/am_token", "t0ken-value\n"), ("/etc/midwatch/am_pw", "pa55word\n")]);
        let c = validate(
            "urls = [\"https://am1:9093\"]\nbearer_token_file = \"/etc/midwatch/am_token\"\ntimeout = \"3s\"",
            &env,
        )
        .expect("token");
        assert!(matches!(&c.auth, Some(PeerAuth::Bearer(t)) if t.expose_secret() == "t0ken-value"));
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert!(!format!("{c:?}").contains("t0ken-value"), "Debug shows no secret");
        let c = validate(
            "urls = [\"https://am1:9093\"]\nuser = \"midwatch\"\npassword_file = \"/etc/midwatch/am_pw\"",
            &env,
        )
        .expect("basic");
        assert!(matches!(&c.auth, Some(PeerAuth::Basic { user, password })
            if user == "midwatch" && password.expose_secret() == "pa55word"));
    }

    #[test]
    fn half_or_double_credentials_are_refused() {
        let env = Files(vec![("/t", "t0ken"), ("/p", "pa55")]);
        for (keys, expected) in [
            ("bearer_token_file = \"/t\"\nuser = \"u\"\npassword_file = \"/p\"", "not both"),
            ("user = \"u\"", "password_file is not"),
            ("password_file = \"/p\"", "user is not"),
            ("bearer_token_file = \"/missing\"", "[alertmanager] bearer_token_file /missing cannot be read"),
            ("timeout = \"1h\"", "[alertmanager] timeout must be between 1s and 5m"),
        ] {
            let e = validate(&format!("urls = [\"https://am1:9093\"]\n{keys}"), &env).expect_err(keys);
            assert!(e.iter().any(|p| p.contains(expected)), "{keys}: {e:?}");
        }
    }
}
