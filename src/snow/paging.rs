//! Where the next page of a read starts (docs/servicenow.md §2 item 3): offset paging under a
//! total order, and keyset paging on `(sys_created_on, sys_id)` under a fixed upper bound for
//! `sysevent`, which grows while it is read. Pure: the client sends what a cursor asks and hands
//! it the page that came back. A page can hold fewer rows than asked (the instance, or a gateway in
//! front of it, caps it): the next page starts where the answer says, never at `offset + limit`.

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, LINK};

use super::query::{Query, QueryValue, SYS_CREATED_ON, SYS_ID};
use super::row::Row;
use super::{ApiError, ApiErrorKind};
use crate::domain::sn_time;

/// One page of a read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub(crate) rows: Vec<Row>,
    /// The instance says more rows follow (`Link: …;rel="next"`, or a full page when no Link is sent).
    pub(crate) more: bool,
    /// Where the instance says the next page starts: the `sysparm_offset` of the `Link` header's next page.
    pub(crate) next: Option<u64>,
}

impl Page {
    /// A page as the instance answered it to a request for `limit` rows.
    pub(crate) fn new(rows: Vec<Row>, headers: &HeaderMap, limit: u32) -> Page {
        let more = next_link(headers).unwrap_or(rows.len() as u64 >= u64::from(limit));
        Page { rows, more, next: next_offset(headers) }
    }

    /// Where the page after this one starts, this one asked at `offset` for `limit` rows. The instance, or a
    /// gateway in front of it, may serve fewer rows than asked (a page cap), so not `offset + limit`, but: the
    /// Link header's next offset, when it is past `offset` and not past the rows asked for (or received); else
    /// past the rows received; else, for a page without rows that says more follow (the account's ACLs hid
    /// them: the limit applies before the ACLs), past the rows asked for.
    pub(crate) fn next_offset(&self, offset: u64, limit: u32) -> u64 {
        let received = self.rows.len() as u64;
        let reach = offset.saturating_add(u64::from(limit).max(received));
        match self.next {
            Some(next) if next > offset && next <= reach => next,
            _ if received > 0 => offset.saturating_add(received),
            _ => offset.saturating_add(u64::from(limit)),
        }
    }
}

/// The `Link` header values, each as text (as bytes: a header with one non-ASCII byte, an opaque URL, is still
/// the instance's Link header).
fn links(headers: &HeaderMap) -> Vec<String> {
    headers.get_all(LINK).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
}

/// `Some(true)` when the `Link` header has `rel="next"`, `Some(false)` when it has none, `None` without a header.
fn next_link(headers: &HeaderMap) -> Option<bool> {
    let links = links(headers);
    if links.is_empty() {
        return None;
    }
    Some(links.iter().flat_map(|l| l.split(',')).any(|l| l.replace(' ', "").contains("rel=\"next\"")))
}

/// The `sysparm_offset` of the `Link` header's `rel="next"` page, if it names one that is a number. Each link is
/// `<url>` followed by its parameters, up to the next `<` (a URL may hold commas).
fn next_offset(headers: &HeaderMap) -> Option<u64> {
    links(headers).iter().find_map(|header| {
        header.split('<').skip(1).find_map(|link| {
            let (url, params) = link.split_once('>')?;
            let rel_next =
                params.split([';', ',']).any(|p| matches!(p.replace(' ', "").as_str(), "rel=\"next\"" | "rel=next"));
            if !rel_next {
                return None;
            }
            let (_, query) = url.split_once('?')?;
            let offset = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "sysparm_offset")?.1;
            offset.parse::<u64>().ok()
        })
    })
}

/// What to ask for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub(crate) query: Query,
    pub(crate) offset: u64,
    pub(crate) limit: u32,
}

/// A read in progress: it says which page to ask for, takes the page that came back, and knows
/// when it is done. Its page size can shrink between pages (after a quota cancellation).
pub(crate) trait Cursor {
    /// The next page to ask for, or `None` when the read is complete.
    fn next(&self) -> Option<PageRequest>;
    /// Takes the answer to the last [`Cursor::next`].
    fn take(&mut self, page: Page) -> Result<(), ApiError>;
    fn set_limit(&mut self, limit: u32);
    /// The rows taken since the last call (each row once: a read hands them on page by page).
    fn take_rows(&mut self) -> Vec<Row>;
}

/// Offset paging under `ORDERBYsys_id`: no row is dropped or repeated between pages of a table
/// that does not change meanwhile. Each page starts where the last one's answer says ([`Page::next_offset`]).
#[derive(Debug)]
pub(crate) struct Offset {
    query: Query,
    offset: u64,
    limit: u32,
    done: bool,
    rows: Vec<Row>,
}

