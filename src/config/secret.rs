//! Secrets: inline (discouraged), from a `*_file` (what systemd's `LoadCredential=` provides) or from an
//! environment variable named by `*_env`. Every section with a secret describes it as a [`SecretSource`] and
//! resolves it with [`SecretSource::resolve`], so the three sources behave the same everywhere:
//!
//! - a file or a variable is read one way ([`as_written`]): a UTF-8 byte-order mark and one trailing line ending
//!   (LF or CRLF) are removed, nothing else — editors save the first, `echo` and heredocs add the second;
//! - a relative `*_file` is looked up in `$CREDENTIALS_DIRECTORY` when systemd set it, then next to the
//!   configuration file ([`Environment::config_directory`]), and an error names every path tried;
//! - each secret comes with a [`Secret::note`]: where it came from and whether it has leading or trailing spaces
//!   or control characters, never the secret, for the message of refused credentials.
//!
//! A secret is held as [`SecretString`] and never printed.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};

use super::Environment;

/// One secret as a section gives it: the key that names it in messages (`[email] password`, whose sources are
/// `[email] password_file` and `[email] password_env`) and its three sources, of which exactly one is set.
pub(super) struct SecretSource<'a> {
    /// The inline key's name, with its section; `_file` and `_env` are appended for the other two.
    pub(super) key: &'a str,
    /// `KEY = "…"`.
    pub(super) inline: Option<SecretString>,
    /// `KEY_file = "…"`.
    pub(super) file: Option<PathBuf>,
    /// `KEY_env = "…"`: the environment variable's name.
    pub(super) env_var: Option<String>,
}

/// A resolved secret and what may be said about it.
pub(super) struct Secret {
    pub(super) value: SecretString,
    /// `the password from [instance] password_file /etc/midwatch/pw has trailing spaces`: where it came from
    /// and its stray characters, without the secret.
    pub(super) note: String,
}

