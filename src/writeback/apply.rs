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
pub(crate) async fn apply(client: &Client, plan: &Plan, source: &QueryValue, use_batch: bool) -> Applied {
    let writes = writes_of(plan);
    let mut run = Applying { client, source, applied: Applied::default(), lost: Vec::new() };
    // Sent one per request: nothing of these ran yet, or (PATCHes) running them twice changes nothing.
    let direct = if use_batch && !writes.is_empty() { run.batched(writes).await } else { writes };
    run.direct(&direct).await;
    run.lost_answers().await;
    run.applied
}

/// A plan being applied: what is written so far, and the creates whose answer was lost.
struct Applying<'c, 'p> {
    client: &'c Client,
    source: &'c QueryValue,
    applied: Applied,
    /// Creates whose outcome is unknown: looked up before anything is sent again.
    lost: Vec<&'p Create>,
}

/// What one round of Batch API calls left to do.
#[derive(Default)]
struct BatchRound<'p> {
    /// Unfinished writes that are safe to send again.
    again: Vec<Write<'p>>,
    /// Writes of a batch refused before anything ran: they go one per request.
    direct: Vec<Write<'p>>,
    /// The quota cut a batch short.
    cut: bool,
    /// The instance does not offer the Batch API.
    not_offered: bool,
}

impl<'p> Applying<'_, 'p> {
    /// Applies `writes` through the Batch API, in rounds while the quota cuts batches short; returns the writes
    /// left to send one per request.
    async fn batched(&mut self, writes: Vec<Write<'p>>) -> Vec<Write<'p>> {
        self.applied.batch = true;
        let mut direct = Vec::new();
        let mut pending = writes;
        let mut size = BATCH_SIZE;
        while !pending.is_empty() {
            let round = self.batch_round(&pending, size).await;
            direct.extend(round.direct);
            let mut again = round.again;
            if round.not_offered {
                self.applied.batch = false;
                direct.extend(again);
                break;
            }
            if !round.cut || size == 1 {
                // Not the quota: what is left goes one per request, as a lost answer always has.
                direct.extend(again);
                break;
            }
            // The quota cut a batch: the unfinished writes go again, in batches half the size, the lost
            // creates among them only once they are known not to have gone through.
            size = (size / 2).max(1);
            tracing::warn!(size, "the Batch API's quota cut a batch short; sending what is left in smaller batches");
            let looked = std::mem::take(&mut self.lost);
            again.extend(self.look_up_lost_creates(&looked).await.into_iter().map(Write::Create));
            pending = again;
        }
        direct
    }

    /// One round: `pending` in batches of `size`, sent together; what each answer says is settled.
    async fn batch_round(&mut self, pending: &[Write<'p>], size: usize) -> BatchRound<'p> {
        let chunks: Vec<&[Write<'p>]> = pending.chunks(size).collect();
        let answers = join_all(chunks.iter().map(|chunk| send_batch(self.client, chunk))).await;
        let mut round = BatchRound::default();
        for (chunk, answer) in chunks.iter().zip(answers) {
            match answer {
                Ok(outcomes) => {
                    for (w, outcome) in chunk.iter().zip(outcomes) {
                        round.cut |= matches!(outcome, ItemOutcome::Cut(_));
                        settle_item(&mut self.applied, w, outcome, &mut self.lost, &mut round.again);
                    }
                }
                // Refused before anything ran: each write goes on its own.
                Err(e) if e.batch_not_offered() => {
                    if !round.not_offered {
                        tracing::info!(error = %e, "the Batch API is not offered; writing one record per request");
                    }
                    round.not_offered = true;
                    round.direct.extend(chunk.iter().cloned());
                }
                Err(e) => self.failed_batch(chunk, &e, &mut round),
            }
        }
        round
    }

    /// A Batch API call that failed as a whole: its lost creates are looked up, its PATCHes sent again.
    fn failed_batch(&mut self, chunk: &[Write<'p>], e: &ApiError, round: &mut BatchRound<'p>) {
        let quota = matches!(e.kind(), ApiErrorKind::QuotaExceeded { .. });
        round.cut |= quota;
        if e.outcome_unknown() {
            tracing::warn!(error = %e, "a Batch API call's answer was lost; looking before re-creating");
        } else {
            tracing::error!(error = %e, "a Batch API call was refused");
        }
        for w in chunk {
            match w {
                Write::Create(c) if e.outcome_unknown() || quota => self.lost.push(c),
                Write::Create(_) => record_failure(&mut self.applied, w, e.to_string()),
                patch => round.again.push(patch.clone()),
            }
        }
    }

    /// Sends `direct`, one write per request.
    async fn direct(&mut self, direct: &[Write<'p>]) {
        let answers = join_all(direct.iter().map(|w| send_one(self.client, w))).await;
        for (w, answer) in direct.iter().zip(answers) {
            match (w, answer) {
                (Write::Create(c), Sent::Lost) => self.lost.push(c),
                (Write::Patch { .. }, Sent::Lost) => record_failure(&mut self.applied, w, "the answer was lost".into()),
                (_, Sent::Written(sys_id)) => record_success(&mut self.applied, w, sys_id),
                (_, Sent::Failed(e)) => record_failure(&mut self.applied, w, e),
            }
        }
    }

    /// The creates whose answer was lost: adopted when found, sent once more when not.
    async fn lost_answers(&mut self) {
        if self.lost.is_empty() {
            return;
        }
        let lost = std::mem::take(&mut self.lost);
        let missing = self.look_up_lost_creates(&lost).await;
        let again: Vec<Write> = missing.into_iter().map(Write::Create).collect();
        let answers = join_all(again.iter().map(|w| send_one(self.client, w))).await;
        for (w, answer) in again.iter().zip(answers) {
            let applied = &mut self.applied;
            match answer {
                Sent::Written(sys_id) => record_success(applied, w, sys_id),
                Sent::Lost => record_failure(
                    applied,
                    w,
                    "the answer was lost again; the next cycle will look for it and reconcile".into(),
                ),
                Sent::Failed(e) => record_failure(applied, w, format!("{e}; the next cycle will try again")),
            }
        }
    }

    /// Looks for the records of creates whose answer was lost: adopts those found, returns those to send
    /// again. When the open records cannot be read, none is sent again (each is a failure the next cycle
    /// reconciles).
    async fn look_up_lost_creates(&mut self, lost: &[&'p Create]) -> Vec<&'p Create> {
        if lost.is_empty() {
            return Vec::new();
        }
        let open = match read_open_records(self.client, self.source).await {
            Ok(open) => open,
            Err(e) => {
                for c in lost {
                    record_failure(
                        &mut self.applied,
                        &Write::Create(c),
                        format!(
                            "the outcome is unknown and could not be checked ({e}); the next cycle will reconcile it"
                        ),
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
                    self.applied.adopted += 1;
                    record_success(&mut self.applied, &Write::Create(c), found.sys_id.to_string());
                }
                None => missing.push(*c),
            }
        }
        missing
    }
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
