//! `midwatch config check` online: proves that the instance answers and that the account can read
//! every table a cycle reads. Every problem is named, not just the first. With OAuth it first obtains a token
//! and says which grant worked and for how long the token is valid; the tables are then probed with it. The
//! answers' `Date` header tells how far this host's clock is from the instance's (`cycle/clock.rs`): said
//! above 30 seconds, and when there is none. Refused credentials are one problem and one refused login: the
//! client proves them with one request before the others go (`snow/auth/`), and the probe stops there.
//! With `[alertmanager]`, each peer is asked for its status (`alertmanager`).

use crate::collect::{LOGIN_HISTORY, LOGIN_HISTORY_TABLE, READS};
use crate::config::Config;
use crate::cycle;
use crate::cycle::clock::{HostClock, Now};
use crate::snow::auth::TokenInfo;
use crate::snow::query::{Field, QueryValue};
use crate::snow::{ApiErrorKind, Query, RetryPolicy};
use crate::writeback::{ISSUE_TABLE, RECORD_FIELDS};

/// The built-in job's `source`, and the name of its scheduled job (a `sysauto` record).
pub(crate) const BUILTIN_SOURCE: &str = "MIDUserConnectivity";

/// What `config check` found online.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// Things that will make a cycle fail.
    pub(crate) problems: Vec<String>,
    /// Things that will make a cycle do harm or less than it could.
    pub(crate) warnings: Vec<String>,
    pub(crate) notes: Vec<String>,
}

/// The warning of a shared issue source, given whether the built-in job is active (None: unknown).
pub(crate) fn shared_source_warning(source: &str, builtin_active: Option<bool>) -> Option<String> {
    if source != BUILTIN_SOURCE {
        return None;
    }
    let why = "both resolve every unresolved record of that source they did not produce themselves, so each \
               run of one resolves the other's records and the next creates them again; keep the default \
               issue_source = \"midwatch\", or deactivate the built-in job if midwatch replaces it";
    match builtin_active {
        Some(false) => None,
        Some(true) => Some(format!(
            "[check] issue_source is \"{BUILTIN_SOURCE}\" while the built-in scheduled job {BUILTIN_SOURCE} \
             (sysauto) is active: {why}"
        )),
        None => Some(format!(
            "[check] issue_source is \"{BUILTIN_SOURCE}\"; if the built-in scheduled job {BUILTIN_SOURCE} is \
             active, {why}"
        )),
    }
}

/// What `config check` says about the token it obtained.
fn token_note(method: &str, token: &TokenInfo) -> String {
    let lifetime = humantime::format_duration(token.lifetime);
    let how_long = if token.lifetime_stated {
        format!("valid for {lifetime} (expires_in {} s)", token.lifetime.as_secs())
    } else {
        format!("without expires_in, so midwatch assumes the instance's default lifetime of {lifetime}")
    };
    format!(
        "auth = \"{method}\": the instance issued an OAuth token with the {} grant, {how_long}; midwatch renews it \
         shortly before it expires and keeps it in memory only",
        token.grant
    )
}

/// Tokens that live less than a minute make midwatch ask for one every few requests.
fn short_lifetime_warning(token: &TokenInfo) -> Option<String> {
    (token.lifetime < std::time::Duration::from_secs(60)).then(|| {
        format!(
            "the instance's OAuth tokens are valid for only {} s: midwatch will ask for a new one every few requests; \
             raise the Access Token Lifespan of the Application Registry entry (default 1800 s)",
            token.lifetime.as_secs()
        )
    })
}

/// Proves every read a cycle makes; names every problem, not just the first.
pub(crate) async fn probe(config: &Config) -> Probe {
    let mut out = Probe::default();
    let retry = RetryPolicy { max_retries: 1, ..RetryPolicy::default() };
    let client = match cycle::client(config, retry) {
        Ok(c) => c,
        Err(e) => {
            out.problems.push(format!("{e:#}"));
            return out;
        }
    };
    match client.auth().sign_in().await {
        Ok(None) => {}
        Ok(Some(token)) => {
            out.notes.push(token_note(config.instance.auth.method(), &token));
            out.warnings.extend(short_lifetime_warning(&token));
        }
        // Without a token no table can be read: the one problem to fix first (and one refused login).
        Err(e) => {
            out.problems.push(e.to_string());
            return out;
        }
    }
    // Exactly the tables and fields a cycle reads (dot-walked ones included), one row each.
    let host = HostClock::reads(chrono::Utc::now());
    let reads =
        READS.iter().map(|r| (r.table, r.fields)).chain([(ISSUE_TABLE, RECORD_FIELDS)]).map(|(table, fields)| {
            let client = &client;
            async move { client.read_first(table, &Query::default(), fields).await }
        });
    let answers = futures::future::join_all(reads).await;
    let answered = answers.iter().any(Result::is_ok);
    let errors: Vec<_> = answers.into_iter().filter_map(Result::err).collect();
    // Refused credentials are one cause, whatever the table: said once, and nothing more is tried with them.
    if let Some(refused) = errors.iter().find(|e| e.refuses_credentials()) {
        out.problems.push(refused.to_string());
        return out;
    }
    // A connection that cannot be made is one cause, whatever the table: said once, and nothing more is tried.
    let unreachable = errors.iter().find_map(|e| e.unreachable(&config.instance.url));
    let others = errors.iter().filter(|e| e.unreachable(&config.instance.url).is_none()).map(|e| e.to_string());
    out.problems = unreachable.iter().cloned().chain(others).collect();
    out.problems.dedup();
    if unreachable.is_some() {
        return out;
    }
    if answered {
        // Only a successful answer's Date is the instance's: without one, nothing can be said.
        out.notes.extend(Now::of(host, client.date_reading()).config_check_note());
    }
    if config.check.write_issues {
        out.notes.push(format!(
            "creating and updating {ISSUE_TABLE} is not tried (it would write a record); a refused write shows in \
             the first check's report"
        ));
    }
    match client.read_first(LOGIN_HISTORY.table, &Query::default(), LOGIN_HISTORY.fields).await {
        Ok(_) => {
            out.notes.push(format!("{LOGIN_HISTORY_TABLE} is readable: findings will carry login failure reasons"))
        }
        Err(e) if matches!(e.kind(), ApiErrorKind::InvalidTable) => out
            .notes
            .push(format!("{LOGIN_HISTORY_TABLE} does not exist (Identity Center not installed); it is optional")),
        Err(e) => out.notes.push(format!("{LOGIN_HISTORY_TABLE} is optional and could not be read: {e}")),
    }
    if config.check.issue_source == BUILTIN_SOURCE {
        let query = Query::new().eq(Field::new("name"), &QueryValue::fixed(BUILTIN_SOURCE));
        let active = match client.read_all("sysauto", &query, &["sys_id", "name", "active"]).await {
            Ok(rows) => Some(rows.iter().any(|r| r.text("name") == BUILTIN_SOURCE && r.flag("active"))),
            Err(e) => {
                out.notes.push(format!("could not read sysauto to see whether {BUILTIN_SOURCE} is active: {e}"));
                None
            }
        };
        out.warnings.extend(shared_source_warning(&config.check.issue_source, active));
    }
    out
}

/// With `[alertmanager]`: whether each peer answers (`GET /api/v2/status`), its version and its cluster.
pub(crate) async fn alertmanager(config: &Config, out: &mut Probe) {
    let Some(peers) = &config.alertmanager else { return };
    let found = crate::alerts::probe(peers).await;
    out.notes.extend(found.notes);
    out.warnings.extend(found.warnings);
    out.problems.extend(found.problems);
}
