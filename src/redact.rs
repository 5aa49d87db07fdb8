//! One redaction for every text quoted from an answer (an error body's excerpt, a page title, an error
//! member's message): such text reaches errors, the status line (which a monitoring system stores), the JSON
//! report and the journal, and a gateway page that echoes the request would carry its credentials.
//!
//! Two things are taken out: every secret midwatch holds — the configured passwords and client secrets
//! ([`register`]ed where the config resolves them), the Basic credentials' encoding and the OAuth tokens
//! issued to it — in each form a page may show them (raw, form- or percent-encoded, JSON-escaped,
//! HTML-escaped, base64); and whatever follows a credential's name (`Authorization:`, `Bearer`, `Basic`,
//! `password=`, `"access_token":` …), whatever its value.

use std::borrow::Cow;
use std::sync::{PoisonError, RwLock};

use base64::Engine as _;

/// What a redacted secret is shown as.
pub(crate) const REDACTED: &str = "[redacted]";

/// Shorter secrets are not registered: replacing two or three characters wherever they occur would take
/// ordinary words out of messages, and such a secret protects nothing anyway.
const MIN_SECRET: usize = 4;

/// The names a credential follows in a header, a form or a JSON object (compared case-insensitively).
const CREDENTIAL_NAMES: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "bearer",
    "basic",
    "password",
    "client_secret",
    "access_token",
    "refresh_token",
    "x-usertoken",
];

/// The registered secrets: each with its slot (a token replaces the one it renews, so a long-running service
/// does not collect every token it was ever issued) and every form of it.
static SECRETS: RwLock<Vec<Registered>> = RwLock::new(Vec::new());

struct Registered {
    slot: Option<&'static str>,
    forms: Vec<String>,
}

/// Adds `secret` (in every form a page may show it) to what [`redact`] takes out, for good.
pub(crate) fn register(secret: &str) {
    add(None, secret);
}

/// Adds `secret` in place of the one registered before in `slot` (an OAuth token replacing the one it renews).
pub(crate) fn register_in(slot: &'static str, secret: &str) {
    add(Some(slot), secret);
}

fn add(slot: Option<&'static str>, secret: &str) {
    if secret.chars().count() < MIN_SECRET {
        return;
    }
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    let mut forms = vec![
        secret.to_string(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        secret.bytes().map(|b| format!("%{b:02X}")).collect(),
        json.replace('/', "\\/"),
        json,
        html_escaped(secret),
        base64::engine::general_purpose::STANDARD.encode(secret),
    ];
    // Longest first, so a longer form is replaced before a shorter one that it contains.
    forms.retain(|f| f.len() >= MIN_SECRET);
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    match slot {
        Some(slot) => secrets.retain(|r| r.slot != Some(slot)),
        None if secrets.iter().any(|r| r.slot.is_none() && r.forms.first() == forms.first()) => return,
        None => {}
    }
    secrets.push(Registered { slot, forms });
}

/// `text` with the JSON escapes `\uXXXX` (surrogate pairs included), `\"`, `\/` and `\\` decoded; `None` when
/// it has none. Anything else after a backslash stays as it is.
fn unescape(text: &str) -> Option<String> {
    if !text.contains('\\') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let hex =
            |s: &str| s.get(2..6).and_then(|h| u32::from_str_radix(h, 16).ok()).filter(|_| s.as_bytes()[1] == b'u');
        let (decoded, used) = match rest.as_bytes().get(1) {
            Some(b'"') => (Some('"'), 2),
            Some(b'/') => (Some('/'), 2),
            Some(b'\\') => (Some('\\'), 2),
            Some(b'u') => match hex(rest) {
                Some(high @ 0xD800..=0xDBFF) => match rest.get(6..).and_then(hex) {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        (char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), 12)
                    }
                    _ => (None, 0),
                },
                Some(c) => (char::from_u32(c), 6),
                None => (None, 0),
            },
            _ => (None, 0),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[used..];
                changed = true;
            }
            None => {
                out.push('\\');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// `text` without any registered secret and without the value of anything named like a credential.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    // JSON escapes in a text that is not decoded as JSON (`\u0073ecret`, `\/`) are decoded first, so an escaped
    // secret is found too; the quote shows the decoded text.
    let mut out = match unescape(text) {
        Some(decoded) => Cow::Owned(decoded),
        None => Cow::Borrowed(text),
    };
    {
        let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
        for s in secrets.iter().flat_map(|r| &r.forms) {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
    }
    match mask_credentials(&out) {
        Some(masked) => Cow::Owned(masked),
        None => out,
    }
}

/// Masks the value after each credential name: `Authorization: Basic xyz` → `Authorization: [redacted]`,
/// `password=xyz&a=b` → `password=[redacted]&a=b`, `"access_token":"xyz"` → `"access_token":"[redacted]"`,
/// `Bearer eyJ…` → `Bearer [redacted]`. A name in prose (`the password policy`) is left alone: only a name
/// followed by `:` or `=` (or `Bearer`/`Basic` followed by something token-like) has a value. `None` when
/// there is nothing to mask.
fn mask_credentials(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut changed = false;
    while let Some((start, name)) = next_name(&lower, at) {
        let after = start + name.len();
        // A name inside a longer word (`basically`, `mypassword_hint`) is not a credential's name.
        let inside_word = |i: usize| lower.as_bytes().get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let scheme = matches!(name, "bearer" | "basic");
        let rest = &text.as_bytes()[after..];
        let sep_len =
            rest.iter().take_while(|b| matches!(b, b' ' | b'\t' | b'"' | b'\'' | b':' | b'=' | b'\\')).count();
        let sep = &rest[..sep_len];
        let value_start = after + sep_len;
        // A header's value runs to the end of the header (`Basic xyz` included); any other value to a space.
        let header = matches!(name, "authorization" | "proxy-authorization" | "x-usertoken");
        let value_len = text[value_start..].bytes().take_while(|b| !is_value_end(*b, header)).count();
        let value = &text[value_start..value_start + value_len];
        let named = sep.iter().any(|b| matches!(b, b':' | b'='));
        let token_like = value.len() >= 8
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'='));
        let masked = (start == 0 || !inside_word(start - 1))
            && !inside_word(after)
            && !value.is_empty()
            && (named || (scheme && sep_len > 0 && token_like));
        if masked {
            out.push_str(&text[at..value_start]);
            out.push_str(REDACTED);
            changed = true;
            at = value_start + value_len;
        } else {
            out.push_str(&text[at..after]);
            at = after;
        }
    }
    out.push_str(&text[at..]);
    changed.then_some(out)
}