impl SecretSource<'_> {
    /// Whether any of the three sources is set.
    pub(super) fn is_set(&self) -> bool {
        self.given() > 0
    }

    /// How many of the three sources are set.
    fn given(&self) -> usize {
        usize::from(self.inline.is_some()) + usize::from(self.file.is_some()) + usize::from(self.env_var.is_some())
    }

    /// Exactly one of inline, `_file` and `_env`, read as the module documentation says.
    pub(super) fn resolve(
        self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<Secret> {
        let what = self.key.rsplit(' ').next().unwrap_or(self.key).replace('_', " ");
        let (value, origin) = self.read(env, problems, warnings)?;
        // Whatever an answer quotes from now on is shown without it (`crate::redact`).
        crate::redact::register(value.expose_secret());
        let note = format!("the {what} from {origin} {}", shape(value.expose_secret()));
        Some(Secret { value, note })
    }

    /// The secret and where it came from.
    fn read(
        self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<(SecretString, String)> {
        let key = self.key;
        let given = self.given();
        if given != 1 {
            problems.push(format!(
                "{key}: set exactly one of {key}_file (recommended; e.g. a systemd credential), {key}_env (an \
                 environment variable's name) or {key} (inline, discouraged); {given} are set"
            ));
            return None;
        }
        if let Some(s) = self.inline {
            return Some((s, format!("{key} (inline)")));
        }
        if let Some(path) = self.file {
            return read_file(key, &path, env, problems, warnings);
        }
        let name = self.env_var.unwrap_or_default();
        match env.var(&name).map(|v| as_written(&v).to_string()).filter(|v| !v.is_empty()) {
            Some(v) => Some((SecretString::from(v), format!("{key}_env {name}"))),
            None => {
                problems.push(format!("{key}_env names the environment variable {name}, which is not set or empty"));
                None
            }
        }
    }
}

/// A secret's text as written in a file or a variable: without a UTF-8 byte-order mark and without one
/// trailing line ending (LF or CRLF). Nothing else is removed: a space or a second line ending is part of the
/// secret (and [`shape`] says so).
pub(super) fn as_written(text: &str) -> &str {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.strip_suffix("\r\n").or_else(|| text.strip_suffix('\n')).unwrap_or(text)
}

/// `has no leading or trailing spaces or control characters`, or which of them it has.
fn shape(secret: &str) -> String {
    let invisible = |c: char| c.is_control() || matches!(c, '\u{feff}' | '\u{200b}'..='\u{200d}' | '\u{2060}');
    let flaws: Vec<&str> = [
        (secret.starts_with(char::is_whitespace), "leading spaces"),
        (secret.ends_with(char::is_whitespace), "trailing spaces"),
        (secret.chars().any(invisible), "control characters"),
    ]
    .into_iter()
    .filter_map(|(has, flaw)| has.then_some(flaw))
    .collect();
    match flaws.as_slice() {
        [] => "has no leading or trailing spaces or control characters".to_string(),
        [one] => format!("has {one}"),
        [rest @ .., last] => format!("has {} and {last}", rest.join(", ")),
    }
}

/// Where a `KEY_file` is looked up, in order: an absolute path as it is; a relative one in
/// `$CREDENTIALS_DIRECTORY` (set by systemd's `LoadCredential=`), then next to the configuration file (or,
/// when neither is known, from the working directory).
fn candidates(path: &Path, env: &dyn Environment) -> Vec<PathBuf> {
    if path.is_absolute() {
        return vec![path.to_path_buf()];
    }
    let credentials = env.var("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()).map(PathBuf::from);
    let tried: Vec<PathBuf> = credentials.into_iter().chain(env.config_directory()).map(|dir| dir.join(path)).collect();
    if tried.is_empty() { vec![path.to_path_buf()] } else { tried }
}

/// `KEY_file`: the first of its [`candidates`] that exists, read [`as_written`], and a warning when others can
/// read it. An error names every path tried.
fn read_file(
    key: &str,
    path: &Path,
    env: &dyn Environment,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<(SecretString, String)> {
    let mut missing = Vec::new();
    for candidate in candidates(path, env) {
        let text = match env.read_file(&candidate) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(format!("{} ({e})", candidate.display()));
                continue;
            }
            Err(e) => {
                missing.push(format!("{} ({e})", candidate.display()));
                break;
            }
            Ok(text) => text,
        };
        let shown = candidate.display();
        if let Some(mode) = env.file_mode(&candidate).filter(|m| m & 0o077 != 0) {
            warnings.push(format!(
                "{key}_file {shown} can be read by other users (mode {:o}): run `chmod 600 {shown}` (and `chown` it \
                 to the user midwatch runs as)",
                mode & 0o7777,
            ));
        }
        let secret = as_written(&text);
        if secret.is_empty() {
            problems.push(format!("{key}_file {shown} is empty"));
            return None;
        }
        return Some((SecretString::from(secret.to_string()), format!("{key}_file {shown}")));
    }
    problems.push(format!(
        "{key}_file {} cannot be read: {}{}",
        path.display(),
        missing.join("; "),
        if path.is_relative() {
            "; a relative path is looked up in $CREDENTIALS_DIRECTORY (systemd's LoadCredential=), then next to \
             the configuration file"
        } else {
            ""
        }
    ));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_loses_its_byte_order_mark_and_one_line_ending_and_nothing_else() {
        for (written, secret) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("\u{feff}pw\r\n", "pw"),
            ("pw", "pw"),
            ("pw\n\n", "pw\n"),
            (" pw \n", " pw "),
            ("pw\r", "pw\r"),
        ] {
            assert_eq!(as_written(written), secret, "{written:?}");
        }
    }

    #[test]
    fn the_shape_of_a_secret_names_its_stray_characters_and_never_the_secret() {
        assert_eq!(shape("s3cret"), "has no leading or trailing spaces or control characters");
        assert_eq!(shape("s3cret "), "has trailing spaces");
        assert_eq!(shape(" s3cret"), "has leading spaces");
        assert_eq!(shape("s3cret\n"), "has trailing spaces and control characters");
        assert_eq!(shape("\ts3cret\t"), "has leading spaces, trailing spaces and control characters");
        assert_eq!(shape("s3\u{200b}cret"), "has control characters");
        assert!(!shape("s3cret ").contains("s3cret"));
    }
}
