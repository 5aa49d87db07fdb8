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
//! Writes go through the Batch API (`/api/now/v1/batch`, up to `BATCH_SIZE` per request, the batches sent
//! together within `[instance] concurrency`) when the instance offers it, and one request per record
//! otherwise — only after a clear "not here" (`ApiError::batch_not_offered`: 400, 403, 404, 405 before
//! anything ran). A batch the quota cut short is sent again in batches of half the size.

use std::collections::BTreeMap;

use futures::future::join_all;
use serde::Serialize;
use serde_json::{Value, json};

use super::reconcile::{Create, Plan};
use super::records::read_open_records;
use super::{ISSUE_TABLE, WriteAction};
use crate::domain::{IssueState, SysId, sn_time};
use crate::escape::Shown;
use crate::snow::query::QueryValue;
use crate::snow::{ApiError, ApiErrorKind, BatchItem, Client, ItemOutcome};

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
///
/// The batches of a round go out together (the client keeps at most `[instance] concurrency` requests in
/// flight); the writes of a plan are independent of each other (each create a new record, each count or
/// resolve a different one), so their order does not matter. Rounds follow each other only where a write
/// depends on what a round found out: a create whose answer was lost is looked up before it is sent again,
/// and a batch the 30 s quota cut short (its call cancelled, or items left unserviced) has its unfinished
/// writes sent again in batches of half the size.
pub async fn apply(client: &Client, plan: &Plan, source: &QueryValue, use_batch: bool) -> Applied {
    let writes = writes_of(plan);
    let mut applied = Applied::default();
    // Sent one per request: nothing of these ran yet, or (PATCHes) running them twice changes nothing.
    let mut direct: Vec<Write> = Vec::new();
    // Creates whose outcome is unknown: looked up before anything is sent again.
    let mut lost: Vec<&Create> = Vec::new();
    if use_batch && !writes.is_empty() {
        applied.batch = true;
        let mut pending = writes;
        let mut size = BATCH_SIZE;
        while !pending.is_empty() {
            let chunks: Vec<&[Write]> = pending.chunks(size).collect();
            let answers = join_all(chunks.iter().map(|chunk| send_batch(client, chunk))).await;
            let mut again: Vec<Write> = Vec::new();
            let mut cut = false;
            let mut not_offered = false;
            for (chunk, answer) in chunks.iter().zip(answers) {
                match answer {
                    Ok(outcomes) => {
                        for (w, outcome) in chunk.iter().zip(outcomes) {
                            cut |= matches!(outcome, ItemOutcome::Cut(_));
                            settle_item(&mut applied, w, outcome, &mut lost, &mut again);
                        }
                    }
                    // Refused before anything ran: each write goes on its own.
                    Err(e) if e.batch_not_offered() => {
                        if !not_offered {
                            tracing::info!(error = %e, "the Batch API is not offered; writing one record per request");
                        }
                        not_offered = true;
                        direct.extend(chunk.iter().cloned());
                    }
                    Err(e) => {
                        let quota = matches!(e.kind(), ApiErrorKind::QuotaExceeded { .. });
                        cut |= quota;
                        if e.outcome_unknown() {
                            tracing::warn!(error = %e, "a Batch API call's answer was lost; looking before re-creating");
                        } else {
                            tracing::error!(error = %e, "a Batch API call was refused");
                        }
                        for w in *chunk {
                            match w {
                                Write::Create(c) if e.outcome_unknown() || quota => lost.push(c),
                                Write::Create(_) => record_failure(&mut applied, w, e.to_string()),
                                patch => again.push(patch.clone()),
                            }
                        }
                    }
                }
            }
            if not_offered {
                applied.batch = false;
                direct.extend(again);
                break;
            }
            if !cut || size == 1 {
                // Not the quota: what is left goes one per request, as a lost answer always has.
                direct.extend(again);
                break;
            }
            // The quota cut a batch: the unfinished writes go again, in batches half the size, the lost
            // creates among them only once they are known not to have gone through.
            size = (size / 2).max(1);
            tracing::warn!(size, "the Batch API's quota cut a batch short; sending what is left in smaller batches");
            let looked = std::mem::take(&mut lost);
            again.extend(
                look_up_lost_creates(client, source, &looked, &mut applied).await.into_iter().map(Write::Create),
            );
            pending = again;
        }
    } else {
        direct = writes;
    }

    let answers = join_all(direct.iter().map(|w| send_one(client, w))).await;
    for (w, answer) in direct.iter().zip(answers) {
        match (w, answer) {
            (Write::Create(c), Sent::Lost) => lost.push(c),
            (Write::Patch { .. }, Sent::Lost) => record_failure(&mut applied, w, "the answer was lost".into()),
            (_, Sent::Written(sys_id)) => record_success(&mut applied, w, sys_id),
            (_, Sent::Failed(e)) => record_failure(&mut applied, w, e),
        }
    }

    if !lost.is_empty() {
        let missing = look_up_lost_creates(client, source, &lost, &mut applied).await;
        let again: Vec<Write> = missing.into_iter().map(Write::Create).collect();
        let answers = join_all(again.iter().map(|w| send_one(client, w))).await;
        for (w, answer) in again.iter().zip(answers) {
            match answer {
                Sent::Written(sys_id) => record_success(&mut applied, w, sys_id),
                Sent::Lost => record_failure(
                    &mut applied,
                    w,
                    "the answer was lost again; the next cycle will look for it and reconcile".into(),
                ),
                Sent::Failed(e) => record_failure(&mut applied, w, format!("{e}; the next cycle will try again")),
            }
        }
    }
    applied
}

