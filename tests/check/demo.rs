//! `midwatch demo` cleans up after itself: its temporary directory (state and received mail) is removed when it
//! ends, unless `--keep` keeps it (or `--keep DIR` saves the emails there), and then it says where the `.eml`
//! files are. Each run gets a `TMPDIR` of its own, so that what the demo leaves there is all it leaves.

use std::path::{Path, PathBuf};

/// Runs `midwatch demo ARGS` with `TMPDIR=tmp`; returns (exit code, stderr).
fn demo(tmp: &Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_midwatch"))
        .arg("demo")
        .args(args)
        .env("TMPDIR", tmp)
        .env_remove("RUST_LOG")
        .output()
        .expect("run midwatch demo");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    found.sort();
    found
}

fn emails(dir: &Path) -> Vec<PathBuf> {
    entries(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "eml")).collect()
}

#[test]
fn the_demo_leaves_no_directory_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, stderr) = demo(tmp.path(), &["--detail", "summary"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new(), "{stderr}");
    assert!(
        stderr.contains("the 2 email(s) the demo SMTP server received were removed with its temporary directory"),
        "{stderr}"
    );
    assert!(stderr.contains("`midwatch demo --keep` keeps them"), "{stderr}");
    assert!(!stderr.contains("saved as"), "{stderr}");
}

#[test]
fn keep_keeps_the_temporary_directory_and_names_each_email() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, stderr) = demo(tmp.path(), &["--keep", "--detail", "summary"]);
    assert_eq!(code, 2, "{stderr}");
    let kept = entries(tmp.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    let name = kept[0].file_name().and_then(|n| n.to_str()).unwrap_or_default();
    assert!(name.starts_with("midwatch-demo-"), "{name}");
    let mail = emails(&kept[0].join("received-mail"));
    assert_eq!(mail.len(), 2, "one email per cycle: {mail:?}");
    for file in &mail {
        assert!(std::fs::read_to_string(file).expect("eml").contains("Subject: "), "{}", file.display());
        let said = format!("the email received by the demo SMTP server is saved as {}", file.display());
        assert!(stderr.contains(&said), "{said}\n{stderr}");
    }
    assert!(stderr.contains(&format!("kept {} (", kept[0].display())), "{stderr}");
}

#[test]
fn keep_dir_saves_the_emails_there_and_removes_the_temporary_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tempfile::tempdir().expect("tempdir");
    let dir = target.path().join("mail");
    let (code, stderr) = demo(tmp.path(), &["--keep", dir.to_str().expect("UTF-8"), "--format", "json"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new(), "{stderr}");
    let mail = emails(&dir);
    assert_eq!(mail.len(), 2, "{stderr}");
    for file in &mail {
        assert!(stderr.contains(&format!("saved as {}", file.display())), "{stderr}");
    }
    assert!(!stderr.contains("kept "), "{stderr}");
}
