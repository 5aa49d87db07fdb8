//! What notification keeps on disk, in the state directory:
//!
//! - `email-state.json`: the findings of the last email composed and their digest ([`NotifiedState`]);
//! - `outbox/NNNNNNNN-YYYYMMDDTHHMMSSZ.json`: one fully rendered message still owed to some recipients
//!   ([`OutboxEntry`]), oldest first by name;
//! - `email.lock`: held during a cycle's notification (`StateLock`).
//!
//! A state directory that cannot hold them (not a directory, another user's, not writable, not creatable) is
//! one `LockError`, found before anything is read or written (`check_state_directory`, which `config check`
//! runs too): the cycle skips email and says so once.
//!
//! Every file is written atomically (`crate::atomic_file`: a temporary file in the same directory, fsync, rename,
//! fsync of the directory), so a crash leaves either the old or the new content, never a torn file. What goes
//! wrong with these files is an [`OutboxError`], naming the file and the OS's (or the parser's) error.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::PermanentFailure;
use crate::atomic_file;
use crate::config::EmailConfig;
use crate::domain::FindingKey;

pub(crate) const STATE_FILE: &str = "email-state.json";
pub(crate) const OUTBOX_DIR: &str = "outbox";
pub(crate) const LOCK_FILE: &str = "email.lock";
pub(crate) const STATE_FORMAT: u32 = 1;
pub(crate) const OUTBOX_FORMAT: u32 = 1;

/// A file of the state directory's email part (the state, the outbox, the lock) that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot remove {}: {source}", path.display())]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot create the outbox {}: {source}", path.display())]
    CreateOutbox { path: PathBuf, source: io::Error },
    /// `email-state.json` is there but is not a state this version reads.
    #[error("{} is not a valid midwatch email state ({source})", path.display())]
    InvalidState { path: PathBuf, source: serde_json::Error },
    /// `what`: `the email state`, `an outbox entry`.
    #[error("cannot serialize {what}: {source}")]
    Serialize { what: &'static str, source: serde_json::Error },
    /// An outbox file that cannot be read or parsed; moved aside (to `moved_to`) when that was possible.
    #[error("outbox file {} is unreadable ({source}){}", path.display(), moved_aside(moved_to.as_deref()))]
    Unreadable { path: PathBuf, source: UnreadableEntry, moved_to: Option<PathBuf> },
    /// The entry has no file (it could not be written when it was queued).
    #[error("the email is not in the outbox, so its delivery could not be recorded")]
    NotStored,
}

/// Why an outbox file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableEntry {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

fn moved_aside(to: Option<&Path>) -> String {
    to.map(|bad| format!("; moved aside to {}", bad.display())).unwrap_or_default()
}

/// The sha256 (hex) of the sorted findings: equal digests mean the same set of findings.
pub fn digest(sorted: &[FindingKey]) -> String {
    digest_with_warnings(sorted, &[])
}