/// The next credential name at or after `from` in the lowercased text, with its position.
fn next_name(lower: &str, from: usize) -> Option<(usize, &'static str)> {
    CREDENTIAL_NAMES
        .iter()
        .filter_map(|n| lower[from..].find(n).map(|i| (from + i, *n)))
        .min_by_key(|(i, n)| (*i, std::cmp::Reverse(n.len())))
}

/// Where a credential's value ends: a quote, markup, a form's `&`, a list's `,` or `;`, the line's end, and
/// (but in a header's value) a space.
fn is_value_end(b: u8, header: bool) -> bool {
    matches!(b, b'"' | b'\'' | b'<' | b'>' | b'&' | b',' | b';' | b'\n' | b'\r' | b'\\' | b'}')
        || (!header && matches!(b, b' ' | b'\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_registered_secret_is_taken_out() {
        let secret = "s3cr\"et/pa ss&<x>";
        register(secret);
        let json = serde_json::to_string(secret).expect("json");
        let inner = json.trim_matches('"');
        for shown in [
            secret.to_string(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
            inner.to_string(),
            inner.replace('/', "\\/"),
            html_escaped(secret),
            base64::engine::general_purpose::STANDARD.encode(secret),
        ] {
            let text = format!("the page said: [{shown}] and more");
            let out = redact(&text);
            assert!(!out.contains(&shown), "{shown:?} survived in {out:?}");
            assert!(out.contains(REDACTED), "{out}");
        }
    }

    #[test]
    fn json_escapes_are_decoded_before_secrets_are_looked_for() {
        register("esc-secret-42");
        assert_eq!(redact(r"echo \u0065sc-secret-42 \/ok"), "echo [redacted] /ok");
        assert_eq!(redact(r"surrogates \ud83d\ude00 and a lone \ud83d"), "surrogates \u{1f600} and a lone \\ud83d");
        assert_eq!(redact(r"C:\path\x"), r"C:\path\x", "other escapes stay");
    }

    #[test]
    fn a_renewed_token_replaces_the_one_before_it() {
        register_in("test-slot", "first-token-abc");
        register_in("test-slot", "second-token-xyz");
        assert_eq!(redact("first-token-abc"), "first-token-abc", "no longer held, no longer collected");
        assert_eq!(redact("second-token-xyz"), REDACTED);
    }

    #[test]
    fn values_named_like_credentials_are_masked_whatever_they_are() {
        let cases = [
            ("Authorization: Basic c3ZjOnB3", "Authorization: [redacted]"),
            ("authorization=Bearer abc.def", "authorization=[redacted]"),
            ("<li>Authorization: Bearer abc.def</li>", "<li>Authorization: [redacted]</li>"),
            ("echo: Bearer eyJhbGciOi.x.y, next", "echo: Bearer [redacted], next"),
            ("grant_type=password&password=hunter2&client_id=x", "grant_type=password&password=[redacted]&client_id=x"),
            (r#"{"access_token":"tok123","expires_in":1800}"#, r#"{"access_token":"[redacted]","expires_in":1800}"#),
            (r#"{\"client_secret\":\"abc\"}"#, r#"{"client_secret":"[redacted]"}"#),
            ("<td>X-UserToken</td><td>abc</td>", "<td>X-UserToken</td><td>abc</td>"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn ordinary_words_stay() {
        for text in [
            "basically fine",
            "Insufficient rights to query records",
            "the password policy",
            "Password must be changed",
            "no basic auth here",
            "a bearer token is required",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config())]

        /// No text makes redaction panic, and a registered secret never survives wherever it is put.
        #[test]
        fn no_text_panics_and_a_registered_secret_never_survives(
            before in "\\PC{0,60}",
            after in "\\PC{0,60}",
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..120),
        ) {
            let _ = redact(&String::from_utf8_lossy(&raw));
            let secret = "pr0p-s3cret/x";
            register(secret);
            let text = format!("{before}{secret}{after}");
            let out = redact(&text);
            proptest::prop_assert!(!out.contains(secret), "{}", out);
        }
    }
}
