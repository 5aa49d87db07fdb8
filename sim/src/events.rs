//! A compact, indexed store of `sysevent` rows, for simulated instances with millions of events.
//!
//! As JSON maps, five million events would take gigabytes and every query would scan them all, so the
//! benchmark would measure the simulator instead of the client. Here an event is a few integers (its
//! strings interned), the rows are kept sorted by `(sys_created_on, sys_id)`, and each `parm1` value has
//! its own time-sorted list: a query that pins `parm1` (`=`, `IN` or `STARTSWITH`) and a time range
//! touches only the rows it can match, as a database index on `(parm1, sys_created_on)` would (found by the
//! value lower-cased: the instance's comparisons ignore case).
//! Rows stored here are served together with any `sysevent` rows of [`super::Dataset::tables`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::query::{Condition, Op, OrderBy, Query, fold_case};
use crate::shared::sn_time;

/// The fields every compact event has, in the order a full row is rendered.
pub const EVENT_FIELDS: &[&str] = &["sys_id", "name", "parm1", "parm2", "state", "sys_created_on"];

/// Interned strings, ordered by value so that a prefix is a range.
#[derive(Debug, Clone, Default, PartialEq)]
struct Interner {
    values: Vec<String>,
    ids: BTreeMap<String, u32>,
}

impl Interner {
    fn intern(&mut self, value: &str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(value.to_string());
        self.ids.insert(value.to_string(), id);
        id
    }