/// The digest of the sorted findings and early warnings (their keys, sorted); without warnings, the digest of
/// the findings alone, so that a state recorded before warnings existed still matches.
pub(crate) fn digest_with_warnings(sorted: &[FindingKey], warnings: &[String]) -> String {
    let mut h = Sha256::new();
    // Length-prefixed, so no choice of strings can make two different sets collide by concatenation.
    let mut part = |part: &str| {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    };
    for f in sorted {
        for p in [f.user.as_str(), f.category.name(), f.message.as_str()] {
            part(p);
        }
    }
    if !warnings.is_empty() {
        // A warning's key stands where a finding's category would: no set of findings alone hashes the same.
        part("early warnings");
        for w in warnings {
            part(w);
        }
    }
    hex(&h.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last email composed: `email-state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifiedState {
    pub(crate) format: u32,
    pub digest: String,
    pub notified_at: DateTime<Utc>,
    pub message_id: String,
    pub findings: Vec<FindingKey>,
    /// The early warnings' keys (`failing_on_up_mid: mid.paris`); absent from a state written before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<String>,
}

impl NotifiedState {
    /// `Ok(None)` when no email was ever composed; `Err` names the file and what is wrong with it.
    pub fn load(state_dir: &Path) -> Result<Option<NotifiedState>, OutboxError> {
        let path = state_dir.join(STATE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map(Some).map_err(|source| OutboxError::InvalidState { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(OutboxError::Read { path, source }),
        }
    }

    pub(crate) fn store(&self, state_dir: &Path) -> Result<(), OutboxError> {
        let path = state_dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|source| OutboxError::Serialize { what: "the email state", source })?;
        atomic_file::write(&path, &json, None).map_err(|source| OutboxError::Write { path, source })
    }
}

/// The marker written just before `DATA`: these recipients may have the message if the file still says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendingMarker {
    pub recipients: Vec<String>,
    pub(crate) since: DateTime<Utc>,
}

/// One message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub(crate) format: u32,
    /// Orders the outbox: the file name starts with it.
    pub(crate) seq: u64,
    pub(crate) message_id: String,
    pub(crate) created: DateTime<Utc>,
    pub(crate) subject: String,
    /// The envelope sender.
    pub(crate) from: String,
    /// The recipients still owed the message.
    pub recipients: Vec<String>,
    /// Present from just before `DATA` until the server's answer is recorded.
    pub sending: Option<SendingMarker>,
    pub(crate) delivered_to: Vec<String>,
    pub(crate) rejected: Vec<PermanentFailure>,
    pub(crate) attempts: u32,
    pub(crate) last_error: Option<String>,
    /// The complete RFC 5322 message (ASCII: every part is quoted-printable).
    pub message: String,
    /// The same message in its short form (same `Message-ID`), sent instead of `message` when the server
    /// refuses `message` for its size; `None` when there is no shorter form, or once it replaced `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) short: Option<String>,
    /// Where the entry lives; `None` when it could not be written.
    #[serde(skip)]
    pub(crate) path: Option<PathBuf>,
}

/// A message built for the outbox: its `Message-ID` (with angle brackets), its subject, its RFC 5322 text, and
/// the text of its short form when it has a shorter one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltMessage {
    pub(crate) message_id: String,
    pub(crate) subject: String,
    pub(crate) message: String,
    pub(crate) short: Option<String>,
}

impl OutboxEntry {
    /// The entry for a new message, owed to every configured recipient; `seq` from [`Outbox::next_seq`].
    pub(crate) fn new(seq: u64, cfg: &EmailConfig, built: BuiltMessage, now: DateTime<Utc>) -> OutboxEntry {
        OutboxEntry {
            format: OUTBOX_FORMAT,
            seq,
            message_id: built.message_id,
            created: now,
            subject: built.subject,
            from: cfg.from.email.to_string(),
            recipients: super::recipients(cfg),
            sending: None,
            delivered_to: Vec::new(),
            rejected: Vec::new(),
            attempts: 0,
            last_error: None,
            message: built.message,
            short: built.short,
            path: None,
        }
    }

    fn file_name(&self) -> String {
        format!("{:08}-{}.json", self.seq, self.created.format("%Y%m%dT%H%M%SZ"))
    }
}

/// A message dropped from the outbox undelivered (`[email] outbox_max_age`, `outbox_max_messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedMessage {
    pub(crate) message_id: String,
    pub(crate) subject: String,
    pub(crate) created: DateTime<Utc>,
    /// Who never got it.
    pub(crate) recipients: Vec<String>,
    pub reason: String,
}

