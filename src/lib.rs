//! midwatch watches the MID Server users of a ServiceNow instance.
//!
//! One cycle is a straight line:
//!
//! ```text
//! config ──▶ collect (Table API reads) ──▶ Snapshot ──▶ evaluate (pure rules) ──▶ Report ──▶ text / JSON
//! ```
//!
//! - [`snow`] is the only module that knows HTTP, paging, retries and the instance's JSON shapes.
//! - [`collect`] reads one window's data into a [`model::Snapshot`].
//! - [`evaluate`] is a pure function `Snapshot -> Report` reproducing the built-in MIDUserConnectivity job.
//! - [`report`] renders the report; [`cycle`] ties the steps together for `check` and `demo`.
//! - [`service`] is `midwatch run`: cycles on a cron schedule, signals, systemd notifications, metrics.

pub mod atomic_file;
pub mod cli;
pub mod collect;
pub mod config;
pub mod cycle;
pub mod demo;
pub mod evaluate;
pub mod fake_instance;
pub mod manual;
pub mod messages;
pub mod model;
pub mod notify;
pub mod probe;
pub mod report;
pub mod service;
pub mod snow;
pub mod writeback;
