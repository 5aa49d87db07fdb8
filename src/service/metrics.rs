//! The Prometheus textfile (`[metrics] textfile`), rewritten after every cycle for node_exporter's
//! textfile collector. It is written atomically (a temporary file in the same directory, then a
//! rename), so the collector never reads half a file. Every series carries a
//! `servicenow_instance` label, so that the files of several `midwatch@` units can share one
//! collector directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alerts::AlertsOutcome;
use crate::domain::{Category, Status, Summary};

const LAST_SUCCESS: &str = "midwatch_last_success_timestamp_seconds";

/// What the textfile reports; kept across cycles.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Metrics {
    instance: String,
    /// Requests by HTTP status since the start (`0` = no response).
    requests: BTreeMap<u16, u64>,
    /// Emails dropped from the outbox undelivered since the start.
    emails_dropped: u64,
    /// Alerts each Alertmanager peer took, and did not take, since the start, by URL.
    alerts_sent: BTreeMap<String, u64>,
    alerts_failed: BTreeMap<String, u64>,
    last_cycle: Option<LastCycle>,
    last_success: Option<Success>,
}

#[derive(Debug, Clone, PartialEq)]
struct LastCycle {
    at: DateTime<Utc>,
    duration: Duration,
    status: Status,
}

#[derive(Debug, Clone, PartialEq)]
struct Success {
    /// Unix time with sub-second precision.
    at: f64,
    findings: Option<BTreeMap<Category, usize>>,
    /// Early warnings of that cycle.
    warnings: usize,
}