/// The outbox directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(state_dir: &Path) -> Outbox {
        Outbox { dir: state_dir.join(OUTBOX_DIR) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "json")
                        && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    }

    /// How many messages wait in the outbox.
    pub fn count(&self) -> usize {
        self.files().len()
    }

    fn max_seq(&self) -> Option<u64> {
        self.files().iter().filter_map(|p| p.file_name()?.to_str()?.split('-').next()?.parse::<u64>().ok()).max()
    }

    /// The sequence number of a new message: after every entry loaded (`existing`) and every file of the outbox.
    pub(crate) fn next_seq(&self, existing: &[OutboxEntry]) -> u64 {
        existing.iter().map(|e| e.seq).chain(self.max_seq()).max().unwrap_or(0) + 1
    }

    /// Every readable entry, oldest first, and a problem for each unreadable file (moved aside as `.bad`, so it
    /// never blocks the outbox).
    pub fn load(&self) -> (Vec<OutboxEntry>, Vec<OutboxError>) {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for path in self.files() {
            let parsed = fs::read_to_string(&path)
                .map_err(UnreadableEntry::from)
                .and_then(|t| serde_json::from_str::<OutboxEntry>(&t).map_err(UnreadableEntry::from));
            match parsed {
                Ok(mut entry) => {
                    entry.path = Some(path);
                    entries.push(entry);
                }
                Err(source) => {
                    let bad = path.with_extension("bad");
                    let moved_to = fs::rename(&path, &bad).is_ok().then_some(bad);
                    let p = OutboxError::Unreadable { path, source, moved_to };
                    tracing::error!("{p}");
                    problems.push(p);
                }
            }
        }
        entries.sort_by_key(|e| e.seq);
        (entries, problems)
    }

    /// Drops what has waited too long, and the oldest beyond `max_messages - room` (so that `room` new messages
    /// keep the outbox within its bound): each one removed, logged at error with its subject, and returned.
    pub(crate) fn expire(
        &self,
        entries: Vec<OutboxEntry>,
        cfg: &EmailConfig,
        room: usize,
        now: DateTime<Utc>,
    ) -> (Vec<OutboxEntry>, Vec<DroppedMessage>, Vec<OutboxError>) {
        let oldest_kept =
            chrono::TimeDelta::from_std(cfg.outbox_max_age).ok().and_then(|age| now.checked_sub_signed(age));
        let too_many = (entries.len() + room).saturating_sub(cfg.outbox_max_messages);
        let (mut kept, mut dropped, mut problems) = (Vec::new(), Vec::new(), Vec::new());
        // Oldest first, so the first `too_many` are the ones beyond the bound.
        for (i, entry) in entries.into_iter().enumerate() {
            let reason = if oldest_kept.is_some_and(|t| entry.created < t) {
                format!("older than outbox_max_age ({})", humantime::format_duration(cfg.outbox_max_age))
            } else if i < too_many {
                format!("beyond outbox_max_messages ({})", cfg.outbox_max_messages)
            } else {
                kept.push(entry);
                continue;
            };
            tracing::error!(
                subject = %entry.subject,
                message_id = %entry.message_id,
                created = %entry.created,
                recipients = %entry.recipients.join(", "),
                %reason,
                "dropped an undelivered email from the outbox; it will not be sent"
            );
            if let Err(e) = self.remove(&entry) {
                problems.push(e);
            }
            dropped.push(DroppedMessage {
                message_id: entry.message_id,
                subject: entry.subject,
                created: entry.created,
                recipients: entry.recipients,
                reason,
            });
        }
        (kept, dropped, problems)
    }

    /// Writes a new entry and sets its path; on failure the entry stays without a path (in memory only).
    pub(crate) fn store(&self, entry: &mut OutboxEntry) -> Result<(), OutboxError> {
        atomic_file::create_private_dir(&self.dir)
            .map_err(|source| OutboxError::CreateOutbox { path: self.dir.clone(), source })?;
        entry.path = Some(self.dir.join(entry.file_name()));
        let written = self.update(entry);
        if written.is_err() {
            entry.path = None;
        }
        written
    }

    /// Rewrites the entry's file (no-op for an entry that is not on disk).
    pub(crate) fn update(&self, entry: &OutboxEntry) -> Result<(), OutboxError> {
        let Some(path) = &entry.path else { return Ok(()) };
        let json = serde_json::to_vec_pretty(entry)
            .map_err(|source| OutboxError::Serialize { what: "an outbox entry", source })?;
        atomic_file::write(path, &json, None).map_err(|source| OutboxError::Write { path: path.clone(), source })
    }

    /// Removes a finished entry.
    pub(crate) fn remove(&self, entry: &OutboxEntry) -> Result<(), OutboxError> {
        let Some(path) = &entry.path else { return Ok(()) };
        match fs::remove_file(path) {
            Ok(()) => {
                atomic_file::sync_dir(&self.dir);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(OutboxError::Remove { path: path.clone(), source }),
        }
    }
}

