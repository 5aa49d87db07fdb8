//! Alerts to a Prometheus Alertmanager cluster (`[alertmanager]`): each cycle posts its findings to every peer
//! (`POST /api/v2/alerts`), as Alertmanager's client guidance asks — every peer, every cycle, `endsAt` a few
//! cycles ahead — so that two midwatch hosts with the same configuration send identical alerts and the
//! cluster notifies once, through whichever receiver it routes them to, under its silences and inhibitions.
//!
//! - `alert.rs` (pure): the report's findings as alerts, one per finding (the one seam where an item becomes
//!   an alert is `alert::alert`); `MidwatchCheckFailed` for a cycle that could not complete; what a cycle posts
//!   given what this host alerted before (`Batch`: firing, resolved once with `endsAt` = now, kept);
//! - `state.rs`: what this host alerted, in `<state directory>/alerts-state.json`, written atomically;
//! - `peers.rs`: the peers over HTTP, all at once, within the cycle's deadline; `config check`'s probe.
//!
//! A peer that cannot be reached is logged (its URL, never a secret) and counted by the service, and gets the
//! same alerts again next cycle; it never changes the check's status. When no peer took them, the status line
//! says `alerts not sent`. A resolution that not every peer took is posted again until the alert would have
//! ended at the peers by itself. Two processes with one state directory (a `check` by hand next to the service)
//! may each miss the other's last list: at worst an alert ends by its `endsAt` instead of being resolved.

mod alert;
mod peers;
mod state;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use url::Url;

use crate::config::AlertmanagerConfig;
use crate::deadline::Deadline;
use crate::domain::Report;
use alert::{Alert, Batch, Context};
use peers::Peers;
use state::AlertedState;

/// Where and how one cycle posts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) config: &'a AlertmanagerConfig,
    /// Where `alerts-state.json` is kept.
    pub(crate) state_dir: &'a Path,
    /// The instance: the `servicenow_instance` label is its host.
    pub(crate) instance_url: &'a Url,
    /// How long a firing alert lasts unless posted again: `endsAt` = now + this.
    pub(crate) lifetime: Duration,
    /// Decide only: post nothing, remember nothing.
    pub(crate) dry_run: bool,
}

/// What one peer did with a cycle's alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PeerOutcome {
    pub(crate) url: String,
    /// Why it did not take them; `None` when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// What a cycle's alerts did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AlertsOutcome {
    pub(crate) dry_run: bool,
    /// Alerts posted firing, and resolved (`endsAt` = now).
    pub(crate) firing: usize,
    pub(crate) resolved: usize,
    /// The configured peers.
    pub(crate) peer_count: usize,
    /// Each peer posted to, with what it did; empty when nothing was posted.
    pub(crate) peers: Vec<PeerOutcome>,
    /// The state directory's problems.
    pub(crate) problems: Vec<String>,
}

impl AlertsOutcome {
    /// The alerts posted to each peer.
    pub(crate) fn posted(&self) -> usize {
        self.firing + self.resolved
    }

    /// A phrase for the report and the log line: `3 firing, 1 resolved posted to 2 of 2 Alertmanagers`.
    pub(crate) fn summary(&self) -> String {
        let (n, peers) = (self.posted(), plural(self.peer_count, "Alertmanager"));
        let what = format!("{} ({} firing, {} resolved)", plural(n, "alert"), self.firing, self.resolved);
        if self.dry_run {
            return format!("dry run: would post {what} to {peers}");
        }
        if n == 0 {
            return "nothing to post (no finding, nothing to resolve)".to_string();
        }
        let took = self.peers.iter().filter(|p| p.error.is_none()).count();
        let mut s = format!("{what} posted to {took} of {peers}");
        for p in self.peers.iter().filter(|p| p.error.is_some()) {
            s.push_str(&format!("; {} did not take them: {}", p.url, p.error.as_deref().unwrap_or_default()));
        }
        s
    }

