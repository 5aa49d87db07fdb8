//! The few things of the product the simulated instance must agree with, kept here as small copies so that
//! the simulator does not depend on midwatch (midwatch depends on it for `midwatch demo`). The product's
//! versions are authoritative: `src/domain/sn_time.rs` (the instance time format), `src/snow/row.rs`
//! (`value_text`, a value as text) and `src/domain/records.rs` (`LoginEventKind`); the integration tests run
//! both against each other, so a drift shows there.

use serde_json::Value;

/// The instance's date-time format (`yyyy-MM-dd HH:mm:ss`, UTC).
pub mod sn_time {
    use chrono::{DateTime, NaiveDateTime, Utc};

    const FORMAT: &str = "%Y-%m-%d %H:%M:%S";

    pub fn parse(s: &str) -> Option<DateTime<Utc>> {
        NaiveDateTime::parse_from_str(s.trim(), FORMAT).ok().map(|t| t.and_utc())
    }

    pub fn format(t: DateTime<Utc>) -> String {
        t.format(FORMAT).to_string()
    }
}

/// A value as text: strings as they are, numbers and booleans printed, a reference object's `value`, anything
/// else (absent, null, other objects, arrays) as "".
pub fn value_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Object(o)) => o.get("value").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// The login events of `sysevent` the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoginEventKind {
    Succeeded,
    Failed,
    AuthorizationFailed,
}

impl LoginEventKind {
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Succeeded => "login",
            Self::Failed => "login.failed",
            Self::AuthorizationFailed => "login.authorization.failed",
        }
    }
}
