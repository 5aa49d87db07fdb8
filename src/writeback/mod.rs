//! Keeping `ecc_agent_issue` exactly as the built-in job would, under midwatch's own `source`.
//!
//! [`reconcile`] is pure: `(findings of this cycle, unresolved records of our source) → Plan`.
//! [`apply`] carries a plan out over the Table API, logging every write, and never re-POSTs a
//! create whose outcome is unknown without looking first.

pub mod apply;
pub mod reconcile;

pub use apply::{Applied, apply, read_open_records};
pub use reconcile::{Create, IssueRecord, Plan, Resolve, Update, reconcile};

/// The MID Server Issue table.
pub const ISSUE_TABLE: &str = "ecc_agent_issue";
/// The stored `state` of a resolved record.
pub const RESOLVED: &str = "resolved";
