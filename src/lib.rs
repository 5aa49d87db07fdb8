//! midwatch watches the MID Server users of a ServiceNow instance.
//!
//! One cycle is a straight line ([`cycle::check`]):
//!
//! ```text
//! config ──▶ collect (Table API reads) ──▶ Snapshot ──▶ evaluate (pure rules) ──▶ Report
//!                                                                    │
//!                   ecc_agent_issue plan ◀── reconcile (pure) ◀──────┤
//!                   apply (create / count / resolve)                 ├──▶ notify: email ──▶ outbox ──▶ SMTP
//!                                                                    └──▶ present: text / JSON
//! ```
//!
//! Where each job lives:
//!
//! - [`cli`] parses the command line and is the only place that turns outcomes into exit codes.
//! - [`config`] parses and validates the TOML file once; the rest of the code trusts [`config::Config`].
//! - [`domain`] holds the instance's records, the findings and the report: plain types, no I/O.
//! - [`snow`] is the only module that knows HTTP, paging, retries, credentials and the instance's JSON shapes.
//! - [`collect`] reads one window's data into a [`domain::Snapshot`].
//! - [`evaluate`] is the pure function `Snapshot -> Report` reproducing the built-in MIDUserConnectivity job.
//! - [`writeback`] reconciles the findings with `ecc_agent_issue` (pure) and applies the plan.
//! - [`present`] is one view of the report and its renderings: terminal text, JSON, email text and HTML.
//! - [`notify`] decides whether to email, keeps the outbox and delivers over SMTP.
//! - [`service`] is `midwatch run`: the same cycle on a schedule, with signals, systemd and metrics.
//! - [`escape`] and [`logging`] show untrusted text with its control characters escaped, in reports and logs.
//! - [`manual`] generates the man pages and shell completions from [`cli`].
//! - [`demo`] is `midwatch demo`: a simulated instance and SMTP server inside the process (also used by the
//!   tests; not part of the product's API).

mod atomic_file;
pub mod cli;
pub mod collect;
pub mod config;
pub mod cycle;
#[cfg(feature = "demo")]
#[doc(hidden)]
pub mod demo;
pub mod domain;
mod escape;
pub mod evaluate;
mod logging;
#[doc(hidden)]
pub mod manual;
pub mod notify;
pub mod present;
mod probe;
pub mod service;
pub mod snow;
pub mod writeback;
