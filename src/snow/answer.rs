//! What an answer from the instance (or from a gateway in front of it) is: data, or one class of
//! failure. Pure: status + headers + body in, no HTTP, no clock. Every read and every write goes
//! through [`classify`].
//!
//! A 200 is not proof of a complete page: the REST quota cancels a transaction that already ran
//! with HTTP 200, a partial `result` and then an `error` (docs/servicenow.md §2 item 6). So an
//! answer is data only when its body is a complete JSON object with the expected member and
//! without an `error` member or `"status":"failure"`. A 2xx whose JSON stops half way, or that has no
//! body, is cut off (a gateway or proxy cut it while the HTTP answer looked whole), as is one whose
//! connection closed early.

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::{Map, Value};

use super::retry::RetryAfter;
use super::text::{joined, shown, shown_body, shown_location};

/// The body of an answer, as far as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    Complete(Bytes),
    /// The connection ended before the body did.
    CutOff {
        received: u64,
        reason: String,
    },
    /// The body is larger than the client's limit; reading stopped at the limit (or before it,
    /// when `Content-Length` said so).
    TooLarge {
        limit: u64,
    },
}

/// The member that makes an object data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The Table API: `{"result": …}`.
    Table,
    /// The Batch API: `{"serviced_requests": […], …}`.
    Batch,
}

/// Where a redirect points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// A login, SSO or sign-on page.
    SignOn,
    /// A hibernating developer instance's wake-up page.
    WakeUp,
    Elsewhere,
}

/// An answer that is not data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Class {
    /// The REST transaction quota cancelled the request (200 with a partial page, or 500).
    QuotaCancelled {
        status: u16,
        message: String,
    },
    /// 429, with or without rate-limit headers (a full API semaphore queue sends none).
    RateLimited {
        retry_after: Option<RetryAfter>,
        message: String,
    },
    /// 5xx, whatever the body's type (a load balancer's HTML page included).
    Unavailable {
        status: u16,
        message: String,
    },
    /// The body ended early: the connection ended before it did, or a complete 2xx's JSON stops half way (or
    /// there is none). Retried by reads like a lost connection; never by a write that cannot be repeated.
    CutOff {
        received: u64,
        reason: String,
    },
    /// A 2xx that carries an error: whatever rows came with it are not the answer.
    Incomplete {
        status: u16,
        message: String,
    },
    /// A 2xx HTML page: a hibernating developer instance, or a login page served in place of the API.
    HtmlPage {
        status: u16,
        title: Option<String>,
    },
    /// A 3xx: midwatch does not follow redirects. `location` has no query string or credentials.
    Redirect {
        status: u16,
        location: Option<String>,
        kind: RedirectKind,
    },
    /// A 4xx: the instance (or a gateway) refused the request; nothing was done.
    Refused {
        status: u16,
        message: String,
        detail: String,
    },
    TooLarge {
        limit: u64,
    },
    /// A complete 2xx body that is not the expected JSON.
    Malformed {
        reason: String,
    },
}