impl Offset {
    pub(super) fn new(query: &Query, limit: u32) -> Offset {
        Offset { query: query.clone().order_by(SYS_ID), offset: 0, limit, done: false, rows: Vec::new() }
    }
}

impl Cursor for Offset {
    fn next(&self) -> Option<PageRequest> {
        (!self.done).then(|| PageRequest { query: self.query.clone(), offset: self.offset, limit: self.limit })
    }

    fn take(&mut self, page: Page) -> Result<(), ApiError> {
        self.offset = page.next_offset(self.offset, self.limit);
        self.done = !page.more;
        self.rows.extend(page.rows);
        Ok(())
    }

    fn set_limit(&mut self, limit: u32) {
        self.limit = limit.max(1);
    }

    fn take_rows(&mut self) -> Vec<Row> {
        std::mem::take(&mut self.rows)
    }
}

/// Where the next keyset page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum From {
    Start,
    /// `sys_created_on >= ts`: rows of that second already emitted are filtered out again.
    AtOrAfter(DateTime<Utc>),
    /// `sys_created_on > ts`: the second `ts` has been read completely.
    After(DateTime<Utc>),
    /// `sys_created_on = ts ^ sys_id > id`: a whole page shared the second `ts`.
    Tie(DateTime<Utc>, QueryValue),
}

/// Pages in a row that bring nothing new before the read gives up (a broken instance).
const MAX_IDLE_PAGES: u32 = 10_000;

/// Keyset paging on `(sys_created_on, sys_id)` under a fixed upper bound (inclusive): rows
/// inserted or rotated away while the read goes on cannot shift a page, so none is dropped or
/// repeated. A page the account's ACLs emptied (the limit applies before ACLs) is stepped over
/// by offset.
#[derive(Debug)]
pub(crate) struct Keyset {
    table: String,
    query: Query,
    upper: DateTime<Utc>,
    from: From,
    last: Option<(String, String)>,
    offset: u64,
    idle_pages: u32,
    limit: u32,
    done: bool,
    rows: Vec<Row>,
}

/// The keyset order.
fn ordered(q: Query) -> Query {
    q.order_by(SYS_CREATED_ON).order_by(SYS_ID)
}

impl Keyset {
    pub(super) fn new(table: &str, query: &Query, upper: DateTime<Utc>, limit: u32) -> Keyset {
        Keyset {
            table: table.to_string(),
            query: query.clone(),
            upper,
            from: From::Start,
            last: None,
            offset: 0,
            idle_pages: 0,
            limit,
            done: false,
            rows: Vec::new(),
        }
    }

    /// Where the next page starts.
    #[cfg(test)]
    pub(crate) fn from(&self) -> &From {
        &self.from
    }
}

impl Cursor for Keyset {
    fn next(&self) -> Option<PageRequest> {
        if self.done {
            return None;
        }
        let bounded = self.query.clone().at_or_before(SYS_CREATED_ON, self.upper);
        let query = match &self.from {
            From::Start => ordered(bounded),
            From::AtOrAfter(ts) => ordered(bounded.at_or_after(SYS_CREATED_ON, *ts)),
            From::After(ts) => ordered(bounded.after(SYS_CREATED_ON, *ts)),
            From::Tie(ts, id) => self.query.clone().at(SYS_CREATED_ON, *ts).gt(SYS_ID, id).order_by(SYS_ID),
        };
        Some(PageRequest { query, offset: self.offset, limit: self.limit })
    }