/// Exclusive use of the state directory's email files by one process: an OS lock (`flock`) on `email.lock`,
/// held while the file is open and released by the kernel when the process ends, however it ends. The file
/// names the holder's pid for people; the lock never depends on it (a pid may be invisible under
/// `ProtectProc=invisible`, or reused).
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: fs::File,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    /// Another process (or another cycle of this one) holds the lock; `holder` is the pid its file names.
    #[error(
        "the state directory {} is in use by another midwatch ({}{})",
        state_dir.display(),
        holder.map(|p| format!("pid {p} per ")).unwrap_or_default(),
        lock_file.display()
    )]
    Busy { state_dir: PathBuf, holder: Option<u32>, lock_file: PathBuf },
    /// The state directory cannot hold the email files: `problem` says why (`is not a directory`, `is not
    /// writable (…)`).
    #[error(
        "the state directory {} {problem}: make it a directory this user (uid {me}) can write, or set [state] \
         directory to one",
        state_dir.display()
    )]
    Unusable { state_dir: PathBuf, problem: String, me: u32 },
    /// The state directory belongs to another user: what this process wrote there could strand its owner.
    #[error(
        "the state directory {} belongs to uid {owner}, not to this process (uid {me}): run the command as its \
         owner (sudo -u '#{owner}' midwatch …), add --no-email, or set [state] directory to a directory of your own",
        state_dir.display()
    )]
    Foreign { state_dir: PathBuf, owner: u32, me: u32 },
    /// The lock could not be taken (the file system refused `flock`).
    #[error(transparent)]
    Io(#[from] OutboxError),
}

impl StateLock {
    /// Takes the lock of `state_dir`, creating the directory (0700) when missing, after
    /// [`check_state_directory`].
    pub(crate) fn acquire(state_dir: &Path) -> Result<StateLock, LockError> {
        check_state_directory(state_dir)?;
        atomic_file::create_private_dir(state_dir)
            .map_err(|e| unusable(state_dir, format!("cannot be created ({e})")))?;
        let path = state_dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| unusable(state_dir, format!("is not usable: cannot open {} ({e})", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                return Err(LockError::Busy { state_dir: state_dir.to_path_buf(), holder, lock_file: path });
            }
            Err(fs::TryLockError::Error(source)) => return Err(OutboxError::Lock { path, source }.into()),
        }
        // For people only: who holds it. The lock stays valid if this cannot be written.
        let _ = file.set_len(0).and_then(|()| (&file).write_all(format!("{}\n", std::process::id()).as_bytes()));
        // Holding the lock, no other midwatch writes here: a temporary file is what a killed process left.
        atomic_file::remove_leftovers(state_dir, ".");
        atomic_file::remove_leftovers(&state_dir.join(OUTBOX_DIR), ".");
        Ok(StateLock { _file: file })
    }
}

/// Whether `state_dir` can hold the email files as a cycle uses them, without creating or leaving anything: a
/// directory of this process's user that it can write, or, when missing, one it can create. Refuses a state
/// directory owned by another user: files this process created there (outbox messages, the state) would be
/// unreadable to the owner's service, and its notification lost.
pub(crate) fn check_state_directory(state_dir: &Path) -> Result<(), LockError> {
    use std::os::unix::fs::MetadataExt as _;
    match fs::metadata(state_dir) {
        Ok(m) if !m.is_dir() => Err(unusable(state_dir, "is not a directory".into())),
        Ok(m) => {
            let me = rustix::process::geteuid().as_raw();
            if m.uid() != me {
                return Err(LockError::Foreign { state_dir: state_dir.to_path_buf(), owner: m.uid(), me });
            }
            atomic_file::can_create_in(state_dir).map_err(|e| unusable(state_dir, format!("is not writable ({e})")))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The first cycle creates it: in its nearest existing ancestor.
            let ancestor =
                state_dir.ancestors().skip(1).map(|a| if a.as_os_str().is_empty() { Path::new(".") } else { a });
            match ancestor.into_iter().find(|a| a.exists()) {
                Some(a) if a.is_dir() => atomic_file::can_create_in(a).map_err(|e| {
                    unusable(state_dir, format!("does not exist and cannot be created in {} ({e})", a.display()))
                }),
                Some(a) => Err(unusable(state_dir, format!("cannot be created: {} is not a directory", a.display()))),
                None => Ok(()),
            }
        }
        Err(e) => Err(unusable(state_dir, format!("cannot be used ({e})"))),
    }
}

