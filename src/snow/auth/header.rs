//! The `Authorization` header of a request: `Basic` or `Bearer`, always marked sensitive so that the HTTP stack
//! never logs it.

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

/// The `Authorization` header of one request, and which token it carried.
#[derive(Debug, Clone)]
pub(crate) struct Authorization {
    pub(crate) header: HeaderValue,
    /// The token's generation; `None` for Basic auth.
    pub(super) generation: Option<u64>,
}

/// `Basic base64(user:password)`, as reqwest's `basic_auth` builds it.
pub(super) fn basic(user: &str, password: &SecretString) -> HeaderValue {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose_secret()));
    crate::redact::register(&encoded);
    // Base64 is always a valid header value.
    let mut header = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap_or(HeaderValue::from_static(""));
    header.set_sensitive(true);
    header
}

/// `Bearer <token>`, marked sensitive; `None` when the token holds a character a header cannot carry.
pub(super) fn bearer(token: &SecretString) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).ok()?;
    header.set_sensitive(true);
    Some(header)
}
