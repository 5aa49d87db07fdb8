//! The pure part: a report's findings and early warnings as Alertmanager alerts, the alert of a cycle that could not complete, and
//! what one cycle posts given what this host alerted before. No I/O and no clock: "now" and the time an alert
//! ends come in as arguments.
//!
//! Alertmanager tells alerts apart by their labels alone, and a cluster notifies once per set of labels. So the
//! labels hold only what every host with the same configuration computes alike — the alert's name, the
//! instance URL's host, the user, the category, the severity — and nothing of the host, the time or the
//! cycle; what may differ (the status line of a failed check, `startsAt`) goes into annotations and
//! timestamps, which Alertmanager merges.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::{Category, Finding, Report, SysId, Warning};

/// The alert of a cycle that could not complete.
pub(crate) const CHECK_FAILED: &str = "MidwatchCheckFailed";
/// The alert of an early warning (a user of Up MID Servers being refused, or locked out).
pub(crate) const WARNING: &str = "MidServerUserWarning";

/// One alert as Alertmanager's API v2 takes it (`POST /api/v2/alerts`, a list of `postableAlert`), and as the
/// state file remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Alert {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    /// Since when the finding is seen (its first record's creation), when known; else the peer's time of
    /// arrival.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) starts_at: Option<DateTime<Utc>>,
    /// Firing: when the peers let it end unless it is posted again. Resolved: now.
    pub(crate) ends_at: DateTime<Utc>,
    /// The record on the instance, by sys_id.
    #[serde(rename = "generatorURL", default, skip_serializing_if = "Option::is_none")]
    pub(crate) generator_url: Option<String>,
}

/// The `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Critical,
    Warning,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// One thing to alert on, in the terms every alert has: the seam where a finding (and whatever else is alerted)
/// becomes an [`Alert`], through [`alert`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    pub(crate) alertname: &'static str,
    pub(crate) user: &'a str,
    /// The `category` label.
    pub(crate) category: &'a str,
    pub(crate) severity: Severity,
    /// The `summary` annotation: the documented message.
    pub(crate) summary: &'a str,
    /// The `description` annotation: what to do.
    pub(crate) description: &'a str,
    /// `startsAt`, when known.
    pub(crate) since: Option<DateTime<Utc>>,
}

/// What every alert of one cycle shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// The instance: its host is the `servicenow_instance` label, and `generatorURL` points into it.
    pub(crate) instance_url: &'a Url,
    /// The `sys_user` sys_id of each user by user name (the report's `user_ids`).
    pub(crate) user_ids: &'a BTreeMap<String, String>,
    /// When a firing alert ends unless posted again.
    pub(crate) ends_at: DateTime<Utc>,
}

/// The `servicenow_instance` label: the instance URL's host (the same from every host with the same config).
pub(crate) fn instance_label(instance_url: &Url) -> String {
    instance_url.host_str().unwrap_or_default().to_string()
}

/// One item as a firing alert.
pub(crate) fn alert(item: &Item<'_>, ctx: &Context<'_>) -> Alert {
    let labels = BTreeMap::from([
        ("alertname".to_string(), item.alertname.to_string()),
        ("servicenow_instance".to_string(), instance_label(ctx.instance_url)),
        ("user".to_string(), item.user.to_string()),
        ("category".to_string(), item.category.to_string()),
        ("severity".to_string(), item.severity.label().to_string()),
    ]);
    let annotations = BTreeMap::from([
        ("summary".to_string(), item.summary.to_string()),
        ("description".to_string(), item.description.to_string()),
    ]);
    let generator_url = ctx.user_ids.get(item.user).and_then(|id| user_record(ctx.instance_url, id));
    Alert { labels, annotations, starts_at: item.since, ends_at: ctx.ends_at, generator_url }
}

/// The user's `sys_user` form, by sys_id: nothing the instance's users wrote goes into the link's query.
fn user_record(instance_url: &Url, sys_id: &str) -> Option<String> {
    let id = SysId::parse(sys_id)?;
    let mut url = instance_url.join("sys_user.do").ok()?;
    url.query_pairs_mut().append_pair("sys_id", id.as_str());
    Some(url.to_string())
}

/// The alert's name for a finding of `category`.
fn alertname(category: Category) -> &'static str {
    match category {
        Category::Authentication => "MidServerUserAuthentication",
        Category::Authorization => "MidServerUserAuthorization",
        Category::Network => "MidServerUserNetwork",
        Category::Configuration => "MidServerUserConfiguration",
    }
}

/// A finding as an item: critical for authentication, authorization and network (a MID Server is down), a
/// warning for configuration.
fn finding_item(f: &Finding) -> Item<'_> {
    let severity = match f.category {
        Category::Configuration => Severity::Warning,
        Category::Authentication | Category::Authorization | Category::Network => Severity::Critical,
    };
    Item {
        alertname: alertname(f.category),
        user: &f.user,
        category: f.category.name(),
        severity,
        summary: &f.message,
        description: f.category.remediation(),
        since: f.history.map(|h| h.first_detected),
    }
}

