//! Reads that hand their rows on page by page instead of collecting them, so that what a read keeps
//! does not grow with the table: a keyset read folded into the caller's state, and a read in the
//! query's own order that stops as soon as the caller has what it wants.

use chrono::{DateTime, Utc};

use super::{ApiError, Client, Row, join_query};
use crate::domain::sn_time;

impl Client {
    /// Reads every row matching `query` whose `sys_created_on` is at most `upper`, by keyset on
    /// `(sys_created_on, sys_id)` exactly as [`Client::read_keyset`] does (no row dropped or repeated while
    /// the table grows), but hands each page's new rows to `fold` and keeps none. Returns the rows folded.
    pub async fn fold_keyset(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        upper: DateTime<Utc>,
        mut fold: impl FnMut(Vec<Row>),
    ) -> Result<u64, ApiError> {
        /// Where the next page starts (see `read_keyset`).
        enum From {
            Start,
            AtOrAfter(String),
            After(String),
            Tie(String, String),
        }
        let upper = format!("sys_created_on<={}", sn_time::format(upper));
        let order = "ORDERBYsys_created_on^ORDERBYsys_id";
        let fields: Vec<&str> = fields.iter().copied().chain(["sys_created_on", "sys_id"]).collect();
        let mut folded = 0u64;
        let mut last: Option<(String, String)> = None;
        let mut from = From::Start;
        let mut offset = 0u64;
        let mut idle_pages = 0u32;
        loop {
            let q = match &from {
                From::Start => join_query(&[query, &upper, order]),
                From::AtOrAfter(ts) => join_query(&[query, &upper, &format!("sys_created_on>={ts}"), order]),
                From::After(ts) => join_query(&[query, &upper, &format!("sys_created_on>{ts}"), order]),
                From::Tie(ts, id) => join_query(&[query, &format!("sys_created_on={ts}^sys_id>{id}"), "ORDERBYsys_id"]),
            };
            let page = self.get_page(table, &q, &fields, offset, self.opts.page_size).await?;
            let returned = page.rows.len();
            let mut fresh = Vec::with_capacity(returned);
            for r in page.rows {
                let key = (r.text("sys_created_on"), r.text("sys_id"));
                if last.as_ref().is_none_or(|l| key > *l) {
                    last = Some(key);
                    fresh.push(r);
                }
            }
            let progressed = !fresh.is_empty();
            folded += fresh.len() as u64;
            if progressed {
                fold(fresh);
                offset = 0;
                idle_pages = 0;
            } else {
                idle_pages += 1;
                if idle_pages > 10_000 {
                    return Err(ApiError::Malformed {
                        table: table.into(),
                        reason: "paging made no progress over 10000 pages".into(),
                    });
                }
            }
            let Some((ts, id)) = last.clone() else {
                if !page.more {
                    return Ok(folded);
                }
                offset += u64::from(self.opts.page_size);
                continue;
            };
            from = match (from, page.more) {
                (From::Tie(..), false) => From::After(ts),
                (_, false) => return Ok(folded),
                (From::Tie(..), true) if progressed => From::Tie(ts, id),
                (_, true) if progressed => From::AtOrAfter(ts),
                (From::AtOrAfter(_) | From::After(_) | From::Start, true) if returned > 0 => From::Tie(ts, id),
                (from, true) => {
                    offset += u64::from(self.opts.page_size);
                    from
                }
            };
        }
    }

    /// One page of `query` (which carries its own order): the rows, and whether more follow.
    pub async fn read_page(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        limit: u32,
    ) -> Result<(Vec<Row>, bool), ApiError> {
        let page = self.get_page(table, query, fields, 0, limit).await?;
        Ok((page.rows, page.more))
    }

    /// Pages through `query` in its own order (offset paging, `limit` rows a page), handing each row
    /// to `take` until it answers true (done) or the rows run out. Pages that the account's ACLs
    /// emptied are stepped over. Meant for a descending order under a fixed upper bound, where rows
    /// that arrive meanwhile can only repeat a row, never hide one.
    pub async fn read_until(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        limit: u32,
        mut take: impl FnMut(&Row) -> bool,
    ) -> Result<(), ApiError> {
        let mut offset = 0u64;
        loop {
            let page = self.get_page(table, query, fields, offset, limit).await?;
            if page.rows.iter().any(&mut take) || !page.more {
                return Ok(());
            }
            offset += u64::from(limit);
        }
    }
}