    /// What the status line says when no peer took this cycle's alerts.
    pub(crate) fn unfinished(&self) -> Option<&'static str> {
        let none_took = !self.peers.is_empty() && self.peers.iter().all(|p| p.error.is_some());
        (!self.dry_run && none_took).then_some("alerts not sent")
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// Posts a completed cycle's alerts: one per finding of `report`, firing until now + the lifetime; and, once,
/// each alert this host posted before whose finding is gone, or that said the check failed, resolved (`endsAt`
/// = `now`).
pub(crate) async fn post_report(
    target: &Target<'_>,
    report: &Report,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> AlertsOutcome {
    let ends_at = now + target.lifetime;
    let ctx = Context { instance_url: target.instance_url, user_ids: &report.user_ids, ends_at };
    let current = alert::firing(report, &ctx);
    post(target, deadline, |alerted| Batch::completed(alerted, current, now)).await
}

/// Posts `MidwatchCheckFailed` for a cycle that could not complete (`status_line`: its UNKNOWN line), firing
/// until now + the lifetime or the next completed cycle; the findings' alerts are left as they are.
pub(crate) async fn post_failure(
    target: &Target<'_>,
    status_line: &str,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> AlertsOutcome {
    let failure = alert::check_failed(status_line, target.instance_url, now + target.lifetime);
    post(target, deadline, |alerted| Batch::failed(alerted, failure, now)).await
}

/// The batch `plan` makes of what this host alerted, posted to every peer before `deadline`, and remembered.
async fn post(target: &Target<'_>, deadline: Deadline, plan: impl FnOnce(&[Alert]) -> Batch) -> AlertsOutcome {
    let mut problems = Vec::new();
    let dir = target.state_dir;
    // Another user's state directory (`sudo midwatch check` next to the service) is not written to.
    let usable = crate::notify::outbox::check_state_directory(dir);
    let alerted = match &usable {
        Ok(()) => AlertedState::load(dir).unwrap_or_else(|e| {
            tracing::error!(error = %e, "alerts state unreadable: gone findings are not resolved this cycle");
            problems.push(e.to_string());
            Vec::new()
        }),
        Err(e) => {
            let problem = format!("{e}; alerts are posted but not remembered, so gone findings are not resolved");
            tracing::error!("{problem}");
            problems.push(problem);
            Vec::new()
        }
    };
    let batch = plan(&alerted);
    let alerts = batch.alerts();
    let mut outcome = AlertsOutcome {
        dry_run: target.dry_run,
        firing: batch.firing.len(),
        resolved: batch.resolving.len(),
        peer_count: target.config.urls.len(),
        peers: Vec::new(),
        problems,
    };
    if target.dry_run {
        return outcome;
    }
    let mut every_peer_took_them = true;
    if !alerts.is_empty() {
        outcome.peers = deliver(target.config, &alerts, deadline).await;
        every_peer_took_them = outcome.peers.iter().all(|p| p.error.is_none());
    }
    let remembered = batch.remembered(every_peer_took_them);
    if usable.is_ok()
        && remembered != alerted
        && let Err(e) = AlertedState::store(dir, remembered)
    {
        tracing::error!(error = %e, "alerts state not written: gone findings may not be resolved");
        outcome.problems.push(e.to_string());
    }
    outcome
}

/// `alerts` posted to every peer; each failure logged with the peer's URL.
async fn deliver(config: &AlertmanagerConfig, alerts: &[Alert], deadline: Deadline) -> Vec<PeerOutcome> {
    let answers = match Peers::new(config) {
        Ok(peers) => peers.post(alerts, deadline).await,
        Err(e) => {
            tracing::error!(error = %e, "alerts not posted");
            let error = e.to_string();
            return config
                .urls
                .iter()
                .map(|u| PeerOutcome { url: u.to_string(), error: Some(error.clone()) })
                .collect();
        }
    };
    answers
        .into_iter()
        .map(|answered| {
            let url = answered.url.to_string();
            let error = answered.result.err().map(|e| {
                tracing::warn!(
                    url = %url,
                    error = %e,
                    "an Alertmanager did not take the alerts; the next cycle posts again"
                );
                e.to_string()
            });
            PeerOutcome { url, error }
        })
        .collect()
}

/// What `config check` says of the peers.
#[derive(Debug, Default)]
pub(crate) struct PeersProbe {
    pub(crate) notes: Vec<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) problems: Vec<String>,
}

/// Asks every peer for its status (`GET /api/v2/status`): each reachable or not, its version and its cluster.
pub(crate) async fn probe(config: &AlertmanagerConfig) -> PeersProbe {
    let mut out = PeersProbe::default();
    let peers = match Peers::new(config) {
        Ok(p) => p,
        Err(e) => {
            out.problems.push(e.to_string());
            return out;
        }
    };
    let deadline = Deadline::after(config.timeout + Duration::from_secs(1));
    for answered in peers.status(deadline).await {
        let url = answered.url;
        match answered.result {
            Ok(body) => {
                let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let text = |pointer: &str| status.pointer(pointer).and_then(|v| v.as_str()).map(crate::escape::clean);
                let version = text("/versionInfo/version").unwrap_or_else(|| "of unknown version".into());
                let cluster = text("/cluster/status").unwrap_or_else(|| "unknown".into());
                let members = status.pointer("/cluster/peers").and_then(|p| p.as_array()).map_or(0, Vec::len);
                out.notes.push(format!(
                    "{url} answers: Alertmanager {version}, cluster {cluster} with {}",
                    plural(members, "peer")
                ));
                if members > peers.count() {
                    out.warnings.push(format!(
                        "{url} is in a cluster of {members} peers but [alertmanager] urls lists {}: list every \
                         peer, since the peers do not pass alerts on to each other",
                        peers.count()
                    ));
                }
            }
            Err(e) => out.problems.push(format!("[alertmanager] {url}: {e}")),
        }
    }
    out
}

#[cfg(test)]
mod tests;