/// An early warning as an item (`MidServerUserWarning`, severity warning): its kind is the `category` label,
/// its sentence the summary.
fn warning_item(w: &Warning) -> Item<'_> {
    let description = match w {
        Warning::FailingOnUpMid { .. } => {
            "Find the client that uses this account with an old password (the summary names the address it comes              from, and its MID Server when it is one) and set the current password there, before the account locks              out and every MID Server of the user goes Down."
        }
        Warning::LockedOutOnUpMid { .. } => {
            "Unlock or activate the account (sys_user), then check the password its MID Servers use: they go Down              at their next login."
        }
    };
    Item {
        alertname: WARNING,
        user: w.user(),
        category: w.kind(),
        severity: Severity::Warning,
        summary: w.text(),
        description,
        since: None,
    }
}

/// The alerts of a report: one per finding and one per early warning.
pub(crate) fn firing(report: &Report, ctx: &Context<'_>) -> Vec<Alert> {
    let findings = report.findings.iter().map(finding_item);
    findings.chain(report.warnings.iter().map(warning_item)).map(|item| alert(&item, ctx)).collect()
}

/// The alert of a cycle that could not complete (`status_line`: its UNKNOWN line), firing until `ends_at`.
pub(crate) fn check_failed(status_line: &str, instance_url: &Url, ends_at: DateTime<Utc>) -> Alert {
    let instance = instance_label(instance_url);
    let labels = BTreeMap::from([
        ("alertname".to_string(), CHECK_FAILED.to_string()),
        ("servicenow_instance".to_string(), instance.clone()),
    ]);
    let description = format!(
        "midwatch could not complete a check of {instance}: until a check completes, nobody is told about MID \
         Server users that stop connecting. The summary says why; `midwatch config check` on the host names what \
         to fix."
    );
    let annotations =
        BTreeMap::from([("summary".to_string(), status_line.to_string()), ("description".to_string(), description)]);
    Alert { labels, annotations, starts_at: None, ends_at, generator_url: None }
}

/// What one cycle posts: the alerts firing now, the ones this host alerted that are gone (resolved), and
/// those it leaves as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) firing: Vec<Alert>,
    /// Alerted before and gone now, as they were last posted (their `endsAt` is when the peers would let them
    /// end by themselves); posted with `endsAt` = now.
    pub(crate) resolving: Vec<Alert>,
    /// Alerted before and neither posted nor resolved (a failed cycle does not know whether findings are gone).
    pub(crate) kept: Vec<Alert>,
    pub(crate) now: DateTime<Utc>,
}

impl Batch {
    /// A completed cycle: `current` fires; every alert of `alerted` (what this host alerted before) that is not
    /// in `current` and has not ended at the peers yet is resolved. An alert that already ended there needs
    /// nothing more.
    pub(crate) fn completed(alerted: &[Alert], current: Vec<Alert>, now: DateTime<Utc>) -> Batch {
        let firing = without_repeats(current);
        let resolving = alerted
            .iter()
            .filter(|a| a.ends_at > now && !firing.iter().any(|f| f.labels == a.labels))
            .cloned()
            .collect();
        Batch { firing, resolving, kept: Vec::new(), now }
    }

    /// A cycle that could not complete: `failure` fires; nothing else is posted or resolved, since the findings
    /// are not known.
    pub(crate) fn failed(alerted: &[Alert], failure: Alert, now: DateTime<Utc>) -> Batch {
        let kept = alerted.iter().filter(|a| a.ends_at > now && a.labels != failure.labels).cloned().collect();
        Batch { firing: vec![failure], resolving: Vec::new(), kept, now }
    }

    /// What every peer is sent: the firing alerts, then the resolved ones (`endsAt` = now).
    pub(crate) fn alerts(&self) -> Vec<Alert> {
        let resolved = self.resolving.iter().map(|a| Alert { ends_at: self.now, ..a.clone() });
        self.firing.iter().cloned().chain(resolved).collect()
    }

    /// What this host remembers having alerted after posting: the firing alerts and the kept ones; and, unless
    /// every peer took the batch, the resolved ones too, to be resolved again next cycle (until they would have
    /// ended at the peers anyway).
    pub(crate) fn remembered(&self, every_peer_took_it: bool) -> Vec<Alert> {
        let retried = if every_peer_took_it { &[][..] } else { &self.resolving[..] };
        self.firing.iter().chain(&self.kept).chain(retried).cloned().collect()
    }
}

/// `alerts` with a later alert of the same labels left out.
fn without_repeats(alerts: Vec<Alert>) -> Vec<Alert> {
    let mut kept: Vec<Alert> = Vec::with_capacity(alerts.len());
    for a in alerts {
        if !kept.iter().any(|k| k.labels == a.labels) {
            kept.push(a);
        }
    }
    kept
}

#[cfg(test)]
pub(super) mod tests;