/// Classifies one answer. `Ok` is the JSON object, with the member `shape` asks for.
pub(crate) fn classify(
    status: u16,
    headers: &HeaderMap,
    body: &Body,
    shape: Shape,
) -> Result<Map<String, Value>, Class> {
    let bytes = match body {
        Body::Complete(b) => b,
        Body::CutOff { received, reason } => {
            return Err(Class::CutOff { received: *received, reason: shown(reason) });
        }
        Body::TooLarge { limit } => return Err(Class::TooLarge { limit: *limit }),
    };
    if (300..400).contains(&status) {
        let location = headers.get(LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let kind = location.as_deref().map_or(RedirectKind::Elsewhere, redirect_kind);
        return Err(Class::Redirect { status, location: location.as_deref().map(shown_location), kind });
    }
    let object = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    };
    // JSON wins over a wrong label; markup is markup whatever its label.
    let html = object.is_none() && is_html(headers, bytes);
    let (message, detail) = object.as_ref().map(error_member).unwrap_or_default();
    if status == 429 {
        let retry_after = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(RetryAfter::parse);
        return Err(Class::RateLimited { retry_after, message: describe(html, &message, &detail, bytes) });
    }
    if is_quota_cancellation(&message, &detail) || (object.is_none() && !html && mentions_quota_near_end(bytes)) {
        let message =
            if message.is_empty() { "Transaction cancelled: maximum execution time exceeded".into() } else { message };
        return Err(Class::QuotaCancelled { status, message });
    }
    match status {
        200..=299 => {
            if html {
                return Err(Class::HtmlPage { status, title: title(bytes) });
            }
            let Some(object) = object else {
                return Err(match cut_short(bytes) {
                    Some(reason) => Class::CutOff { received: bytes.len() as u64, reason },
                    None => Class::Malformed { reason: not_json_reason(bytes) },
                });
            };
            let failed = object.get("status").and_then(Value::as_str) == Some("failure");
            if object.contains_key("error") || failed {
                let message = joined(&message, &detail);
                let message = if message.is_empty() { "\"status\":\"failure\"".into() } else { message };
                return Err(Class::Incomplete { status, message });
            }
            let member = match shape {
                Shape::Table => "result",
                Shape::Batch => "serviced_requests",
            };
            if !object.contains_key(member) {
                return Err(Class::Malformed { reason: format!("no \"{member}\" member") });
            }
            Ok(object)
        }
        500..=599 => Err(Class::Unavailable { status, message: describe(html, &message, &detail, bytes) }),
        _ => {
            let message = if message.is_empty() { describe(html, "", "", bytes) } else { message };
            Err(Class::Refused { status, message, detail })
        }
    }
}

/// `{"error":{"message","detail"}}`, with `detail` possibly null; redacted and bounded in length.
fn error_member(object: &Map<String, Value>) -> (String, String) {
    let field =
        |f: &str| object.get("error").and_then(|e| e.get(f)).and_then(Value::as_str).map(shown).unwrap_or_default();
    (field("message"), field("detail"))
}

fn is_quota_cancellation(message: &str, detail: &str) -> bool {
    [message, detail].iter().any(|t| {
        let t = t.to_ascii_lowercase();
        t.contains("transaction cancelled") || t.contains("maximum execution time exceeded")
    })
}

/// A body that is not valid JSON but ends with the quota's error (a page cut where the quota struck).
fn mentions_quota_near_end(body: &[u8]) -> bool {
    let tail = &body[body.len().saturating_sub(4096)..];
    let tail = String::from_utf8_lossy(tail);
    is_quota_cancellation(&tail, "")
}

/// An HTML page (by its content type or its first bytes), not an API answer.
pub(super) fn is_html(headers: &HeaderMap, body: &[u8]) -> bool {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let start = String::from_utf8_lossy(&body[..body.len().min(64)]).trim_start().to_ascii_lowercase();
    ct.contains("html") || start.starts_with("<!doctype") || start.starts_with("<html")
}

/// The page's `<title>`, if it has one.
fn title(body: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).into_owned();
    let lower = head.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let t = head.get(start..end)?.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(shown(&t)).filter(|t| !t.is_empty())
}

/// What a non-data body was, in a few words.
fn describe(html: bool, message: &str, detail: &str, body: &[u8]) -> String {
    let m = joined(message, detail);
    if !m.is_empty() {
        return m;
    }
    if html {
        return match title(body) {
            Some(t) => format!("an HTML page titled \"{t}\" (from the instance or a load balancer in front of it)"),
            None => "an HTML page (from the instance or a load balancer in front of it)".into(),
        };
    }
    let text = shown_body(body);
    if text.is_empty() { "an empty body".into() } else { text }
}

/// Why a complete 2xx body that ends before its JSON does (or is empty) is not the answer: a gateway or proxy
/// cut it short while the HTTP answer still looked whole. Such a body is a cut-off answer, like a connection
/// that closed early; `None` for any other body.
fn cut_short(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body) {
        Err(_) if body.iter().all(u8::is_ascii_whitespace) => Some("an empty body in a complete HTTP answer".into()),
        Err(e) if e.is_eof() => Some(format!("its JSON ends half way in a complete HTTP answer: {e}")),
        _ => None,
    }
}

