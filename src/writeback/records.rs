//! The records of our source in `ecc_agent_issue`, read in one place: the open ones the plan needs and,
//! for the findings' history, those resolved within the table's retention.

use chrono::{DateTime, Duration, Utc};

use super::ISSUE_TABLE;
use super::reconcile::IssueRecord;
use crate::domain::IssueState;
use crate::snow::query::{Field, QueryValue};
use crate::snow::{ApiError, Client, Query, Row};

/// The fields of a record the plan and the history use.
pub(crate) const RECORD_FIELDS: &[&str] =
    &["sys_id", "message", "source", "state", "count", "mid_server", "sys_domain", "sys_created_on"];

const SOURCE: Field = Field::new("source");
const STATE: Field = Field::new("state");
const UPDATED_ON: Field = Field::new("sys_updated_on");
const RESOLVED: QueryValue = QueryValue::fixed("resolved");

/// The instance deletes `ecc_agent_issue` rows not updated for 30 days (docs/servicenow.md §4).
const RETENTION_DAYS: i64 = 30;

/// The records of our source one cycle reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Records {
    /// Unresolved (New, Acknowledged, …).
    pub(crate) open: Vec<IssueRecord>,
    /// Resolved, with when they were last updated (their resolution, as midwatch never touches them again).
    pub(crate) resolved: Vec<(IssueRecord, DateTime<Utc>)>,
}

/// Reads the unresolved records of `source` and those it resolved within the table's retention, in one query.
pub(crate) async fn read_records(
    client: &Client,
    source: &QueryValue,
    now: DateTime<Utc>,
) -> Result<Records, ApiError> {
    read(client, source, Some(now - Duration::days(RETENTION_DAYS))).await
}

/// Reads the unresolved records of `source` (New and Acknowledged alike).
pub(crate) async fn read_open_records(client: &Client, source: &QueryValue) -> Result<Vec<IssueRecord>, ApiError> {
    Ok(read(client, source, None).await?.open)
}

/// The unresolved records of `source`, and with `resolved_since` those updated after it. Both filters are
/// repeated on our side.
async fn read(
    client: &Client,
    source: &QueryValue,
    resolved_since: Option<DateTime<Utc>>,
) -> Result<Records, ApiError> {
    let open = Query::new().eq(SOURCE, source).ne(STATE, &RESOLVED);
    let mut fields = RECORD_FIELDS.to_vec();
    // `^OR` binds to the condition before it: source AND (unresolved OR updated recently).
    let query = match resolved_since {
        Some(since) => {
            fields.push(UPDATED_ON.name());
            open.or_after(UPDATED_ON, since)
        }
        None => open,
    };
    let rows = client.read_all(ISSUE_TABLE, &query, &fields).await?;
    let mut records = Records::default();
    for r in &rows {
        let Some(record) = issue_record(r).filter(|rec| rec.source == source.as_str()) else { continue };
        if record.state.is_open() {
            records.open.push(record);
        } else if let Some(at) = resolved_since.and_then(|since| r.time("sys_updated_on").filter(|at| *at > since)) {
            records.resolved.push((record, at));
        }
    }
    Ok(records)
}

/// An `ecc_agent_issue` row as the plan sees it; `None` without a valid sys_id.
fn issue_record(r: &Row) -> Option<IssueRecord> {
    Some(IssueRecord {
        sys_id: r.sys_id("sys_id")?,
        message: r.text("message"),
        source: r.text("source"),
        state: IssueState::parse(&r.text("state")),
        count: r.text("count").trim().parse().unwrap_or(1),
        mid_server: r.reference("mid_server"),
        sys_domain: r.reference("sys_domain"),
        created_on: r.time("sys_created_on"),
    })
}