fn unusable(state_dir: &Path, problem: String) -> LockError {
    LockError::Unusable { state_dir: state_dir.to_path_buf(), problem, me: rustix::process::geteuid().as_raw() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> io::Error {
        io::Error::from(io::ErrorKind::PermissionDenied)
    }

    #[test]
    fn a_file_error_names_the_file_and_the_os_error() {
        let path = PathBuf::from("/var/lib/midwatch/email-state.json");
        let read = OutboxError::Read { path: path.clone(), source: denied() };
        assert_eq!(read.to_string(), format!("cannot read /var/lib/midwatch/email-state.json: {}", denied()));
        let outbox = OutboxError::CreateOutbox { path: "/var/lib/midwatch/outbox".into(), source: denied() };
        assert_eq!(outbox.to_string(), format!("cannot create the outbox /var/lib/midwatch/outbox: {}", denied()));
        let invalid = serde_json::from_str::<NotifiedState>("{").expect_err("not json");
        let shown = invalid.to_string();
        let state = OutboxError::InvalidState { path, source: invalid };
        assert_eq!(
            state.to_string(),
            format!("/var/lib/midwatch/email-state.json is not a valid midwatch email state ({shown})")
        );
    }

    #[test]
    fn an_unreadable_outbox_file_says_where_it_was_moved_if_it_was() {
        let path = PathBuf::from("outbox/00000001-x.json");
        let kept = OutboxError::Unreadable { path: path.clone(), source: denied().into(), moved_to: None };
        assert_eq!(kept.to_string(), format!("outbox file outbox/00000001-x.json is unreadable ({})", denied()));
        let moved =
            OutboxError::Unreadable { path, source: denied().into(), moved_to: Some("outbox/00000001-x.bad".into()) };
        assert_eq!(
            moved.to_string(),
            format!(
                "outbox file outbox/00000001-x.json is unreadable ({}); moved aside to outbox/00000001-x.bad",
                denied()
            )
        );
    }

    #[test]
    fn a_busy_lock_names_its_holder_when_the_file_does() {
        let busy = |holder| LockError::Busy {
            state_dir: "/var/lib/midwatch".into(),
            holder,
            lock_file: "/var/lib/midwatch/email.lock".into(),
        };
        assert_eq!(
            busy(Some(4242)).to_string(),
            "the state directory /var/lib/midwatch is in use by another midwatch (pid 4242 per \
             /var/lib/midwatch/email.lock)"
        );
        assert_eq!(
            busy(None).to_string(),
            "the state directory /var/lib/midwatch is in use by another midwatch (/var/lib/midwatch/email.lock)"
        );
        let io = LockError::from(OutboxError::Lock { path: "/s/email.lock".into(), source: denied() });
        assert_eq!(io.to_string(), format!("cannot lock /s/email.lock: {}", denied()));
    }

    #[test]
    fn a_foreign_state_directory_says_whose_it_is_and_what_to_do() {
        let foreign = LockError::Foreign { state_dir: "/var/lib/midwatch".into(), owner: 998, me: 1000 };
        assert_eq!(
            foreign.to_string(),
            "the state directory /var/lib/midwatch belongs to uid 998, not to this process (uid 1000): run the \
             command as its owner (sudo -u '#998' midwatch …), add --no-email, or set [state] directory to a \
             directory of your own"
        );
    }
}
