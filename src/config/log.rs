//! `[log]`: the format and level of midwatch's own log (stderr, the journal under systemd).

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
pub(super) struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub(crate) struct LogConfig {
    pub(crate) format: LogFormat,
    pub(crate) level: String,
}

impl RawLog {
    pub(super) fn validate(self, problems: &mut Vec<String>) -> Option<LogConfig> {
        let format = match self.format.as_deref() {
            None | Some("text") => Some(LogFormat::Text),
            Some("json") => Some(LogFormat::Json),
            Some(other) => {
                problems.push(format!("[log] format = \"{other}\": expected \"text\" or \"json\""));
                None
            }
        };
        let level = self.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            problems.push(format!("[log] level = \"{level}\": expected error, warn, info, debug or trace"));
        }
        Some(LogConfig { format: format?, level })
    }
}
