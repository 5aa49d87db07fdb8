//! Text that came from the instance or the network, made fit for a message: redacted and bounded in length,
//! an error member's message and detail joined, a redirect's `Location` cleaned, an error's chain of sources.

/// Text bounded in length, for messages built from untrusted bodies and headers.
pub(super) const MAX_TEXT: usize = 300;

/// How much of a body is redacted before it is cut to [`MAX_TEXT`]: enough that no secret straddles the cut.
const REDACT_WINDOW: usize = 8 * 1024;

/// Untrusted text fit to quote: secrets and credentials taken out (`crate::redact`), then bounded.
pub(super) fn shown(s: &str) -> String {
    bounded(&crate::redact::redact(s))
}

/// The start of a body fit to quote (see [`shown`]), trimmed; empty for an empty body.
pub(super) fn shown_body(body: &[u8]) -> String {
    shown(String::from_utf8_lossy(&body[..body.len().min(REDACT_WINDOW)]).trim())
}

/// At most [`MAX_TEXT`] characters.
pub(super) fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// An error answer's message and detail (`{"error":{"message","detail"}}`, the token endpoint's `error` and
/// `error_description`) as one text: either alone when the other is empty, the detail alone when it repeats
/// the message, else `message: detail`. Empty when both are.
pub(super) fn joined(message: &str, detail: &str) -> String {
    match (message.is_empty(), detail.is_empty()) {
        (_, true) => message.to_string(),
        (true, false) => detail.to_string(),
        (false, false) if detail.starts_with(message) => detail.to_string(),
        (false, false) => format!("{message}: {detail}"),
    }
}

/// A `Location` fit to show: no credentials, no query string or fragment (they may carry tokens), bounded.
pub(super) fn shown_location(location: &str) -> String {
    let shown = match url::Url::parse(location.trim()) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => location.trim().split(['?', '#']).next().unwrap_or_default().to_string(),
    };
    bounded(&shown)
}

/// An error and its sources, `outer: inner: …`, with a source that repeats the one before it left out.
pub(super) fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// A request's failure as text (see [`source_chain`]), its URL shown without the query string: the query of a
/// Table API request (`sysparm_query=…`, `sysparm_fields=…`) is long, and says nothing about why it failed.
pub(super) fn transport_text(e: &reqwest::Error) -> String {
    let text = source_chain(e);
    match e.url() {
        Some(url) if url.query().is_some() || url.fragment().is_some() => {
            let mut bare = url.clone();
            bare.set_query(None);
            bare.set_fragment(None);
            text.replace(url.as_str(), bare.as_str())
        }
        _ => text,
    }
}

/// The innermost cause of an error (`Connection refused (os error 111)`), for a message about the instance as
/// a whole rather than one request.
pub(super) fn innermost(e: &dyn std::error::Error) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_shown_without_credentials_or_query() {
        assert_eq!(shown_location("https://svc:s3cret@login.example/sso?token=abc#frag"), "https://login.example/sso");
        assert_eq!(shown_location("/login.do?sysparm_token=abc"), "/login.do");
    }

    #[test]
    fn message_and_detail_are_joined_once() {
        assert_eq!(joined("", ""), "");
        assert_eq!(joined("m", ""), "m");
        assert_eq!(joined("", "d"), "d");
        assert_eq!(joined("m", "m and more"), "m and more");
        assert_eq!(joined("m", "d"), "m: d");
    }
}