    fn take(&mut self, page: Page) -> Result<(), ApiError> {
        let returned = page.rows.len();
        let next = page.next_offset(self.offset, self.limit);
        let before = self.rows.len();
        for r in page.rows {
            let key = (r.text("sys_created_on"), r.text("sys_id"));
            if self.last.as_ref().is_none_or(|l| key > *l) {
                self.last = Some(key);
                self.rows.push(r);
            }
        }
        let progressed = self.rows.len() > before;
        if progressed {
            self.offset = 0;
            self.idle_pages = 0;
        } else {
            self.idle_pages += 1;
            if self.idle_pages > MAX_IDLE_PAGES {
                let reason = format!("paging made no progress over {MAX_IDLE_PAGES} pages");
                return Err(ApiError::new(self.table.clone(), ApiErrorKind::Malformed { reason }));
            }
        }
        let Some((ts, id)) = &self.last else {
            // Nothing readable yet: step over the (ACL-emptied) page.
            self.done = !page.more;
            self.offset = next;
            return Ok(());
        };
        // The next query starts from the last row's key: it must be an instance time and a query-safe sys_id.
        let (Some(ts), Some(id)) = (sn_time::parse(ts), QueryValue::new(id)) else {
            let reason = "a row's sys_created_on or sys_id is not what the instance writes, so the next page \
                          cannot start after it"
                .to_string();
            return Err(ApiError::new(self.table.clone(), ApiErrorKind::Malformed { reason }));
        };
        let from = std::mem::replace(&mut self.from, From::Start);
        let before = from.clone();
        self.from = match (from, page.more) {
            // The tie second is exhausted: go on strictly after it.
            (From::Tie(..), false) => From::After(ts),
            (from, false) => {
                self.done = true;
                from
            }
            (From::Tie(..), true) if progressed => From::Tie(ts, id),
            (_, true) if progressed => From::AtOrAfter(ts),
            // A full page of rows already emitted: they all share the cursor's second.
            (From::AtOrAfter(_) | From::After(_) | From::Start, true) if returned > 0 => From::Tie(ts, id),
            (from, true) => {
                self.offset = next;
                from
            }
        };
        // A new query starts at its own first row: an offset stepped over hidden rows of the old
        // one would skip rows of the new.
        if self.from != before {
            self.offset = 0;
        }
        Ok(())
    }

    fn set_limit(&mut self, limit: u32) {
        self.limit = limit.max(1);
    }