    fn get(&self, id: u32) -> &str {
        self.values.get(id as usize).map_or("", String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Event {
    /// `sys_created_on`, seconds since the epoch.
    created: i64,
    /// The sys_id as a number: rendered as 32 hex digits, so numeric order is the string order.
    key: u128,
    name: u32,
    parm1: u32,
    parm2: u32,
}

/// The compact `sysevent` rows of a data set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLog {
    names: Interner,
    parm1: Interner,
    parm2: Interner,
    rows: Vec<Event>,
    /// Per `parm1` id, the indexes of its rows in `rows`, in `(created, key)` order.
    by_parm1: Vec<Vec<u32>>,
    /// The `parm1` ids by their value lower-cased (`query::fold_case`), ordered so that a prefix is a range:
    /// the instance compares names without regard to case, so one condition can pin several spellings.
    folded_parm1: BTreeMap<String, Vec<u32>>,
    sealed: bool,
}

/// A time bound taken from the query: rows outside `[lo, hi]` cannot match.
#[derive(Debug, Clone, Copy)]
struct Range {
    lo: i64,
    hi: i64,
}

impl EventLog {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds one event; `serial` must be unique in the log (it makes the sys_id).
    pub fn push(&mut self, created: DateTime<Utc>, name: &str, parm1: &str, parm2: &str, serial: u64) {
        let key = (u128::from(splitmix64(serial)) << 64) | u128::from(serial);
        let event = Event {
            created: created.timestamp(),
            key,
            name: self.names.intern(name),
            parm1: self.parm1.intern(parm1),
            parm2: self.parm2.intern(parm2),
        };
        self.rows.push(event);
        self.sealed = false;
    }

    /// Sorts the rows and builds the `parm1` index; queries need it (the server calls it as needed).
    pub fn seal(&mut self) {
        if self.sealed {
            return;
        }
        self.rows.sort_unstable_by_key(|e| (e.created, e.key));
        self.by_parm1 = vec![Vec::new(); self.parm1.values.len()];
        for (i, e) in self.rows.iter().enumerate() {
            if let (Some(list), Ok(i)) = (self.by_parm1.get_mut(e.parm1 as usize), u32::try_from(i)) {
                list.push(i);
            }
        }
        self.folded_parm1 = BTreeMap::new();
        for (id, value) in self.parm1.values.iter().enumerate() {
            if let Ok(id) = u32::try_from(id) {
                self.folded_parm1.entry(fold_case(value).into_owned()).or_default().push(id);
            }
        }
        self.sealed = true;
    }

    /// A field of row `i` as the Table API shows it; `None` for a field compact events do not have.
    pub fn field(&self, i: u32, field: &str) -> Option<Cow<'_, str>> {
        let e = self.rows.get(i as usize)?;
        Some(match field {
            "sys_id" => Cow::Owned(format!("{:032x}", e.key)),
            "name" => Cow::Borrowed(self.names.get(e.name)),
            "parm1" => Cow::Borrowed(self.parm1.get(e.parm1)),
            "parm2" => Cow::Borrowed(self.parm2.get(e.parm2)),
            "state" => Cow::Borrowed("processed"),
            "sys_created_on" => Cow::Owned(DateTime::from_timestamp(e.created, 0).map(sn_time::format)?),
            _ => return None,
        })
    }

    /// The rows matching `query`, in `(sys_created_on, sys_id)` order.
    pub fn select(&self, query: &Query) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for groups in query.queries() {
            let range = time_range(groups);
            let candidates: Vec<u32> = match parm1_ids(&self.folded_parm1, groups) {
                Some(ids) => {
                    let mut c: Vec<u32> = Vec::new();
                    for id in ids {
                        if let Some(list) = self.by_parm1.get(id as usize) {
                            c.extend_from_slice(self.slice(list, range));
                        }
                    }
                    c
                }
                None => {
                    let lo = self.rows.partition_point(|e| e.created < range.lo);
                    let hi = self.rows.partition_point(|e| e.created <= range.hi);
                    (lo..hi).filter_map(|i| u32::try_from(i).ok()).collect()
                }
            };
            out.extend(candidates.into_iter().filter(|i| self.matches(*i, groups)));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Orders `rows` by the query's keys when they are all `sys_created_on`/`sys_id` (by the stored
    /// integers); returns false when it cannot, and the caller sorts by text.
    pub fn sort(&self, rows: &mut [u32], order: &[OrderBy]) -> bool {
        if order.iter().any(|o| o.field != "sys_created_on" && o.field != "sys_id") {
            return false;
        }
        let event = |i: &u32| self.rows.get(*i as usize).copied();
        rows.sort_by(|a, b| {
            let (Some(a), Some(b)) = (event(a), event(b)) else { return std::cmp::Ordering::Equal };
            for o in order {
                let ord = if o.field == "sys_created_on" { a.created.cmp(&b.created) } else { a.key.cmp(&b.key) };
                let ord = if o.descending { ord.reverse() } else { ord };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        true
    }

    fn slice<'a>(&self, list: &'a [u32], range: Range) -> &'a [u32] {
        let created = |i: &u32| self.rows.get(*i as usize).map_or(i64::MIN, |e| e.created);
        let lo = list.partition_point(|i| created(i) < range.lo);
        let hi = list.partition_point(|i| created(i) <= range.hi);
        list.get(lo..hi.max(lo)).unwrap_or_default()
    }

    fn matches(&self, i: u32, groups: &[Vec<Condition>]) -> bool {
        let Some(e) = self.rows.get(i as usize) else { return false };
        groups.iter().all(|group| {
            group.iter().any(|c| match (c.field.as_str(), time_condition(c)) {
                ("sys_created_on", Some((op, t))) => op.holds(e.created.cmp(&t)),
                _ => c.matches(self.field(i, &c.field).as_deref().unwrap_or_default()),
            })
        })
    }
}

/// A comparison on the stored seconds.
#[derive(Debug, Clone, Copy)]
enum TimeOp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl TimeOp {
    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            TimeOp::Eq => ord == Equal,
            TimeOp::Gt => ord == Greater,
            TimeOp::Ge => ord != Less,
            TimeOp::Lt => ord == Less,
            TimeOp::Le => ord != Greater,
        }
    }
}

/// A `sys_created_on` comparison whose operand is an instance date-time.
fn time_condition(c: &Condition) -> Option<(TimeOp, i64)> {
    let (op, value) = match &c.op {
        Op::Eq(v) => (TimeOp::Eq, v),
        Op::Gt(v) => (TimeOp::Gt, v),
        Op::Ge(v) => (TimeOp::Ge, v),
        Op::Lt(v) => (TimeOp::Lt, v),
        Op::Le(v) => (TimeOp::Le, v),
        _ => return None,
    };
    Some((op, sn_time::parse(value)?.timestamp()))
}

/// The time range that single-condition `sys_created_on` groups allow.
fn time_range(groups: &[Vec<Condition>]) -> Range {
    let mut range = Range { lo: i64::MIN, hi: i64::MAX };
    for group in groups {
        let [c] = group.as_slice() else { continue };
        if c.field != "sys_created_on" {
            continue;
        }
        match time_condition(c) {
            Some((TimeOp::Eq, t)) => {
                range.lo = range.lo.max(t);
                range.hi = range.hi.min(t);
            }
            Some((TimeOp::Gt, t)) => range.lo = range.lo.max(t.saturating_add(1)),
            Some((TimeOp::Ge, t)) => range.lo = range.lo.max(t),
            Some((TimeOp::Lt, t)) => range.hi = range.hi.min(t.saturating_sub(1)),
            Some((TimeOp::Le, t)) => range.hi = range.hi.min(t),
            None => {}
        }
    }
    range
}

/// The `parm1` ids a single-condition group pins (`=`, `IN`, `STARTSWITH`, each without regard to case), if any
/// group does; `folded` is [`EventLog::folded_parm1`].
fn parm1_ids(folded: &BTreeMap<String, Vec<u32>>, groups: &[Vec<Condition>]) -> Option<Vec<u32>> {
    let of = |v: &str| folded.get(fold_case(v).as_ref()).into_iter().flatten().copied();
    groups.iter().find_map(|group| {
        let [c] = group.as_slice() else { return None };
        if c.field != "parm1" {
            return None;
        }
        match &c.op {
            Op::Eq(v) => Some(of(v).collect()),
            Op::In(list) => Some(list.iter().flat_map(|v| of(v)).collect()),
            Op::StartsWith(p) => {
                let p = fold_case(p).into_owned();
                Some(
                    folded
                        .range(p.clone()..)
                        .take_while(|(k, _)| k.starts_with(p.as_str()))
                        .flat_map(|(_, ids)| ids.iter().copied())
                        .collect(),
                )
            }
            _ => None,
        }
    })
}

/// SplitMix64: a fixed, well-mixed permutation of `u64`, so sys_ids are not in time order.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        sn_time::parse(s).unwrap_or_else(|| panic!("bad time {s}"))
    }

    fn q(s: &str) -> Query {
        Query::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn log() -> EventLog {
        let mut log = EventLog::default();
        let mut n = 0;
        for (t, name, p1) in [
            ("2026-11-22 10:00:00", "login", "alice"),
            ("2026-11-22 10:00:00", "login.failed", "alice"),
            ("2026-11-22 11:00:00", "login", "bob"),
            ("2026-11-22 09:00:00", "login", "alice"),
            ("2026-11-22 10:30:00", "session.established", "alice"),
            ("2026-11-22 10:40:00", "login", "al"),
            ("2026-11-22 10:50:00", "login.failed", "Alice"),
            ("2026-11-22 10:55:00", "login.failed", "ALBERT"),
        ] {
            n += 1;
            log.push(at(t), name, p1, "10.0.0.1", n);
        }
        log.seal();
        log
    }

    fn names(log: &EventLog, rows: &[u32]) -> Vec<String> {
        rows.iter()
            .map(|i| {
                format!(
                    "{}@{}",
                    log.field(*i, "parm1").unwrap_or_default(),
                    log.field(*i, "sys_created_on").unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn index_and_scan_agree_with_the_text_matcher() {
        let log = log();
        for query in [
            "parm1=alice^sys_created_on>2026-11-22 09:00:00^sys_created_on<=2026-11-22 10:30:00",
            "parm1INalice,bob^nameINlogin,login.failed",
            "parm1STARTSWITHal^name=login",
            "name=login^sys_created_on>=2026-11-22 10:00:00",
            "parm1=alice^sys_created_on=2026-11-22 10:00:00^NQparm1=bob^sys_created_on=2026-11-22 11:00:00",
            "parm1=nobody",
            "parm1=ALICE",
            "parm1INalice,Bob^nameINlogin,LOGIN.failed",
            "parm1STARTSWITHAL^name=login.failed",
            "parm1STARTSWITHal",
        ] {
            let parsed = q(query);
            let got = log.select(&parsed);
            let all: Vec<u32> = (0..8).collect();
            let want: Vec<u32> = all
                .into_iter()
                .filter(|i| parsed.matches_with(|f| log.field(*i, f).map(Cow::into_owned).unwrap_or_default()))
                .collect();
            assert_eq!(got, want, "{query}");
        }
        let got = log.select(&q("parm1STARTSWITHal^name=login"));
        assert_eq!(
            names(&log, &got),
            ["alice@2026-11-22 09:00:00", "alice@2026-11-22 10:00:00", "al@2026-11-22 10:40:00"]
        );
        // The index finds every spelling, as the text matcher does: names compare without regard to case.
        let got = log.select(&q("parm1=ALICE^name=login.failed"));
        assert_eq!(names(&log, &got), ["alice@2026-11-22 10:00:00", "Alice@2026-11-22 10:50:00"]);
        let got = log.select(&q("parm1STARTSWITHAl^name=login.failed"));
        assert_eq!(
            names(&log, &got),
            ["alice@2026-11-22 10:00:00", "Alice@2026-11-22 10:50:00", "ALBERT@2026-11-22 10:55:00"]
        );
    }

    #[test]
    fn integer_sort_matches_text_sort() {
        let log = log();
        let parsed = q("ORDERBYDESCsys_created_on^ORDERBYDESCsys_id");
        let mut fast = log.select(&parsed);
        assert!(log.sort(&mut fast, &parsed.order));
        let mut slow = log.select(&parsed);
        parsed.sort_with(&mut slow, |i, f| log.field(*i, f).map(Cow::into_owned).unwrap_or_default());
        assert_eq!(fast, slow);
        assert!(!log.sort(&mut fast, &q("ORDERBYname").order));
    }
}
