//! ServiceNow's date-time format (`yyyy-MM-dd HH:mm:ss`, UTC in the Table API): the one parser and
//! formatter of instance time, shared by the client, the reports and the simulated instance.

use chrono::{DateTime, NaiveDateTime, Utc};

pub(crate) const FORMAT: &str = "%Y-%m-%d %H:%M:%S";

pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s.trim(), FORMAT).ok().map(|t| t.and_utc())
}

pub fn format(t: DateTime<Utc>) -> String {
    t.format(FORMAT).to_string()
}

pub(crate) fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*t))
}

/// For `Option<DateTime<Utc>>` fields: `null` or the instance's format.
pub(crate) mod option {
    use chrono::{DateTime, Utc};

    pub(crate) fn serialize<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(*t)),
            None => s.serialize_none(),
        }
    }
}