fn not_json_reason(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Err(e) => e.to_string(),
        Ok(other) => format!("a JSON {} instead of an object", json_kind(&other)),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn redirect_kind(location: &str) -> RedirectKind {
    let l = shown_location(location).to_ascii_lowercase();
    if l.contains("wakeup") || l.contains("hibernat") {
        RedirectKind::WakeUp
    } else if ["login", "logon", "signon", "sign-on", "sso", "saml", "oauth", "auth", "adfs", "okta"]
        .iter()
        .any(|w| l.contains(w))
    {
        RedirectKind::SignOn
    } else {
        RedirectKind::Elsewhere
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::header::HeaderValue;

    use super::*;
    use crate::snow::text::MAX_TEXT;
    use proptest::strategy::Strategy as _;

    const QUOTA: &str = r#""error":{"message":"Transaction cancelled: maximum execution time exceeded","detail":"Transaction cancelled: maximum execution time exceeded Check logs for error trace or enable glide.rest.debug property to verify REST request processing"},"status":"failure"}"#;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(*name, v);
            }
        }
        h
    }

    fn json() -> HeaderMap {
        headers(&[("content-type", "application/json;charset=UTF-8")])
    }

    fn html() -> HeaderMap {
        headers(&[("content-type", "text/html;charset=UTF-8")])
    }

    fn table(status: u16, h: &HeaderMap, body: &str) -> Result<Map<String, Value>, Class> {
        classify(status, h, &Body::Complete(Bytes::from(body.to_string())), Shape::Table)
    }

    #[test]
    fn a_complete_result_is_data() {
        let data = table(200, &json(), r#"{"result":[{"sys_id":"a"}]}"#);
        assert!(data.is_ok_and(|m| m.contains_key("result")));
        assert!(table(201, &json(), r#"{"result":{"sys_id":"a"}}"#).is_ok());
    }

    #[test]
    fn a_200_with_a_partial_result_and_the_quota_error_is_a_quota_cancellation() {
        let body = format!(r#"{{"result":[{{"sys_id":"a"}}],{QUOTA}"#);
        assert_eq!(
            table(200, &json(), &body),
            Err(Class::QuotaCancelled {
                status: 200,
                message: "Transaction cancelled: maximum execution time exceeded".into()
            })
        );
        // The same error cut into a page that is no longer valid JSON.
        let broken = format!(r#"{{"result":[{{"sys_id":"a"}},{{"sys_id":"b"{QUOTA}"#);
        assert!(matches!(table(200, &json(), &broken), Err(Class::QuotaCancelled { status: 200, .. })));
        let queued = format!("{{{QUOTA}");
        assert!(matches!(table(500, &json(), &queued), Err(Class::QuotaCancelled { status: 500, .. })));
    }

    #[test]
    fn a_200_with_any_other_error_or_failure_status_is_not_data() {
        let body = r#"{"result":[],"error":{"message":"Something broke","detail":null},"status":"failure"}"#;
        assert_eq!(
            table(200, &json(), body),
            Err(Class::Incomplete { status: 200, message: "Something broke".into() })
        );
        assert!(matches!(table(200, &json(), r#"{"result":[],"status":"failure"}"#), Err(Class::Incomplete { .. })));
    }

    #[test]
    fn rate_limits_with_and_without_headers() {
        let body = r#"{"error":{"message":"Rate limit exceeded","detail":"Rate limit of 100 requests per hour for Table API exceeded"},"status":"failure"}"#;
        let Err(Class::RateLimited { retry_after, message }) =
            table(429, &headers(&[("retry-after", "7"), ("x-ratelimit-limit", "100")]), body)
        else {
            panic!("a rate limit")
        };
        assert_eq!(retry_after, Some(RetryAfter::Delay(Duration::from_secs(7))));
        assert_eq!(message, "Rate limit exceeded: Rate limit of 100 requests per hour for Table API exceeded");
        // The semaphore queue's 429: no headers, maybe not even JSON.
        assert!(matches!(table(429, &HeaderMap::new(), ""), Err(Class::RateLimited { retry_after: None, .. })));
        let dated = headers(&[("retry-after", "Sun, 22 Nov 2026 12:00:03 GMT")]);
        assert!(matches!(
            table(429, &dated, body),
            Err(Class::RateLimited { retry_after: Some(RetryAfter::At(_)), .. })
        ));
    }

    #[test]
    fn a_5xx_is_unavailable_whatever_its_body() {
        let page = "<html><head><title>Service Unavailable</title></head><body>try later</body></html>";
        assert_eq!(
            table(503, &html(), page),
            Err(Class::Unavailable {
                status: 503,
                message:
                    "an HTML page titled \"Service Unavailable\" (from the instance or a load balancer in front of it)"
                        .into()
            })
        );
        assert!(matches!(table(502, &HeaderMap::new(), "Bad Gateway"), Err(Class::Unavailable { status: 502, .. })));
        let body = r#"{"error":{"message":"Internal server error","detail":null},"status":"failure"}"#;
        assert!(matches!(table(500, &json(), body), Err(Class::Unavailable { status: 500, .. })));
    }

    #[test]
    fn a_200_html_page_is_not_the_api() {
        let page = "<!DOCTYPE html><html><head><title>Instance Hibernating page</title></head></html>";
        assert_eq!(
            table(200, &html(), page),
            Err(Class::HtmlPage { status: 200, title: Some("Instance Hibernating page".into()) })
        );
        // Labelled JSON, but markup all the same.
        assert!(matches!(table(200, &json(), "<html><body>hi</body></html>"), Err(Class::HtmlPage { .. })));
    }

    #[test]
    fn a_redirect_shows_where_without_its_query_string() {
        let h = headers(&[("location", "https://acme.service-now.com/login.do?sysparm_goto=x&token=SECRET#f")]);
        assert_eq!(
            table(302, &h, ""),
            Err(Class::Redirect {
                status: 302,
                location: Some("https://acme.service-now.com/login.do".into()),
                kind: RedirectKind::SignOn
            })
        );
        let relative = headers(&[("location", "/navpage.do?token=SECRET")]);
        assert!(matches!(
            table(301, &relative, ""),
            Err(Class::Redirect { location: Some(l), kind: RedirectKind::Elsewhere, .. }) if l == "/navpage.do"
        ));
        let creds = headers(&[("location", "https://user:pw@sso.example.com/saml2?SAMLRequest=abc")]);
        assert!(matches!(
            table(302, &creds, ""),
            Err(Class::Redirect { location: Some(l), kind: RedirectKind::SignOn, .. }) if l == "https://sso.example.com/saml2"
        ));
        let wake = headers(&[("location", "https://developer.servicenow.com/wakeup")]);
        assert!(matches!(table(307, &wake, ""), Err(Class::Redirect { kind: RedirectKind::WakeUp, .. })));
        assert!(matches!(table(302, &HeaderMap::new(), ""), Err(Class::Redirect { location: None, .. })));
    }

    #[test]
    fn refusals_keep_the_instance_message() {
        let body = r#"{"error":{"message":"Insufficient rights to query records","detail":null},"status":"failure"}"#;
        assert_eq!(
            table(403, &json(), body),
            Err(Class::Refused {
                status: 403,
                message: "Insufficient rights to query records".into(),
                detail: String::new()
            })
        );
        assert!(matches!(table(404, &html(), "<html></html>"), Err(Class::Refused { status: 404, .. })));
    }

    #[test]
    fn cut_off_too_large_and_malformed_bodies() {
        let cut = Body::CutOff { received: 1234, reason: "connection closed before message completed".into() };
        assert!(matches!(classify(200, &json(), &cut, Shape::Table), Err(Class::CutOff { received: 1234, .. })));
        let big = Body::TooLarge { limit: 64 };
        assert_eq!(classify(200, &json(), &big, Shape::Table), Err(Class::TooLarge { limit: 64 }));
        assert!(matches!(table(200, &json(), r#"{"records":[]}"#), Err(Class::Malformed { .. })));
        assert!(matches!(table(200, &json(), "[]"), Err(Class::Malformed { .. })));
        assert!(matches!(table(200, &json(), "{\"result\":[]}}"), Err(Class::Malformed { .. })));
    }

    #[test]
    fn a_complete_2xx_whose_json_ends_half_way_or_that_is_empty_is_cut_off() {
        let Err(Class::CutOff { received, reason }) = table(200, &json(), r#"{"result":[{"sys_id":"#) else {
            panic!("cut off")
        };
        assert_eq!(received, 21);
        assert!(reason.starts_with("its JSON ends half way in a complete HTTP answer: EOF"), "{reason}");
        for empty in ["", " \r\n"] {
            assert_eq!(
                table(200, &HeaderMap::new(), empty),
                Err(Class::CutOff {
                    received: empty.len() as u64,
                    reason: "an empty body in a complete HTTP answer".into()
                })
            );
        }
        assert!(matches!(table(201, &json(), r#"{"result":{"sys_id":"a""#), Err(Class::CutOff { .. })));
        // Not a 2xx: what the status says.
        assert!(matches!(table(503, &json(), r#"{"error":{"#), Err(Class::Unavailable { .. })));
        assert!(matches!(table(404, &json(), ""), Err(Class::Refused { .. })));
    }

    #[test]
    fn a_batch_answer_needs_its_serviced_requests() {
        let ok = Body::Complete(Bytes::from_static(
            br#"{"batch_request_id":"m","serviced_requests":[],"unserviced_requests":[]}"#,
        ));
        assert!(classify(200, &json(), &ok, Shape::Batch).is_ok());
        let table_shaped = Body::Complete(Bytes::from_static(br#"{"result":[]}"#));
        assert!(matches!(classify(200, &json(), &table_shaped, Shape::Batch), Err(Class::Malformed { .. })));
    }

    #[test]
    fn hostile_bodies_and_headers_are_bounded_and_never_panic() {
        let long = format!(r#"{{"error":{{"message":"{}","detail":null}},"status":"failure"}}"#, "é".repeat(5000));
        let Err(Class::Refused { message, .. }) = table(400, &json(), &long) else { panic!("refused") };
        assert!(message.chars().count() <= MAX_TEXT + 1, "{}", message.len());
        let weird = headers(&[("location", "\u{7f}?x"), ("retry-after", "ü")]);
        let _ = table(302, &weird, "");
        let _ = table(429, &weird, "\u{0}\u{1}");
        for body in ["<title>", "<title>x", "<title></title>", "<TITLE>a</title>", "<html><title", ""] {
            let _ = table(200, &html(), body);
            let _ = table(503, &html(), body);
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config())]

        /// No status, content type or body makes the classifier panic, and only a complete JSON object with the
        /// expected member and no error is data.
        #[test]
        fn no_answer_panics_and_only_a_clean_object_is_data(
            status in 100u16..600,
            html in proptest::bool::ANY,
            body in proptest::prop_oneof![
                proptest::collection::vec(proptest::num::u8::ANY, 0..600),
                "\\PC{0,300}".prop_map(String::into_bytes),
                ("\\PC{0,40}", "\\PC{0,40}").prop_map(|(m, d)| {
                    serde_json::json!({"result": [], "error": {"message": m, "detail": d}}).to_string().into_bytes()
                }),
            ],
        ) {
            let headers = if html { self::html() } else { json() };
            let body = Body::Complete(Bytes::from(body.clone()));
            for shape in [Shape::Table, Shape::Batch] {
                if let Ok(object) = classify(status, &headers, &body, shape) {
                    proptest::prop_assert!((200..300).contains(&status));
                    proptest::prop_assert!(!object.contains_key("error"));
                }
            }
        }
    }
}
