//! midwatch watches the MID Server users of a ServiceNow instance.
//!
//! One cycle is a straight line ([`cycle::Cycle::check`]):
//!
//! ```text
//! config ──▶ collect (Table API reads) ──▶ Snapshot ──▶ evaluate (pure rules) ──▶ Report
//!                                                                    │
//!                   ecc_agent_issue plan ◀── reconcile (pure) ◀──────┤
//!                   apply (create / count / resolve)                 ├──▶ notify: email ──▶ outbox ──▶ SMTP
//!                                                                    ├──▶ alerts ──▶ every Alertmanager peer
//!                                                                    └──▶ present: text / JSON
//! ```
//!
//! The modules call downward only: `cli` and `demo` → `watch` → `cycle` → {`collect`, `evaluate`,
//! `writeback`, `notify`, `alerts`}; `present` renders for `cli` and `demo` (and the email for `notify`). A layer
//! takes what bounds it (the window, the deadline of `deadline.rs`) as arguments and returns what it did, never a
//! field for one caller.
//!
//! Where each job lives:
//!
//! - [`cli`] parses the command line (one overrides type shared by `check` and `run`) and is the only place
//!   that turns outcomes into exit codes.
//! - [`config`] parses and validates the TOML file once; the rest of the code trusts [`config::Config`].
//! - [`domain`] holds the instance's records (typed `SysId`s and user names), whom the built-in job checks
//!   (`domain::Population`), the findings and the report: plain types, no I/O.
//! - [`snow`] is the only module that knows HTTP, paging, retries, credentials and the instance's JSON shapes;
//!   [`snow::query`] is the only way to build an encoded query, from typed fields and validated values.
//! - [`collect`] reads the instance into a [`domain::Snapshot`]: what needs no window, then the window's
//!   events; its reads are the ones `config check` proves (`probe.rs`).
//! - [`evaluate`] is the pure function `Snapshot -> Report` reproducing the built-in MIDUserConnectivity job.
//! - [`writeback`] reads our `ecc_agent_issue` records (in one place), reconciles them with the findings (pure)
//!   and applies the plan.
//! - [`present`] is one view of the report and its renderings: terminal text, JSON, email text and HTML.
//! - [`notify`] decides whether to email, keeps the outbox and delivers over SMTP.
//! - `alerts` posts the findings to every peer of an Alertmanager cluster (`[alertmanager]`), and
//!   `MidwatchCheckFailed` for a cycle that could not complete; it remembers what it alerted, to resolve it once.
//! - [`service`] is `midwatch run`: the same cycle on a schedule, with signals, systemd and metrics.
//! - [`cycle`] is one cycle: its options, its reads and rules (`Cycle::observe`), its side effects
//!   (`Cycle::conclude`) and its [`cycle::Outcome`], within the deadline it is given. Its "now" is the
//!   instance's, from the `Date` header of the answers to its first reads (`cycle/clock.rs`), not the host's.
//! - [`watch`] is `check --until-ok`: the cycle's reads and rules in rounds (each later one reading only the
//!   newer events, the earlier ones carried over), then the last round's side effects; it returns what the
//!   watch did ([`domain::Watched`]) beside the outcome. Whom a check covers is a [`domain::Scope`]
//!   (`--user`, `--mid-server`): `collect` reads only for the selected users, write-back touches only their
//!   records (`writeback::records_of`).
//! - `tls.rs` is whom both TLS clients trust (the instance's and the SMTP server's): the system's roots and a
//!   `ca_file`, whose certificate is trusted as it is when it is exactly the server's.
//! - `escape.rs` and `logging.rs` show untrusted text with its control characters escaped, in reports and
//!   logs; `atomic_file.rs` writes the state files (temporary file, fsync, rename); `spelling.rs` finds the
//!   "did you mean" of a config key or a command-line name.
//! - [`manual`] generates the man pages and shell completions from the command line's definition.
//! - `demo` (the default-on `demo` feature) is `midwatch demo`: a cycle against the simulated instance and
//!   SMTP server of the `midwatch-sim` crate (`sim/`), which the integration tests and benchmarks use too.

mod alerts;
mod atomic_file;
pub mod cli;
pub mod collect;
pub mod config;
pub mod cycle;
pub mod deadline;
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
mod redact;
pub mod service;
pub mod snow;
mod spelling;
mod tls;
pub mod watch;
pub mod writeback;

/// The property tests' configuration: the default number of cases, and no regression files written into the
/// source tree (a case a property finds becomes a plain unit test next to it).
#[cfg(test)]
pub(crate) fn proptest_config() -> proptest::test_runner::Config {
    proptest::test_runner::Config { failure_persistence: None, ..proptest::test_runner::Config::default() }
}