impl Metrics {
    /// Starts from the last success recorded in an existing textfile, so that a restart does not
    /// make `midwatch_last_success_timestamp_seconds` disappear until the next good cycle.
    pub(crate) fn new(instance: &str, textfile: Option<&Path>) -> Metrics {
        let last_success = textfile
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| previous_success(&text))
            .map(|at| Success { at, findings: None, warnings: 0 });
        Metrics {
            instance: instance.to_string(),
            requests: BTreeMap::new(),
            emails_dropped: 0,
            alerts_sent: BTreeMap::new(),
            alerts_failed: BTreeMap::new(),
            last_cycle: None,
            last_success,
        }
    }

    /// Adds one cycle's requests by status.
    pub(crate) fn add_requests(&mut self, before: &BTreeMap<u16, u64>, after: &BTreeMap<u16, u64>) {
        for (status, n) in after {
            let delta = n.saturating_sub(before.get(status).copied().unwrap_or(0));
            if delta > 0 {
                *self.requests.entry(*status).or_default() += delta;
            }
        }
    }

    /// Adds the emails one cycle dropped from the outbox.
    pub(crate) fn add_dropped_emails(&mut self, n: usize) {
        self.emails_dropped += n as u64;
    }

    /// Adds what one cycle's alerts did: the alerts each peer took or did not take (a peer appears in both
    /// series from its first post on, so a rate is defined).
    pub(crate) fn add_alerts(&mut self, alerts: Option<&AlertsOutcome>) {
        let Some(alerts) = alerts.filter(|a| !a.dry_run) else { return };
        let n = alerts.posted() as u64;
        for peer in &alerts.peers {
            let (took, missed) = if peer.error.is_none() { (n, 0) } else { (0, n) };
            *self.alerts_sent.entry(peer.url.clone()).or_default() += took;
            *self.alerts_failed.entry(peer.url.clone()).or_default() += missed;
        }
    }

    pub(crate) fn cycle_succeeded(&mut self, at: DateTime<Utc>, duration: Duration, status: Status, summary: &Summary) {
        self.last_cycle = Some(LastCycle { at, duration, status });
        let findings = Some(summary.findings_by_category.clone());
        self.last_success = Some(Success { at: unix_seconds(at), findings, warnings: summary.warnings });
    }

    pub(crate) fn cycle_failed(&mut self, at: DateTime<Utc>, duration: Duration) {
        self.last_cycle = Some(LastCycle { at, duration, status: Status::Unknown });
    }

    /// The textfile's content, in the Prometheus text exposition format.
    pub(crate) fn render(&self) -> String {
        let label = format!("servicenow_instance=\"{}\"", escape(&self.instance));
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            if samples.is_empty() {
                return;
            }
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        let one = |value: String| vec![(label.clone(), value)];
        if let Some(c) = &self.last_cycle {
            family(
                "midwatch_cycle_status",
                "gauge",
                "Result of the last cycle: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the cycle failed).",
                &one(c.status.exit_code().to_string()),
            );
            family(
                "midwatch_cycle_duration_seconds",
                "gauge",
                "How long the last cycle took.",
                &one(format!("{:.3}", c.duration.as_secs_f64())),
            );
            family(
                "midwatch_last_cycle_timestamp_seconds",
                "gauge",
                "When the last cycle started (Unix time).",
                &one(format!("{:.3}", unix_seconds(c.at))),
            );
        }
        if let Some(s) = &self.last_success {
            family(
                LAST_SUCCESS,
                "gauge",
                "When the last cycle that completed started (Unix time).",
                &one(format!("{:.3}", s.at)),
            );
            if let Some(findings) = &s.findings {
                let samples: Vec<(String, String)> = Category::ALL
                    .iter()
                    .map(|c| {
                        (
                            format!("{label},category=\"{}\"", c.name()),
                            findings.get(c).copied().unwrap_or(0).to_string(),
                        )
                    })
                    .collect();
                family("midwatch_findings", "gauge", "Findings of the last completed cycle by category.", &samples);
                family(
                    "midwatch_warnings",
                    "gauge",
                    "Early warnings of the last completed cycle (users of Up MID Servers being refused or locked out).",
                    &one(s.warnings.to_string()),
                );
            }
        }
        let samples: Vec<(String, String)> =
            self.requests.iter().map(|(status, n)| (format!("{label},status=\"{status}\""), n.to_string())).collect();
        family(
            "midwatch_api_requests_total",
            "counter",
            "Table API requests since midwatch started, by HTTP status (0: no response).",
            &samples,
        );
        if self.last_cycle.is_some() {
            family(
                "midwatch_emails_dropped_total",
                "counter",
                "Emails dropped from the outbox undelivered since midwatch started ([email] outbox_max_age, \
                 outbox_max_messages).",
                &one(self.emails_dropped.to_string()),
            );
        }
        let by_url = |counts: &BTreeMap<String, u64>| -> Vec<(String, String)> {
            counts.iter().map(|(url, n)| (format!("{label},url=\"{}\"", escape(url)), n.to_string())).collect()
        };
        family(
            "midwatch_alerts_sent_total",
            "counter",
            "Alerts an Alertmanager peer ([alertmanager] urls) took since midwatch started, by peer.",
            &by_url(&self.alerts_sent),
        );
        family(
            "midwatch_alerts_failed_total",
            "counter",
            "Alerts an Alertmanager peer did not take (unreachable, refused, too slow) since midwatch started, by \
             peer; they are posted again next cycle.",
            &by_url(&self.alerts_failed),
        );
        out
    }

    /// Writes [`Self::render`] to `path` atomically, readable by the collector (0644: nothing in it
    /// is secret, and the unit's `UMask=0077` would otherwise hide it).
    pub(crate) fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::atomic_file::write(path, self.render().as_bytes(), Some(0o644))
    }
}

fn unix_seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_micros() as f64 / 1e6
}

