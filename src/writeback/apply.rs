//! Carrying a [`Plan`] out over the Table API.
//!
//! Safety rules:
//! - count bumps and resolves write absolute values (`count = N`, `state = resolved`), so a retried
//!   PATCH cannot count twice;
//! - a create whose answer was lost may have gone through: it is never re-POSTed blindly — the open
//!   records of our source are read first, and a record with the message is adopted; only when none
//!   exists is the create sent once more. "Lost" is every answer but a clear refusal
//!   (`ApiError::outcome_unknown`): a timeout, a dropped or cut-off connection, a 5xx, and an
//!   answer that is not a valid one — a gateway's HTML page in place of a Batch API answer included;
//! - every write is logged as it lands, so an interrupted cycle leaves a record of what it wrote, and
//!   the next cycle's reconcile converges (an unfinished resolve is planned again; a duplicate left by
//!   an unknowable failure is resolved).
//!
//! Writes go through the Batch API (`/api/now/v1/batch`, up to `BATCH_SIZE` per request) when the
//! instance offers it, and one request per record otherwise — only after a clear "not here"
//! (`ApiError::batch_not_offered`: 400, 403, 404, 405 before anything ran).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::reconcile::{Create, Plan};
use super::records::read_open_records;
use super::{ISSUE_TABLE, WriteAction};
use crate::domain::{IssueState, SysId, sn_time};
use crate::escape::Shown;
use crate::snow::query::QueryValue;
use crate::snow::{BatchItem, Client, ItemOutcome};

/// Sub-requests per Batch API call (the batch's 30 s quota covers all of them).
pub(crate) const BATCH_SIZE: usize = 50;

/// A record written by this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    pub(crate) sys_id: String,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedWrite {
    pub(crate) action: WriteAction,
    pub(crate) message: String,
    pub(crate) error: String,
}

/// What the write-back step did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Applied {
    pub created: Vec<Written>,
    pub counted: Vec<Written>,
    pub resolved: Vec<Written>,
    pub failed: Vec<FailedWrite>,
    /// Creates whose answer was lost, found on the instance by looking, not re-sent.
    pub adopted: usize,
    pub batch: bool,
}

impl Applied {
    /// The ecc_agent_issue sys_id of each message written (created or counted).
    pub(crate) fn issue_ids(&self) -> BTreeMap<String, String> {
        self.created.iter().chain(&self.counted).map(|w| (w.message.clone(), w.sys_id.clone())).collect()
    }
}

/// One planned write.
#[derive(Debug, Clone)]
enum Write<'a> {
    Create(&'a Create),
    Patch { action: WriteAction, sys_id: &'a SysId, message: &'a str, count: Option<u64>, body: Value },
}

impl Write<'_> {
    fn batch_item(&self, id: usize) -> BatchItem {
        match self {
            Write::Create(c) => BatchItem {
                id: id.to_string(),
                method: "POST",
                url: Client::table_path(ISSUE_TABLE, None, "sys_id,message"),
                body: create_body(c),
            },
            Write::Patch { sys_id, body, .. } => BatchItem {
                id: id.to_string(),
                method: "PATCH",
                url: Client::table_path(ISSUE_TABLE, Some(sys_id), "sys_id"),
                body: body.clone(),
            },
        }
    }
}

fn create_body(c: &Create) -> Value {
    json!({
        "message": c.message,
        "source": c.source,
        "last_detected": sn_time::format(c.last_detected),
        "sys_domain": c.sys_domain,
    })
}

