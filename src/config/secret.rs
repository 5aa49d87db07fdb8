//! Secrets: inline (discouraged), from a `*_file` (what systemd's `LoadCredential=` provides) or from an
//! environment variable named by `*_env`. Every section with a secret goes through [`resolve_secret`], so the
//! three sources behave the same everywhere. A secret is held as [`SecretString`] and never printed.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};

use super::Environment;

/// Exactly one of inline, `_file` and `_env`. A relative `_file` is looked up in systemd's
/// `$CREDENTIALS_DIRECTORY` when that is set.
pub(crate) fn resolve_secret(
    key: &str,
    inline: Option<SecretString>,
    file: Option<PathBuf>,
    env_name: Option<String>,
    env: &dyn Environment,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<SecretString> {
    let secret = read_secret(key, inline, file, env_name, env, problems, warnings)?;
    // Whatever an answer quotes from now on is shown without it (`crate::redact`).
    crate::redact::register(secret.expose_secret());
    Some(secret)
}

fn read_secret(
    key: &str,
    inline: Option<SecretString>,
    file: Option<PathBuf>,
    env_name: Option<String>,
    env: &dyn Environment,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<SecretString> {
    let given = usize::from(inline.is_some()) + usize::from(file.is_some()) + usize::from(env_name.is_some());
    if given != 1 {
        problems.push(format!(
            "{key}: set exactly one of {key}_file (recommended; e.g. a systemd credential), {key}_env (an environment \
             variable's name) or {key} (inline, discouraged); {given} are set"
        ));
        return None;
    }
    if let Some(s) = inline {
        return Some(s);
    }
    if let Some(path) = file {
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
        return match env.read_file(&path) {
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
        };
    }
    let name = env_name.unwrap_or_default();
    match env.var(&name).filter(|v| !v.is_empty()) {
        Some(v) => Some(SecretString::from(v)),
        None => {
            problems.push(format!("{key}_env names the environment variable {name}, which is not set or empty"));
            None
        }
    }
}
