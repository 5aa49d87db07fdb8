//! The ServiceNow REST Table API client: the only code that knows HTTP, paging, retries and JSON.
//!
//! - `client/`: the [`Client`] and its options; its reads, its writes, its transport (every answer is read up
//!   to a size limit) and its counters, a file each.
//! - `answer.rs`: what an answer is — data, or a class of failure (quota cancellation, rate limit,
//!   unavailable, not the API, refused, too large, cut off); one classifier for every read and write.
//! - `error.rs`: [`ApiError`], a table and an [`ApiErrorKind`] to branch on, worded for the person who has to fix it.
//! - [`auth`]: the credentials of every request: Basic, or an OAuth token renewed before it expires and once
//!   after a 401; proven by one request before others go, and a refusal ends every later request unsent.
//! - `retry.rs`: the [`RetryPolicy`] and `Retry-After` in both of its forms.
//! - `paging.rs`: offset and keyset cursors.
//! - `batch.rs`: the Batch API's envelope and the outcome of each sub-request; `batch_get.rs`: many small
//!   reads (GET sub-requests) in one round trip.
//! - `aggregate.rs`: the Aggregate API (counts per group, MAX where the instance offers it).
//! - `deadline.rs`: the cycle's deadline as requests see it, and what is in flight.
//! - [`query`]: encoded queries from untrusted values; `row.rs`: the instance's value shapes.
//! - `text.rs`: text from the instance made fit for a message (bounded, message + detail, a shown `Location`).
//!
//! Reads are retried (429 honouring `Retry-After` up to a cap, 5xx, cut-off answers and lost
//! connections with exponential backoff, within a finite budget; never 400/401/403). A page the
//! REST quota cancelled is asked again with half the rows. Every paged read has a total order;
//! `sysevent`, which grows while it is read, is paged by keyset on `(sys_created_on, sys_id)` under
//! the window's fixed upper bound ([`Client::fold_keyset`]).

pub(crate) mod aggregate;
mod answer;
pub mod auth;
mod batch;
mod batch_get;
mod client;
pub(crate) mod deadline;
mod error;
mod paging;
pub mod query;
mod retry;
pub(crate) mod row;
mod text;

pub(crate) use aggregate::Group;
pub(crate) use batch::{BATCH, BatchItem, ItemOutcome};
pub(crate) use batch_get::PageRequest;
pub(crate) use client::DateReading;
pub use client::{Client, ClientError, ClientOptions, Stats};
pub use error::{ApiError, ApiErrorKind};
pub(crate) use query::Query;
pub use retry::RetryPolicy;
pub(crate) use row::{Row, value_text};