    fn take_rows(&mut self) -> Vec<Row> {
        std::mem::take(&mut self.rows)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::snow::query::Field;

    fn at(s: &str) -> DateTime<Utc> {
        sn_time::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    fn name_is_login() -> Query {
        Query::new().eq(Field::new("name"), &QueryValue::fixed("login"))
    }

    /// One event row.
    fn event(ts: &str, id: &str) -> Row {
        match json!({"sys_created_on": ts, "sys_id": id}) {
            Value::Object(m) => Row(m),
            _ => Row(Map::new()),
        }
    }

    /// A table served the way the instance would answer the cursor's position (no HTTP, no
    /// query parsing: the position is read from the cursor itself). `hidden` rows count
    /// against the limit but are not returned (ACLs apply after the limit). A page holds at most
    /// `cap` rows, whatever the limit asks; its `next` is where the Link header would say.
    struct Table {
        rows: Vec<(String, String, bool)>,
        upper: String,
        cap: u32,
    }

    impl Table {
        fn answer(&self, cursor: &Keyset, req: &PageRequest) -> Page {
            let mut matching: Vec<&(String, String, bool)> = self
                .rows
                .iter()
                .filter(|(ts, id, _)| match cursor.from() {
                    From::Start => *ts <= self.upper,
                    From::AtOrAfter(t) => *ts <= self.upper && *ts >= sn_time::format(*t),
                    From::After(t) => *ts <= self.upper && *ts > sn_time::format(*t),
                    From::Tie(t, i) => *ts == sn_time::format(*t) && id.as_str() > i.as_str(),
                })
                .collect();
            matching.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            let total = matching.len() as u64;
            let end = (req.offset + u64::from(req.limit.min(self.cap))).min(total);
            let start = req.offset.min(total);
            let rows = matching[start as usize..end as usize]
                .iter()
                .filter(|(_, _, hidden)| !hidden)
                .map(|(ts, id, _)| event(ts, id))
                .collect();
            Page { rows, more: end < total, next: (end < total).then_some(end) }
        }
    }

    fn drain(table: &Table, limit: u32) -> (Vec<(String, String)>, usize) {
        let mut cursor = Keyset::new("sysevent", &name_is_login(), at(&table.upper), limit);
        let mut pages = 0;
        while let Some(req) = cursor.next() {
            let page = table.answer(&cursor, &req);
            if let Err(e) = cursor.take(page) {
                panic!("{e}");
            }
            pages += 1;
            assert!(pages < 10_000, "the read never ends");
        }
        let keys = cursor.take_rows().iter().map(|r| (r.text("sys_created_on"), r.text("sys_id"))).collect();
        (keys, pages)
    }

    fn events() -> Table {
        let mut rows = Vec::new();
        for i in 0..25u32 {
            let second = ["2026-11-22 10:00:00", "2026-11-22 10:00:01", "2026-11-22 10:00:02"][(i % 3) as usize];
            rows.push((second.to_string(), format!("{:032x}", (i * 7919) % 1000), i % 11 == 4));
        }
        rows.push(("2026-11-22 12:00:01".into(), "f".repeat(32), false));
        Table { rows, upper: "2026-11-22 12:00:00".into(), cap: u32::MAX }
    }

    #[test]
    fn keyset_reads_every_visible_row_once_in_key_order_at_any_page_size() {
        let table = events();
        let visible = table.rows.iter().filter(|(ts, _, hidden)| !hidden && *ts <= table.upper).count();
        for limit in [1, 2, 3, 7, 8, 9, 100] {
            let (keys, _) = drain(&table, limit);
            let unique: BTreeSet<&(String, String)> = keys.iter().collect();
            assert_eq!(keys.len(), visible, "limit {limit}");
            assert_eq!(unique.len(), visible, "limit {limit}: no row twice");
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "limit {limit}: in key order");
        }
    }

    #[test]
    fn keyset_steps_over_rows_the_acls_hide_without_skipping_visible_ones() {
        let patterns: [fn(usize) -> bool; 4] = [|i| i < 20, |i| i % 2 == 0, |i| i % 3 == 1, |i| i % 5 != 0];
        for hide in patterns {
            let mut table = events();
            for (i, row) in table.rows.iter_mut().enumerate() {
                row.2 = hide(i);
            }
            let visible = table.rows.iter().filter(|(ts, _, hidden)| !hidden && *ts <= table.upper).count();
            for limit in [1, 2, 3, 5, 8] {
                assert_eq!(drain(&table, limit).0.len(), visible, "limit {limit}");
            }
        }
    }

    /// Found with the page-capped simulated instance: a page that holds fewer rows than asked must not
    /// make the next one start past rows never seen, also where the account's ACLs emptied a page.
    #[test]
    fn keyset_reads_every_visible_row_of_a_page_capped_table() {
        let patterns: [fn(usize) -> bool; 3] = [|_| false, |i| i < 20, |i| i % 3 == 1];
        for hide in patterns {
            let mut table = events();
            table.cap = 3;
            for (i, row) in table.rows.iter_mut().enumerate() {
                row.2 = hide(i);
            }
            let visible = table.rows.iter().filter(|(ts, _, hidden)| !hidden && *ts <= table.upper).count();
            for limit in [4, 8, 100] {
                let (keys, _) = drain(&table, limit);
                let unique: BTreeSet<&(String, String)> = keys.iter().collect();
                assert_eq!((keys.len(), unique.len()), (visible, visible), "limit {limit}");
            }
        }
    }

    fn linked(next: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value =
            format!("<https://x/api/now/table/t?{next}>;rel=\"next\",<https://x/api/now/table/t>;rel=\"first\"");
        h.insert(LINK, reqwest::header::HeaderValue::from_str(&value).expect("a header value"));
        h
    }

    #[test]
    fn the_next_page_starts_where_the_answer_says() {
        let hundred = || vec![Row::default(); 100];
        // A capped page: 100 rows of the 1000 asked, the Link's next page at 100.
        let capped = Page::new(hundred(), &linked("sysparm_offset=100&sysparm_limit=100"), 1000);
        assert_eq!((capped.more, capped.next_offset(0, 1000)), (true, 100));
        // Raw commas in the URL, parameters in another order.
        let fields = linked("sysparm_fields=sys_id,name&sysparm_limit=100&sysparm_offset=300");
        assert_eq!(Page::new(hundred(), &fields, 1000).next_offset(200, 1000), 300);
        // An ACL-emptied page: past the rows asked for, as the Link says.
        assert_eq!(Page::new(vec![], &linked("sysparm_offset=1100"), 1000).next_offset(100, 1000), 1100);
        // A next offset that goes back, stays put or skips past the rows asked for: after the rows received.
        for next in ["sysparm_offset=0", "sysparm_offset=200", "sysparm_offset=5000", "sysparm_offset=x", ""] {
            assert_eq!(Page::new(hundred(), &linked(next), 1000).next_offset(200, 1000), 300, "{next}");
        }
        // No Link header: a full page, and the next starts after its rows.
        assert_eq!(Page::new(hundred(), &HeaderMap::new(), 100).next_offset(0, 100), 100);
        // No readable next offset, no rows, more to come: past the rows asked for.
        assert_eq!(Page::new(vec![], &linked(""), 1000).next_offset(0, 1000), 1000);
    }

    #[test]
    fn keyset_queries_stay_under_the_upper_bound_or_inside_one_second() {
        let mut cursor = Keyset::new("sysevent", &name_is_login(), at("2026-11-22 12:00:00"), 2);
        let first = cursor.next().map(|r| r.query.to_string());
        assert_eq!(
            first.as_deref(),
            Some("name=login^sys_created_on<=2026-11-22 12:00:00^ORDERBYsys_created_on^ORDERBYsys_id")
        );
        // A full page of one second: the next page is that second's rest, by sys_id.
        let page = Page {
            rows: vec![event("2026-11-22 10:00:00", "a"), event("2026-11-22 10:00:00", "b")],
            more: true,
            next: Some(2),
        };
        assert!(cursor.take(page).is_ok());
        let page = Page {
            rows: vec![event("2026-11-22 10:00:00", "a"), event("2026-11-22 10:00:00", "b")],
            more: true,
            next: Some(2),
        };
        assert!(cursor.take(page).is_ok());
        assert_eq!(cursor.from(), &From::Tie(at("2026-11-22 10:00:00"), QueryValue::fixed("b")));
        assert_eq!(
            cursor.next().map(|r| r.query.to_string()).as_deref(),
            Some("name=login^sys_created_on=2026-11-22 10:00:00^sys_id>b^ORDERBYsys_id")
        );
    }

    #[test]
    fn a_smaller_page_keeps_the_position() {
        let table = events();
        let mut cursor = Keyset::new("sysevent", &Query::default(), at(&table.upper), 8);
        let req = cursor.next();
        cursor.set_limit(4);
        let again = cursor.next();
        assert_eq!(req.map(|r| (r.query, r.offset)), again.clone().map(|r| (r.query, r.offset)));
        assert_eq!(again.map(|r| r.limit), Some(4));
        let mut offset = Offset::new(&Query::new().eq(Field::new("active"), &QueryValue::fixed("true")), 8);
        assert!(offset.take(Page { rows: vec![event("t", "a")], more: true, next: Some(8) }).is_ok());
        offset.set_limit(4);
        assert_eq!(
            offset.next().map(|r| (r.query.to_string(), r.offset, r.limit)),
            Some(("active=true^ORDERBYsys_id".to_string(), 8, 4))
        );
        assert!(offset.take(Page::default()).is_ok());
        assert_eq!(offset.next(), None);
    }

    #[test]
    fn more_rows_follow_per_link_header_or_a_full_page() {
        let mut h = HeaderMap::new();
        assert!(Page::new(vec![Row::default(); 2], &h, 2).more);
        assert!(!Page::new(vec![Row::default(); 1], &h, 2).more);
        h.insert(LINK, reqwest::header::HeaderValue::from_static("<https://x/a?sysparm_offset=0>;rel=\"first\""));
        assert!(!Page::new(vec![Row::default(); 2], &h, 2).more);
        h.insert(LINK, reqwest::header::HeaderValue::from_static("<https://x/a?sysparm_offset=2>; rel=\"next\""));
        assert!(Page::new(vec![], &h, 2).more);
    }

    /// Found by the property below: a `Link` header with a non-ASCII byte elsewhere still names its next page.
    #[test]
    fn a_link_header_with_a_non_ascii_byte_still_names_its_next_page() {
        let mut h = HeaderMap::new();
        let value = "<https://acme.example/>;rel=\"next\",<https://acme.example/>;rel=\"\u{ae}\"";
        h.insert(LINK, reqwest::header::HeaderValue::from_bytes(value.as_bytes()).expect("a header value"));
        assert!(Page::new(vec![], &h, 100).more);
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config())]

