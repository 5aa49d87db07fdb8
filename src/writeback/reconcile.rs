//! The pure half of write-back: which records to create, count and resolve.
//!
//! The rules are the built-in job's (docs/servicenow.md §1 item 6), applied idempotently:
//! - a finding whose message matches an unresolved record of our source with an empty
//!   `mid_server` → `count` + 1, `last_detected` = now, `sys_domain` refreshed;
//! - otherwise a new record (`message`, `source`, `last_detected`, `sys_domain`; `mid_server` empty);
//! - every unresolved record of our source whose message this cycle did not produce → resolved;
//! - New and Acknowledged records are alike ("unresolved"); resolved records are never read, so never
//!   reopened: a recurrence is a new record.
//!
//! Messages compare as the built-in job's `message=` and `message NOT IN` queries compare them, without regard to
//! case (docs/servicenow.md §3): a record that spells its user otherwise is that user's record.
//!
//! Beyond the built-in job: when an interrupted cycle left two unresolved records with the same
//! message, the oldest is counted and the others are resolved, so the table converges to one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Finding, IssueState, SysId, same_name};

/// An unresolved `ecc_agent_issue` record of our source, as read before reconciling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct IssueRecord {
    pub(crate) sys_id: SysId,
    pub(crate) message: String,
    pub(crate) source: String,
    /// New, Acknowledged, … (never Resolved: those are not read).
    pub(crate) state: IssueState,
    pub(crate) count: u64,
    /// Empty for every record the built-in job (and midwatch) writes.
    pub(crate) mid_server: Option<String>,
    pub(crate) sys_domain: Option<String>,
    #[serde(with = "crate::domain::sn_time::option")]
    pub(crate) created_on: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Create {
    pub(crate) message: String,
    pub(crate) source: String,
    #[serde(with = "crate::domain::sn_time")]
    pub(crate) last_detected: DateTime<Utc>,
    pub(crate) sys_domain: String,
    /// The user the finding is about (not written; for reports and links).
    pub(crate) user: String,
}

/// A count bump of a record still detected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Update {
    pub(crate) sys_id: SysId,
    pub(crate) message: String,
    /// The new absolute count (an absolute value, so a retried PATCH cannot count twice).
    pub(crate) count: u64,
    #[serde(with = "crate::domain::sn_time")]
    pub(crate) last_detected: DateTime<Utc>,
    pub(crate) sys_domain: String,
    pub(crate) user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Resolve {
    pub(crate) sys_id: SysId,
    pub(crate) message: String,
    /// Why: no longer detected, or a duplicate left by an interrupted cycle.
    pub(crate) reason: ResolveReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResolveReason {
    NoLongerDetected,
    Duplicate,
}

/// What one cycle will write.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Plan {
    pub create: Vec<Create>,
    pub(crate) count: Vec<Update>,
    pub(crate) resolve: Vec<Resolve>,
}

impl Plan {
    /// `create 1, count 4, resolve 0`: how the reports and the log word a plan.
    pub(crate) fn tally(&self) -> String {
        format!("create {}, count {}, resolve {}", self.create.len(), self.count.len(), self.resolve.len())
    }
}

/// Plans the writes of one cycle. `open` must hold only unresolved records of `source`; any other
/// record passed in by mistake is ignored, never touched.
pub(crate) fn reconcile(findings: &[Finding], open: &[IssueRecord], source: &str, now: DateTime<Utc>) -> Plan {
    let ours: Vec<&IssueRecord> = open.iter().filter(|r| r.source == source && r.state.is_open()).collect();

    // Unresolved records by message, only those with an empty mid_server (the built-in key);
    // oldest first, so the record counted is the one that has been open longest.
    let mut by_message: BTreeMap<String, Vec<&IssueRecord>> = BTreeMap::new();
    for r in ours.iter().filter(|r| r.mid_server.as_deref().is_none_or(str::is_empty)) {
        by_message.entry(message_key(&r.message)).or_default().push(r);
    }
    for records in by_message.values_mut() {
        records.sort_by(|a, b| (a.created_on, &a.sys_id).cmp(&(b.created_on, &b.sys_id)));
    }

    let mut plan = Plan::default();
    let mut produced: BTreeSet<String> = BTreeSet::new();
    for f in findings {
        let key = message_key(&f.message);
        if !produced.insert(key.clone()) {
            continue; // the same message twice in one cycle is one record
        }
        match by_message.get(&key).and_then(|rs| rs.first()) {
            Some(r) => plan.count.push(Update {
                sys_id: r.sys_id.clone(),
                message: f.message.clone(),
                count: r.count.saturating_add(1),
                last_detected: now,
                sys_domain: f.sys_domain.clone(),
                user: f.user.clone(),
            }),
            None => plan.create.push(Create {
                message: f.message.clone(),
                source: source.to_string(),
                last_detected: now,
                sys_domain: f.sys_domain.clone(),
                user: f.user.clone(),
            }),
        }
    }

    for r in &ours {
        let key = message_key(&r.message);
        let still = produced.contains(&key);
        let keeper = by_message.get(&key).and_then(|rs| rs.first()).map(|k| &k.sys_id);
        let reason = if !still {
            // The built-in auto-resolve: `message NOT IN <messages written this run>`.
            Some(ResolveReason::NoLongerDetected)
        } else if keeper.is_some_and(|k| *k != r.sys_id) && r.mid_server.as_deref().is_none_or(str::is_empty) {
            Some(ResolveReason::Duplicate)
        } else {
            None
        };
        if let Some(reason) = reason {
            plan.resolve.push(Resolve { sys_id: r.sys_id.clone(), message: r.message.clone(), reason });
        }
    }
    plan
}

/// A message as [`reconcile`] and the history compare it: without regard to case, as the instance does.
pub(crate) fn message_key(message: &str) -> String {
    message.chars().flat_map(char::to_lowercase).collect()
}

/// The records of `open` about one of `users` (a selected check's): a record carries only its message, so
/// a record is theirs when its message is one the rules produce for one of them (in any case) and for no
/// other name. The others are not passed to [`reconcile`], so never resolved by a check that did not look
/// at their user.
pub(crate) fn records_of(open: Vec<IssueRecord>, users: &[String]) -> Vec<IssueRecord> {
    let theirs = |u: &str| users.iter().any(|x| same_name(x, u));
    open.into_iter().filter(|r| crate::evaluate::messages::user_of(&r.message).is_some_and(|u| theirs(&u))).collect()
}

#[cfg(test)]
pub(crate) mod tests;
