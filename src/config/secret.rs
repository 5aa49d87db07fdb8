//! Secrets: inline (discouraged), from a `*_file` (what systemd's `LoadCredential=` provides) or from an
//! environment variable named by `*_env`. Every section with a secret describes it as a [`SecretSource`] and
//! resolves it with [`SecretSource::resolve`], so the three sources behave the same everywhere. A secret is
//! held as [`SecretString`] and never printed.

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

impl SecretSource<'_> {
    /// Whether any of the three sources is set.
    pub(super) fn is_set(&self) -> bool {
        self.given() > 0
    }

    /// How many of the three sources are set.
    fn given(&self) -> usize {
        usize::from(self.inline.is_some()) + usize::from(self.file.is_some()) + usize::from(self.env_var.is_some())
    }

    /// Exactly one of inline, `_file` and `_env`. A relative `_file` is looked up in systemd's
    /// `$CREDENTIALS_DIRECTORY` when that is set.
    pub(super) fn resolve(
        self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<SecretString> {
        let secret = self.read(env, problems, warnings)?;
        // Whatever an answer quotes from now on is shown without it (`crate::redact`).
        crate::redact::register(secret.expose_secret());
        Some(secret)
    }

    fn read(
        self,
        env: &dyn Environment,
        problems: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Option<SecretString> {
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
            return Some(s);
        }
        if let Some(path) = self.file {
            return read_file(key, path, env, problems, warnings);
        }
        let name = self.env_var.unwrap_or_default();
        match env.var(&name).filter(|v| !v.is_empty()) {
            Some(v) => Some(SecretString::from(v)),
            None => {
                problems.push(format!("{key}_env names the environment variable {name}, which is not set or empty"));
                None
            }
        }
    }
}

/// `KEY_file`: the file's text without its trailing line breaks, and a warning when others can read it.
fn read_file(
    key: &str,
    path: PathBuf,
    env: &dyn Environment,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<SecretString> {
    let path = match (path.is_relative(), env.var("CREDENTIALS_DIRECTORY")) {
        (true, Some(dir)) => Path::new(&dir).join(path),
        _ => path,
    };
    if let Some(mode) = env.file_mode(&path).filter(|m| m & 0o077 != 0) {
        warnings.push(format!(
            "{key}_file {} can be read by other users (mode {:o}): run `chmod 600 {}` (and `chown` it to the \
             user midwatch runs as)",
            path.display(),
            mode & 0o7777,
            path.display()
        ));
    }
    match env.read_file(&path) {
        Ok(s) if !s.trim_end_matches(['\r', '\n']).is_empty() => {
            Some(SecretString::from(s.trim_end_matches(['\r', '\n']).to_string()))
        }
        Ok(_) => {
            problems.push(format!("{key}_file {} is empty", path.display()));
            None
        }
        Err(e) => {
            problems.push(format!("{key}_file {} cannot be read: {e}", path.display()));
            None
        }
    }
}
