//! The real-instance path rehearsed against the simulator: what `midwatch-sim --smtp --write-config PATH`
//! starts and writes.
//!
//! [`Rehearsal::start`] serves the demo data set (its events shifted into the window ending now, the instance's
//! clock the host's) with the account of `midwatch demo`, and with `smtp` an [`SmtpSink`] on loopback too.
//! [`Rehearsal::write_config`] writes a midwatch configuration that points at them as a real one points at an
//! instance: `[instance] url` and `user`, `password_file = "instance_password"` written beside it (mode 600,
//! found next to the configuration as `/etc/midwatch/instance_password` is on a host), a `[state] directory`,
//! a `[check] schedule` of every minute (so that `midwatch run` shows a cycle soon), and, with an SMTP server,
//! an `[email]` section with `tls = "none"` (accepted for loopback only). It never overwrites a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::smtp::SmtpSink;
use crate::{Dataset, FakeInstance};

/// The account the simulated instance accepts (that of `midwatch demo`).
pub const USER: &str = "svc.midwatch";
/// Its password.
pub const PASSWORD: &str = "demo-password";
/// The password file's name, beside the written configuration.
pub const PASSWORD_FILE: &str = "instance_password";
/// The sender of the written `[email]` section.
pub const FROM: &str = "midwatch <midwatch@rehearsal.invalid>";
/// Its one recipient.
pub const TO: &str = "mid-admins@rehearsal.invalid";

/// The simulated instance, and the SMTP server when asked for. Dropping it stops both.
#[derive(Debug)]
pub struct Rehearsal {
    pub instance: FakeInstance,
    pub smtp: Option<SmtpSink>,
}

/// The files [`Rehearsal::write_config`] wrote, and the state directory it configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenConfig {
    /// The configuration, absolute.
    pub config: PathBuf,
    /// `instance_password` beside it, mode 600.
    pub password_file: PathBuf,
    /// The `[state] directory` it names (not created: midwatch creates it, mode 700).
    pub state_directory: PathBuf,
}

impl Rehearsal {
    /// Starts the simulated instance with the demo data set as of `now`, and with `smtp` an SMTP server that
    /// saves each message it accepts in `save_dir` when given.
    pub async fn start(now: DateTime<Utc>, smtp: bool, save_dir: Option<PathBuf>) -> std::io::Result<Rehearsal> {
        let instance = FakeInstance::start(Dataset::demo(now), USER, PASSWORD).await?;
        let smtp = if smtp { Some(SmtpSink::start(save_dir).await?) } else { None };
        Ok(Rehearsal { instance, smtp })
    }

    /// `smtp://127.0.0.1:PORT`, with an SMTP server.
    pub fn smtp_url(&self) -> Option<String> {
        self.smtp.as_ref().map(|sink| format!("smtp://127.0.0.1:{}", sink.port()))
    }

    /// Writes the configuration to `path` (its directory created if missing) and `instance_password` beside it;
    /// the state directory is `state_dir`, else `state` beside the configuration. Refuses, writing nothing, when
    /// either file exists.
    pub fn write_config(&self, path: &Path, state_dir: Option<&Path>) -> std::io::Result<WrittenConfig> {
        let (config, password_file) = new_files(path)?;
        let dir = config.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
        let state_directory = match state_dir {
            Some(d) => std::path::absolute(d)?,
            None => dir.join("state"),
        };
        let text = self.config_text(&state_directory)?;
        std::fs::create_dir_all(&dir)?;
        write_new(&password_file, 0o600, format!("{PASSWORD}\n").as_bytes())?;
        if let Err(e) = write_new(&config, 0o644, text.as_bytes()) {
            let _ = std::fs::remove_file(&password_file);
            return Err(e);
        }
        Ok(WrittenConfig { config, password_file, state_directory })
    }

    /// The configuration's text.
    fn config_text(&self, state_directory: &Path) -> std::io::Result<String> {
        let state = state_directory.to_str().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the state directory {} is not UTF-8, which TOML cannot hold", state_directory.display()),
            )
        })?;
        let mut text = format!(
            "# midwatch's configuration for the simulated instance of midwatch-sim (`midwatch-sim --write-config`).\n\
             # A real one has the same shape: the instance's url, your account, its password in instance_password;\n\
             # leave out [state] and the schedule there (the README's \"Use it on a real instance\").\n\
             \n\
             [instance]\n\
             url = {url}\n\
             user = {USER:?}\n\
             # Beside this file, mode 600, as /etc/midwatch/instance_password is beside /etc/midwatch/midwatch.toml.\n\
             password_file = {PASSWORD_FILE:?}\n\
             \n\
             [check]\n\
             # Every minute, so that `midwatch run` shows a cycle soon; the default is every 4 hours (\"0 0 */4 * * *\").\n\
             schedule = \"0 * * * * *\"\n\
             \n\
             [state]\n\
             directory = {state}\n",
            url = toml_string(&self.instance.url()),
            state = toml_string(state),
        );
        if let Some(url) = self.smtp_url() {
            text.push_str(&format!(
                "\n[email]\n\
                 url = {url}\n\
                 # midwatch-sim's SMTP server speaks no TLS; \"none\" is accepted for a loopback server only.\n\
                 tls = \"none\"\n\
                 from = {from}\n\
                 to = [{to}]\n",
                url = toml_string(&url),
                from = toml_string(FROM),
                to = toml_string(TO),
            ));
        }
        Ok(text)
    }
}

/// The configuration `path` would be and its password file beside it, both absolute; an error when either
/// exists (what [`Rehearsal::write_config`] refuses, checked before anything is started).
pub fn new_files(path: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    let config = std::path::absolute(path)?;
    let password_file =
        config.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/")).join(PASSWORD_FILE);
    for file in [&config, &password_file] {
        if file.symlink_metadata().is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists, and midwatch-sim never overwrites a file: give another path, or remove it first",
                    file.display()
                ),
            ));
        }
    }
    Ok((config, password_file))
}

/// Creates `path` with `mode` and writes `bytes`; an existing file is an error.
fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(toml_string(r#"/tmp/a "b"\c"#), r#""/tmp/a \"b\"\\c""#);
        assert_eq!(toml_string("a\nb\u{7f}"), r#""a\u000Ab\u007F""#);
    }

    #[tokio::test]
    async fn the_config_is_written_beside_its_password_and_never_over_a_file() {
        let dir = std::env::temp_dir().join(format!("midwatch-sim-rehearsal-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rehearsal = Rehearsal::start(Utc::now(), true, None).await.expect("start");
        let path = dir.join("sub").join("midwatch.toml");
        let written = rehearsal.write_config(&path, None).expect("write");
        assert_eq!(written.password_file, dir.join("sub").join(PASSWORD_FILE));
        assert_eq!(written.state_directory, dir.join("sub").join("state"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&written.password_file).expect("password file").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&written.password_file).expect("read"), "demo-password\n");
        let text = std::fs::read_to_string(&written.config).expect("read");
        assert!(text.contains(&format!("url = \"{}\"\n", rehearsal.instance.url())), "{text}");
        assert!(text.contains(&format!("url = \"{}\"\n", rehearsal.smtp_url().expect("smtp"))), "{text}");
        // A second time: refused, and the first files are left as they were.
        std::fs::remove_file(&written.password_file).expect("remove the password file");
        let again = rehearsal.write_config(&path, None).expect_err("the config exists");
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(again.to_string().contains("never overwrites"), "{again}");
        assert!(!written.password_file.exists(), "nothing is written when the config exists");
        assert_eq!(std::fs::read_to_string(&written.config).expect("read"), text);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
