//! What notification keeps on disk, in the state directory:
//!
//! - `email-state.json`: the findings of the last email composed and their digest ([`NotifiedState`]);
//! - `outbox/NNNNNNNN-YYYYMMDDTHHMMSSZ.json`: one fully rendered message still owed to some recipients
//!   ([`OutboxEntry`]), oldest first by name;
//! - `email.lock`: held during a cycle's notification (`StateLock`).
//!
//! Every file is written atomically (a temporary file in the same directory, fsync, rename, fsync of the
//! directory), so a crash leaves either the old or the new content, never a torn file.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{EmailConfig, PermanentFailure};
use crate::domain::FindingKey;

pub(crate) const STATE_FILE: &str = "email-state.json";
pub(crate) const OUTBOX_DIR: &str = "outbox";
pub(crate) const LOCK_FILE: &str = "email.lock";
pub(crate) const STATE_FORMAT: u32 = 1;
pub(crate) const OUTBOX_FORMAT: u32 = 1;

/// The sha256 (hex) of the sorted findings: equal digests mean the same set of findings.
pub fn digest(sorted: &[FindingKey]) -> String {
    let mut h = Sha256::new();
    for f in sorted {
        for part in [f.user.as_str(), f.category.name(), f.message.as_str()] {
            // Length-prefixed, so no choice of strings can make two different sets collide by concatenation.
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
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
}

impl NotifiedState {
    /// `Ok(None)` when no email was ever composed; `Err` names the file and what is wrong with it.
    pub fn load(state_dir: &Path) -> Result<Option<NotifiedState>, String> {
        let path = state_dir.join(STATE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{} is not a valid midwatch email state ({e})", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub(crate) fn store(&self, state_dir: &Path) -> Result<(), String> {
        let path = state_dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| format!("cannot serialize the email state: {e}"))?;
        write_atomic(&path, &json).map_err(|e| format!("cannot write {}: {e}", path.display()))
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
    /// Where the entry lives; `None` when it could not be written.
    #[serde(skip)]
    pub(crate) path: Option<PathBuf>,
}

impl OutboxEntry {
    pub fn new(
        outbox: &Outbox,
        cfg: &EmailConfig,
        existing: &[OutboxEntry],
        message_id: &str,
        subject: &str,
        message: String,
        now: DateTime<Utc>,
    ) -> OutboxEntry {
        let seq = existing.iter().map(|e| e.seq).chain(outbox.max_seq()).max().unwrap_or(0) + 1;
        OutboxEntry {
            format: OUTBOX_FORMAT,
            seq,
            message_id: message_id.to_string(),
            created: now,
            subject: subject.to_string(),
            from: cfg.from.email.to_string(),
            recipients: super::recipients(cfg),
            sending: None,
            delivered_to: Vec::new(),
            rejected: Vec::new(),
            attempts: 0,
            last_error: None,
            message,
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
    pub subject: String,
    pub(crate) created: DateTime<Utc>,
    /// Who never got it.
    pub recipients: Vec<String>,
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

    /// Every readable entry, oldest first, and a problem for each unreadable file (moved aside as `.bad`, so it
    /// never blocks the outbox).
    pub fn load(&self) -> (Vec<OutboxEntry>, Vec<String>) {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for path in self.files() {
            let parsed = fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<OutboxEntry>(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(mut entry) => {
                    entry.path = Some(path);
                    entries.push(entry);
                }
                Err(e) => {
                    let bad = path.with_extension("bad");
                    let moved = fs::rename(&path, &bad).is_ok();
                    let p = format!(
                        "outbox file {} is unreadable ({e}){}",
                        path.display(),
                        if moved { format!("; moved aside to {}", bad.display()) } else { String::new() }
                    );
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
    ) -> (Vec<OutboxEntry>, Vec<DroppedMessage>, Vec<String>) {
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
    pub(crate) fn store(&self, entry: &mut OutboxEntry) -> Result<(), String> {
        crate::atomic_file::create_private_dir(&self.dir)
            .map_err(|e| format!("cannot create the outbox {}: {e}", self.dir.display()))?;
        entry.path = Some(self.dir.join(entry.file_name()));
        let written = self.update(entry);
        if written.is_err() {
            entry.path = None;
        }
        written
    }

    /// Rewrites the entry's file (no-op for an entry that is not on disk).
    pub(crate) fn update(&self, entry: &OutboxEntry) -> Result<(), String> {
        let Some(path) = &entry.path else { return Ok(()) };
        let json = serde_json::to_vec_pretty(entry).map_err(|e| format!("cannot serialize an outbox entry: {e}"))?;
        write_atomic(path, &json).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Removes a finished entry.
    pub(crate) fn remove(&self, entry: &OutboxEntry) -> Result<(), String> {
        let Some(path) = &entry.path else { return Ok(()) };
        match fs::remove_file(path) {
            Ok(()) => {
                sync_dir(&self.dir);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
        }
    }
}

/// Temp file in the same directory, fsync, rename over `path`, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::atomic_file::write(path, bytes, None)
}

/// Makes a rename or removal durable.
fn sync_dir(dir: &Path) {
    crate::atomic_file::sync_dir(dir);
}

/// Exclusive use of the state directory's email files by one process: an OS lock (`flock`) on `email.lock`,
/// held while the file is open and released by the kernel when the process ends, however it ends. The file
/// names the holder's pid for people; the lock never depends on it (a pid may be invisible under
/// `ProtectProc=invisible`, or reused).
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: fs::File,
}

#[derive(Debug)]
pub(crate) enum LockError {
    /// Another process (or another cycle of this one) holds the lock.
    Busy(String),
    /// The state directory belongs to another user: what this process wrote there could strand its owner.
    Foreign(String),
    /// The lock could not be created (e.g. the state directory is not writable).
    Io(String),
}

impl StateLock {
    pub(crate) fn acquire(state_dir: &Path) -> Result<StateLock, LockError> {
        crate::atomic_file::create_private_dir(state_dir)
            .map_err(|e| LockError::Io(format!("cannot create the state directory {}: {e}", state_dir.display())))?;
        refuse_foreign(state_dir)?;
        let path = state_dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LockError::Io(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                return Err(LockError::Busy(format!(
                    "the state directory {} is in use by another midwatch ({}{})",
                    state_dir.display(),
                    holder.map(|p| format!("pid {p} per ")).unwrap_or_default(),
                    path.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(LockError::Io(format!("cannot lock {}: {e}", path.display())));
            }
        }
        // For people only: who holds it. The lock stays valid if this cannot be written.
        let _ = file.set_len(0).and_then(|()| (&file).write_all(format!("{}\n", std::process::id()).as_bytes()));
        // Holding the lock, no other midwatch writes here: a temporary file is what a killed process left.
        crate::atomic_file::remove_leftovers(state_dir, ".");
        crate::atomic_file::remove_leftovers(&state_dir.join(OUTBOX_DIR), ".");
        Ok(StateLock { _file: file })
    }
}

/// Refuses a state directory owned by another user than this process's: files this process created there
/// (outbox messages, the state) would be unreadable to the owner's service, and its notification lost.
fn refuse_foreign(state_dir: &Path) -> Result<(), LockError> {
    use std::os::unix::fs::MetadataExt as _;
    let owner =
        fs::metadata(state_dir).map_err(|e| LockError::Io(format!("cannot read {}: {e}", state_dir.display())))?.uid();
    let me = rustix::process::geteuid().as_raw();
    if owner == me {
        return Ok(());
    }
    Err(LockError::Foreign(format!(
        "the state directory {} belongs to uid {owner}, not to this process (uid {me}): run the command as its \
         owner (sudo -u '#{owner}' midwatch …), add --no-email, or set [state] directory to a directory of your own",
        state_dir.display()
    )))
}
