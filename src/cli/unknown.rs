//! What `check` prints when it could not complete: the UNKNOWN status line (plugin style), in text or JSON.

use super::{Ended, print};
use crate::domain::Status;
use crate::escape::clean;
use crate::present::{Format, json};

/// The UNKNOWN status line of a check that could not complete: the error's first line (see [`unknown`]).
pub(super) fn unknown_line(error: &str) -> String {
    format!("MIDWATCH UNKNOWN - {}", clean(json::first_line(error)))
}

/// Prints the UNKNOWN status (plugin style first line): the check could not complete. `instance` is `None`
/// when the config could not be read, so no instance name is known. The text's first line is the error's
/// own, as the JSON document's `status_line`: an instance name after it would read as part of its sentence
/// ("… the snc_basic_auth_api_access role on acme").
pub(super) fn unknown(instance: Option<&str>, error: &str, format: Format) -> Result<Status, Ended> {
    let text = match format {
        Format::Text => {
            let mut text = format!("{}\n", unknown_line(error));
            for line in error.lines().skip(1) {
                text.push_str(&clean(line));
                text.push('\n');
            }
            text
        }
        Format::Json => format!("{}\n", json::render_error(instance, error)),
    };
    print(&text)?;
    Ok(Status::Unknown)
}