/// Applies `plan` for `source`, through the Batch API when `use_batch` and the instance allows it.
pub async fn apply(client: &Client, plan: &Plan, source: &QueryValue, use_batch: bool) -> Applied {
    let mut writes: Vec<Write> = plan.create.iter().map(Write::Create).collect();
    writes.extend(plan.count.iter().map(|u| Write::Patch {
        action: WriteAction::Count,
        sys_id: &u.sys_id,
        message: &u.message,
        count: Some(u.count),
        body: json!({
            "count": u.count.to_string(),
            "last_detected": sn_time::format(u.last_detected),
            "sys_domain": u.sys_domain,
        }),
    }));
    writes.extend(plan.resolve.iter().map(|r| Write::Patch {
        action: WriteAction::Resolve,
        sys_id: &r.sys_id,
        message: &r.message,
        count: None,
        body: json!({ "state": IssueState::Resolved.as_str() }),
    }));

    let mut applied = Applied::default();
    let mut one_by_one: Vec<Write> = Vec::new();
    let mut unknown: Vec<&Create> = Vec::new();
    if use_batch && !writes.is_empty() {
        applied.batch = true;
        let mut chunks = writes.chunks(BATCH_SIZE);
        for chunk in chunks.by_ref() {
            let items: Vec<BatchItem> = chunk.iter().enumerate().map(|(i, w)| w.batch_item(i)).collect();
            match client.batch(&items).await {
                Ok(results) => {
                    for (w, r) in chunk.iter().zip(&results) {
                        match (&r.outcome, w) {
                            (ItemOutcome::Written(row), Write::Create(c)) => match row.reference("sys_id") {
                                Some(sys_id) => record_success(&mut applied, w, sys_id),
                                // Created, but which record? Look for it like a lost answer.
                                None => unknown.push(c),
                            },
                            (ItemOutcome::Written(_), Write::Patch { sys_id, .. }) => {
                                record_success(&mut applied, w, sys_id.to_string());
                            }
                            (ItemOutcome::Refused(e), _) => record_failure(&mut applied, w, format!("in a batch: {e}")),
                            (ItemOutcome::Unknown(why), Write::Create(c)) => {
                                tracing::warn!(why = %Shown(why), message = %Shown(&c.message), "a batched create's outcome is unknown; looking before re-creating");
                                unknown.push(c);
                            }
                            // A PATCH writes absolute values: sending it again is safe.
                            (ItemOutcome::Unknown(_), patch) => one_by_one.push(patch.clone()),
                        }
                    }
                }
                // Refused before anything ran: each write goes on its own.
                Err(e) if e.batch_not_offered() => {
                    tracing::info!(error = %e, "the Batch API is not offered; writing one record per request");
                    applied.batch = false;
                    one_by_one.extend(chunk.iter().cloned());
                    break;
                }
                Err(e) => {
                    if e.outcome_unknown() {
                        tracing::warn!(error = %e, "a Batch API call's answer was lost; looking before re-creating");
                    } else {
                        tracing::error!(error = %e, "a Batch API call was refused");
                    }
                    for w in chunk {
                        match w {
                            Write::Create(c) if e.outcome_unknown() => unknown.push(c),
                            Write::Create(_) => record_failure(&mut applied, w, e.to_string()),
                            patch => one_by_one.push(patch.clone()),
                        }
                    }
                }
            }
        }
        one_by_one.extend(chunks.flatten().cloned());
    } else {
        one_by_one = writes;
    }

    for w in &one_by_one {
        match w {
            Write::Create(c) => match client.create(ISSUE_TABLE, &create_body(c), &["sys_id", "message"]).await {
                Ok(row) if !row.text("sys_id").is_empty() => record_success(&mut applied, w, row.text("sys_id")),
                Ok(_) => unknown.push(c),
                Err(e) if e.outcome_unknown() => {
                    tracing::warn!(error = %e, message = %Shown(&c.message), "a create's answer was lost; looking before retrying");
                    unknown.push(c);
                }
                Err(e) => record_failure(&mut applied, w, e.to_string()),
            },
            Write::Patch { sys_id, body, .. } => match client.update(ISSUE_TABLE, sys_id, body).await {
                Ok(()) => record_success(&mut applied, w, sys_id.to_string()),
                Err(e) => record_failure(&mut applied, w, e.to_string()),
            },
        }
    }

    if !unknown.is_empty() {
        settle_unknown_creates(client, source, &unknown, &mut applied).await;
    }
    applied
}

/// Looks for the records of creates whose answer was lost; re-sends only those not found.
async fn settle_unknown_creates(client: &Client, source: &QueryValue, unknown: &[&Create], applied: &mut Applied) {
    let open = match read_open_records(client, source).await {
        Ok(open) => open,
        Err(e) => {
            for c in unknown {
                record_failure(
                    applied,
                    &Write::Create(c),
                    format!("the outcome is unknown and could not be checked ({e}); the next cycle will reconcile it"),
                );
            }
            return;
        }
    };
    for c in unknown {
        let w = Write::Create(c);
        // The plan created this message because no open record had it: any open record now is ours.
        if let Some(found) = open.iter().find(|r| r.message == c.message && r.mid_server.is_none()) {
            tracing::info!(sys_id = %found.sys_id, message = %Shown(&c.message), "the lost create had gone through; adopted");
            applied.adopted += 1;
            record_success(applied, &w, found.sys_id.to_string());
            continue;
        }
        match client.create(ISSUE_TABLE, &create_body(c), &["sys_id", "message"]).await {
            Ok(row) if !row.text("sys_id").is_empty() => record_success(applied, &w, row.text("sys_id")),
            Ok(_) => record_failure(applied, &w, "the instance answered without a sys_id".into()),
            Err(e) => record_failure(applied, &w, format!("{e}; the next cycle will try again")),
        }
    }
}

fn record_success(applied: &mut Applied, w: &Write, sys_id: String) {
    match w {
        Write::Create(c) => {
            tracing::debug!(%sys_id, message = %Shown(&c.message), "created ecc_agent_issue record");
            applied.created.push(Written { sys_id, message: c.message.clone(), count: Some(1) });
        }
        Write::Patch { action, message, count, .. } => {
            tracing::debug!(%sys_id, message = %Shown(message), %action, "updated ecc_agent_issue record");
            let written = Written { sys_id, message: message.to_string(), count: *count };
            if *action == WriteAction::Resolve { applied.resolved.push(written) } else { applied.counted.push(written) }
        }
    }
}

fn record_failure(applied: &mut Applied, w: &Write, error: String) {
    let (action, message) = match w {
        Write::Create(c) => (WriteAction::Create, c.message.clone()),
        Write::Patch { action, message, .. } => (*action, message.to_string()),
    };
    tracing::error!(%action, message = %Shown(&message), error = %Shown(&error), "could not write ecc_agent_issue");
    applied.failed.push(FailedWrite { action, message, error });
}
