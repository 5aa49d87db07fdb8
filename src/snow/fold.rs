//! Reads in the query's own order that stop as soon as the caller has what it wants (the keyset read that
//! folds its pages into the caller's state is [`Client::fold_keyset`], beside the other cursors' reads).

use super::{ApiError, Client, Row};

impl Client {
    /// One page of `query` (which carries its own order): the rows, and whether more follow.
    pub async fn read_page(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        limit: u32,
    ) -> Result<(Vec<Row>, bool), ApiError> {
        let _waiting = self.pending.enter(format!("waiting for {table}"));
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
            let _waiting = self.pending.enter(format!("waiting for {table} (rows from {offset})"));
            let page = self.get_page(table, query, fields, offset, limit).await?;
            if page.rows.iter().any(&mut take) || !page.more {
                return Ok(());
            }
            offset += u64::from(limit);
        }
    }
}
