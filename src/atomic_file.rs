//! Writing a file so that a reader (or a crash) sees either the old content or the new, never a mix:
//! a temporary file in the same directory, fsync, rename over the target, fsync the directory.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

/// How old a temporary file of [`write`] must be before another write of the same file removes it as the
/// leftover of a killed process (a live writer's temporary file lives for milliseconds).
const LEFTOVER_AGE: Duration = Duration::from_secs(600);

/// Creates `dir` and any missing parent as 0700 (owner only), as the state directory and its subdirectories
/// must be whoever creates them first (`check` or the service). An existing directory is left as it is; a
/// created one is made durable (its parent fsynced), so a crash cannot lose a directory a file was written to.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    for created in missing {
        sync_dir(created.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")));
    }
    Ok(())
}

/// Makes a creation, rename or removal in `dir` durable. Best effort: not every file system lets a directory
/// be opened.
/// Whether this process can create files in `dir`: an unnamed temporary file, gone when closed (nothing is
/// left behind, even if the process dies).
pub(crate) fn can_create_in(dir: &Path) -> std::io::Result<()> {
    tempfile::tempfile_in(dir).map(drop)
}

pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes what a killed process left of earlier writes in `dir`: temporary files (`<prefix>*.tmp`, where
/// [`write`]'s start with `.<name>.`) older than [`LEFTOVER_AGE`]. Best effort: a file that cannot be removed
/// stays for the next time.
pub(crate) fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else { continue };
        let old = || {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|a| a > LEFTOVER_AGE)
        };
        if n.starts_with(prefix) && n.ends_with(".tmp") && old() && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed a temporary file left by an interrupted write");
        }
    }
}

/// Replaces `path` with `bytes` atomically. `mode` sets the file's permissions explicitly (the
/// process umask would otherwise decide them); `None` keeps the temporary file's private 0600.
pub(crate) fn write(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
        sync_dir(dir.parent().unwrap_or(Path::new(".")));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    remove_leftovers(dir, &format!(".{name}."));
    // A leading dot and no final extension: collectors that read `*.prom` ignore it meanwhile.
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if let Some(mode) = mode {
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn private_directories_are_owner_only_down_to_the_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        super::create_private_dir(&state.join("outbox")).expect("create");
        for d in [&state, &state.join("outbox")] {
            let mode = std::fs::metadata(d).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }

    #[test]
    fn a_write_removes_old_temporary_files_of_the_same_file_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("email-state.json");
        let old = dir.path().join(".email-state.json.Ab12Cd.tmp");
        let fresh = dir.path().join(".email-state.json.Zz99Yy.tmp");
        let other = dir.path().join(".00000001-20261122T120000Z.json.Qq11Rr.tmp");
        for f in [&old, &fresh, &other] {
            std::fs::write(f, b"partial").expect("write");
        }
        let long_ago = std::time::SystemTime::now() - super::LEFTOVER_AGE - std::time::Duration::from_secs(60);
        for f in [&old, &other] {
            std::fs::File::options().write(true).open(f).expect("open").set_modified(long_ago).expect("age");
        }
        super::write(&path, b"{}", None).expect("write");
        assert!(!old.exists(), "an old leftover of this file is removed");
        assert!(fresh.exists(), "a fresh one may belong to a live writer");
        assert!(other.exists(), "another file's leftovers wait for that file's next write");
    }

    #[test]
    fn replaces_the_file_and_sets_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("x.prom");
        super::write(&path, b"one", None).expect("write");
        super::write(&path, b"two", Some(0o644)).expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let leftovers = std::fs::read_dir(path.parent().expect("parent")).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }
}
