//! `[metrics]`: the Prometheus textfile `midwatch run` rewrites after each cycle.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
pub(super) struct RawMetrics {
    textfile: Option<PathBuf>,
}

/// `[metrics]`: the Prometheus textfile `midwatch run` rewrites after each cycle.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    pub textfile: Option<PathBuf>,
}

impl RawMetrics {
    pub(super) fn validate(self, problems: &mut Vec<String>) -> MetricsConfig {
        if let Some(path) = &self.textfile
            && path.extension().is_none_or(|e| e != "prom")
        {
            problems.push(format!(
                "[metrics] textfile = \"{}\": expected a file name ending in .prom (the node_exporter textfile \
                 collector reads only *.prom)",
                path.display()
            ));
        }
        MetricsConfig { textfile: self.textfile }
    }
}