/// The plan as a list of writes: creates, then count bumps, then resolves.
fn writes_of(plan: &Plan) -> Vec<Write<'_>> {
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
    writes
}

/// One Batch API call of `chunk`: an outcome per write, or why the whole call failed.
async fn send_batch(client: &Client, chunk: &[Write<'_>]) -> Result<Vec<ItemOutcome>, ApiError> {
    let items: Vec<BatchItem> = chunk.iter().enumerate().map(|(i, w)| w.batch_item(i)).collect();
    Ok(client.batch(&items).await?.into_iter().map(|r| r.outcome).collect())
}

/// Records what one batched write's answer says, or where the write goes next.
fn settle_item<'a>(
    applied: &mut Applied,
    w: &Write<'a>,
    outcome: ItemOutcome,
    lost: &mut Vec<&'a Create>,
    again: &mut Vec<Write<'a>>,
) {
    match (outcome, w) {
        (ItemOutcome::Written(row), Write::Create(c)) => match row.reference("sys_id") {
            Some(sys_id) => record_success(applied, w, sys_id),
            // Created, but which record? Look for it like a lost answer.
            None => lost.push(c),
        },
        (ItemOutcome::Written(_), Write::Patch { sys_id, .. }) => record_success(applied, w, sys_id.to_string()),
        (ItemOutcome::Refused(e), _) => record_failure(applied, w, format!("in a batch: {e}")),
        (ItemOutcome::Unknown(why) | ItemOutcome::Cut(why), Write::Create(c)) => {
            tracing::warn!(why = %Shown(&why), message = %Shown(&c.message), "a batched create's outcome is unknown; looking before re-creating");
            lost.push(c);
        }
        // A PATCH writes absolute values: sending it again is safe.
        (ItemOutcome::Unknown(_) | ItemOutcome::Cut(_), patch) => again.push(patch.clone()),
    }
}

/// What one direct request did.
enum Sent {
    Written(String),
    /// A create's answer was lost (it may have gone through).
    Lost,
    Failed(String),
}

async fn send_one(client: &Client, w: &Write<'_>) -> Sent {
    match w {
        Write::Create(c) => match client.create(ISSUE_TABLE, &create_body(c), &["sys_id", "message"]).await {
            Ok(row) if !row.text("sys_id").is_empty() => Sent::Written(row.text("sys_id")),
            Ok(_) => Sent::Lost,
            Err(e) if e.outcome_unknown() => {
                tracing::warn!(error = %e, message = %Shown(&c.message), "a create's answer was lost; looking before retrying");
                Sent::Lost
            }
            Err(e) => Sent::Failed(e.to_string()),
        },
        Write::Patch { sys_id, body, .. } => match client.update(ISSUE_TABLE, sys_id, body).await {
            Ok(()) => Sent::Written(sys_id.to_string()),
            Err(e) => Sent::Failed(e.to_string()),
        },
    }
}

/// Looks for the records of creates whose answer was lost: adopts those found, returns those to send again.
/// When the open records cannot be read, none is sent again (each is a failure the next cycle reconciles).
async fn look_up_lost_creates<'a>(
    client: &Client,
    source: &QueryValue,
    lost: &[&'a Create],
    applied: &mut Applied,
) -> Vec<&'a Create> {
    if lost.is_empty() {
        return Vec::new();
    }
    let open = match read_open_records(client, source).await {
        Ok(open) => open,
        Err(e) => {
            for c in lost {
                record_failure(
                    applied,
                    &Write::Create(c),
                    format!("the outcome is unknown and could not be checked ({e}); the next cycle will reconcile it"),
                );
            }
            return Vec::new();
        }
    };
    let mut missing = Vec::new();
    for c in lost {
        // The plan created this message because no open record had it: any open record now is ours.
        match open.iter().find(|r| r.message == c.message && r.mid_server.is_none()) {
            Some(found) => {
                tracing::info!(sys_id = %found.sys_id, message = %Shown(&c.message), "the lost create had gone through; adopted");
                applied.adopted += 1;
                record_success(applied, &Write::Create(c), found.sys_id.to_string());
            }
            None => missing.push(*c),
        }
    }
    missing
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
