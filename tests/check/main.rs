//! Integration tests of `check` over real HTTP: wiremock serving the instance's JSON from
//! `wiremock_fixtures/`, and the stateful simulated instance for queries that must really filter.

mod alerts;
mod answers;
mod cli;
mod clock;
mod concurrent_writes;
mod config_check;
mod deadline;
mod demo;
mod early;
mod errors;
mod hostile_names;
mod name_case;
mod oauth;
mod oauth_secrets;
mod paging;
mod plugin;
mod read_plan;
mod redaction;
mod refused_login;
mod rehearsal;
mod report_json;
mod scenario;
mod secrets;
mod selection;
mod show_email;
mod status_line;
#[path = "../support/mod.rs"]
mod support;
mod tls;
mod two_hosts;
mod until_ok;
mod writeback;