/// Label values escape `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn previous_success(text: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(LAST_SUCCESS))
        .find_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.trim().parse::<f64>().ok()))
        .filter(|v| v.is_finite() && *v > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("RFC 3339")
    }

    #[test]
    fn a_successful_cycle_reports_every_family_with_all_categories() {
        let mut m = Metrics::new("ac\"me", None);
        m.add_requests(&BTreeMap::new(), &BTreeMap::from([(200, 7), (503, 1)]));
        m.add_requests(&BTreeMap::from([(200, 7), (503, 1)]), &BTreeMap::from([(200, 10), (503, 1), (0, 2)]));
        let findings = BTreeMap::from([(Category::Authentication, 2), (Category::Network, 1)]);
        let summary = Summary { findings_by_category: findings, warnings: 1, ..Summary::default() };
        m.cycle_succeeded(at("2026-01-02T03:04:05.5Z"), Duration::from_millis(1234), Status::Critical, &summary);
        m.add_dropped_emails(2);
        m.add_dropped_emails(1);
        let text = m.render();
        let l = r#"servicenow_instance="ac\"me""#;
        for line in [
            format!("midwatch_emails_dropped_total{{{l}}} 3"),
            format!("midwatch_cycle_status{{{l}}} 2"),
            format!("midwatch_cycle_duration_seconds{{{l}}} 1.234"),
            format!("midwatch_last_success_timestamp_seconds{{{l}}} 1767323045.500"),
            format!("midwatch_findings{{{l},category=\"authentication\"}} 2"),
            format!("midwatch_findings{{{l},category=\"authorization\"}} 0"),
            format!("midwatch_findings{{{l},category=\"network\"}} 1"),
            format!("midwatch_findings{{{l},category=\"configuration\"}} 0"),
            format!("midwatch_warnings{{{l}}} 1"),
            format!("midwatch_api_requests_total{{{l},status=\"200\"}} 10"),
            format!("midwatch_api_requests_total{{{l},status=\"503\"}} 1"),
            format!("midwatch_api_requests_total{{{l},status=\"0\"}} 2"),
            "# TYPE midwatch_api_requests_total counter".to_string(),
            "# TYPE midwatch_findings gauge".to_string(),
        ] {
            assert!(text.lines().any(|x| x == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn alerts_are_counted_by_peer_as_sent_or_failed() {
        use crate::alerts::PeerOutcome;
        let mut m = Metrics::new("acme", None);
        let peer = |url: &str, error: Option<&str>| PeerOutcome { url: url.into(), error: error.map(String::from) };
        let outcome = AlertsOutcome {
            dry_run: false,
            firing: 3,
            resolved: 1,
            peer_count: 2,
            peers: vec![peer("https://am1:9093/", None), peer("https://am2:9093/", Some("cannot connect"))],
            problems: Vec::new(),
        };
        m.add_alerts(Some(&outcome));
        m.add_alerts(Some(&outcome));
        m.add_alerts(Some(&AlertsOutcome { dry_run: true, ..outcome.clone() }));
        m.add_alerts(None);
        let text = m.render();
        for line in [
            "midwatch_alerts_sent_total{servicenow_instance=\"acme\",url=\"https://am1:9093/\"} 8",
            "midwatch_alerts_sent_total{servicenow_instance=\"acme\",url=\"https://am2:9093/\"} 0",
            "midwatch_alerts_failed_total{servicenow_instance=\"acme\",url=\"https://am1:9093/\"} 0",
            "midwatch_alerts_failed_total{servicenow_instance=\"acme\",url=\"https://am2:9093/\"} 8",
            "# TYPE midwatch_alerts_failed_total counter",
        ] {
            assert!(text.lines().any(|x| x == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn a_failed_cycle_is_unknown_and_keeps_the_last_success() {
        let mut m = Metrics::new("acme", None);
        m.cycle_succeeded(at("2026-01-02T03:00:00Z"), Duration::from_secs(1), Status::Ok, &Summary::default());
        m.cycle_failed(at("2026-01-02T07:00:00Z"), Duration::from_secs(30));
        let text = m.render();
        assert!(text.contains("midwatch_cycle_status{servicenow_instance=\"acme\"} 3\n"), "{text}");
        assert!(
            text.contains("midwatch_last_success_timestamp_seconds{servicenow_instance=\"acme\"} 1767322800.000\n")
        );
        assert!(text.contains("midwatch_findings{servicenow_instance=\"acme\",category=\"network\"} 0\n"));
    }

    #[test]
    fn the_textfile_is_replaced_atomically_and_its_last_success_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("midwatch.prom");
        let mut m = Metrics::new("acme", Some(&path));
        assert_eq!(m.render(), "", "nothing to report before the first cycle");
        m.cycle_succeeded(at("2026-01-02T03:00:00Z"), Duration::from_secs(1), Status::Ok, &Summary::default());
        m.write(&path).expect("write");
        m.write(&path).expect("rewrite");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(names, vec!["midwatch.prom".to_string()], "no temporary file is left behind");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);

        let restarted = Metrics::new("acme", Some(&path));
        assert!(
            restarted
                .render()
                .contains("midwatch_last_success_timestamp_seconds{servicenow_instance=\"acme\"} 1767322800.000")
        );
    }
}
