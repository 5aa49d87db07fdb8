//! Since when: each finding's history, from midwatch's own `ecc_agent_issue` records.
//!
//! One read serves both the plan and the history ([`super::read_records`]): the unresolved records of our
//! source (what [`super::reconcile()`] needs) and, in the same query, the records of our source updated within
//! the instance's 30-day retention of this table (which holds the recently resolved ones). [`history`] is pure:
//! an open record with the finding's message (in any case, as [`super::reconcile()`] compares them) gives its
//! first detection (`sys_created_on`) and how many checks detected it (`count`, plus this one); a resolved record with
//! the message says the finding is back.

use chrono::{DateTime, Utc};

use super::reconcile::{IssueRecord, message_key};
use super::records::Records;
use crate::domain::{Finding, FindingHistory};

/// The history of `finding` at `now`: from its open record (the oldest, if an interrupted cycle left two), or
/// new this cycle — then, if our source resolved the same message before, when it did (the latest).
pub(crate) fn history(finding: &Finding, records: &Records, now: DateTime<Utc>) -> FindingHistory {
    let key = message_key(&finding.message);
    let ours = |r: &IssueRecord| message_key(&r.message) == key && r.mid_server.is_none();
    let open: Vec<&IssueRecord> = records.open.iter().filter(|r| ours(r)).collect();
    if !open.is_empty() {
        let first = open.iter().filter_map(|r| r.created_on).min().unwrap_or(now);
        let count = open.iter().map(|r| r.count).max().unwrap_or(0);
        return FindingHistory { first_detected: first, times_detected: count + 1, resolved_before: None };
    }
    let resolved_before = records.resolved.iter().filter(|(r, _)| ours(r)).map(|(_, at)| *at).max();
    FindingHistory { first_detected: now, times_detected: 1, resolved_before }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FindingHistory, sn_time};

    fn at(s: &str) -> DateTime<Utc> {
        sn_time::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    fn finding(message: &str) -> Finding {
        Finding { message: message.into(), ..crate::writeback::reconcile::tests::finding("u", 1) }
    }

    fn record(id: &str, message: &str, state: &str, count: u64, created: &str) -> IssueRecord {
        let record = crate::writeback::reconcile::tests::record(id, message, state, count);
        IssueRecord { created_on: Some(at(created)), ..record }
    }

    const NOW: &str = "2026-12-01 12:00:00";

    #[test]
    fn an_open_record_gives_the_first_detection_and_counts_this_cycle() {
        let records = Records {
            open: vec![record("a", "m", "new", 18, "2026-11-28 08:00:00"), record("x", "other", "new", 3, NOW)],
            resolved: Vec::new(),
        };
        let h = history(&finding("m"), &records, at(NOW));
        assert_eq!(
            h,
            FindingHistory { first_detected: at("2026-11-28 08:00:00"), times_detected: 19, resolved_before: None }
        );
    }

    #[test]
    fn duplicates_left_by_an_interrupted_cycle_give_the_oldest_and_the_highest_count() {
        let records = Records {
            open: vec![
                record("a", "m", "new", 2, "2026-11-30 08:00:00"),
                record("b", "m", "acknowledged", 5, "2026-11-29 08:00:00"),
            ],
            resolved: Vec::new(),
        };
        let h = history(&finding("m"), &records, at(NOW));
        assert_eq!((h.first_detected, h.times_detected), (at("2026-11-29 08:00:00"), 6));
    }

    #[test]
    fn a_finding_that_reappears_after_being_resolved_says_when_it_was_resolved() {
        let records = Records {
            open: Vec::new(),
            resolved: vec![
                (record("a", "m", "resolved", 4, "2026-11-20 08:00:00"), at("2026-11-25 08:00:00")),
                (record("b", "m", "resolved", 1, "2026-11-27 08:00:00"), at("2026-11-29 12:00:00")),
                (record("c", "other", "resolved", 1, "2026-11-27 08:00:00"), at("2026-11-30 12:00:00")),
            ],
        };
        let h = history(&finding("m"), &records, at(NOW));
        assert_eq!(
            h,
            FindingHistory {
                first_detected: at(NOW),
                times_detected: 1,
                resolved_before: Some(at("2026-11-29 12:00:00"))
            }
        );
        assert_eq!(history(&finding("new"), &records, at(NOW)).resolved_before, None);
    }
}