        /// Any `Link` header is read without a panic, and says more rows follow exactly when one of its links
        /// is `rel="next"`.
        #[test]
        fn any_link_header_is_read_and_next_is_found_among_the_others(
            rels in proptest::collection::vec(proptest::prop_oneof!["first", "prev", "next", "last", "\\PC{0,8}"], 1..6),
            urls in proptest::collection::vec("[a-z0-9/?=&%._-]{0,40}", 6),
            spaces in proptest::bool::ANY,
        ) {
            let sep = if spaces { ", " } else { "," };
            let header: Vec<String> =
                rels.iter().zip(&urls).map(|(rel, url)| format!("<https://acme.example/{url}>;rel=\"{rel}\"")).collect();
            let header = header.join(sep);
            let mut headers = HeaderMap::new();
            if let Ok(value) = reqwest::header::HeaderValue::from_str(&header) {
                headers.insert(reqwest::header::LINK, value);
                let expected = rels.iter().any(|r| r.replace(' ', "") == "next");
                proptest::prop_assert_eq!(Page::new(Vec::new(), &headers, 100).more, expected);
            }
        }

        #[test]
        fn no_link_header_value_panics(value in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = reqwest::header::HeaderValue::from_bytes(&value) {
                headers.insert(reqwest::header::LINK, value);
            }
            let _ = Page::new(Vec::new(), &headers, 100);
        }
    }
}
