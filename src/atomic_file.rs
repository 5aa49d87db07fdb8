//! Writing a file so that a reader (or a crash) sees either the old content or the new, never a mix:
//! a temporary file in the same directory, fsync, rename over the target, fsync the directory.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// Creates `dir` and any missing parent as 0700 (owner only), as the state directory and its subdirectories
/// must be whoever creates them first (`check` or the service). An existing directory is left as it is.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Replaces `path` with `bytes` atomically. `mode` sets the file's permissions explicitly (the
/// process umask would otherwise decide them); `None` keeps the temporary file's private 0600.
pub(crate) fn write(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // A leading dot and no final extension: collectors that read `*.prom` ignore it meanwhile.
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if let Some(mode) = mode {
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Makes the rename durable. Best effort: not every file system lets a directory be opened.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
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
