//! One request on the wire: the account's credentials, the body read incrementally up to the size limit, and
//! the answer classified into data or an [`ApiError`].

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use super::Client;
use crate::snow::answer::{Body, Shape, classify};
use crate::snow::error::Context;
use crate::snow::text::{innermost, transport_text};
use crate::snow::{ApiError, ApiErrorKind};

/// An answer as it came off the wire.
pub(in crate::snow) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    body: Body,
}

impl Client {
    /// The answer's JSON object, or the error its class means.
    pub(in crate::snow) fn data(
        &self,
        table: &str,
        answer: &Answer,
        shape: Shape,
    ) -> Result<Map<String, Value>, ApiError> {
        classify(answer.status, &answer.headers, &answer.body, shape).map_err(|class| {
            ApiError::from_answer(class, &Context { table, page_size: self.opts.page_size, now: Utc::now() })
        })
    }

    /// Sends one request with the account's credentials and `Accept: application/json`, and reads
    /// the body incrementally, never beyond the size limit.
    pub(in crate::snow) async fn exchange(
        &self,
        table: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, ApiError> {
        let _permit = self.permits.acquire().await.map_err(|_| {
            let reason = "the client is shutting down".to_string();
            ApiError::new(table, ApiErrorKind::Connect { cause: reason.clone(), reason })
        })?;
        let request = request.header(reqwest::header::ACCEPT, "application/json");
        // `snow/auth/`: the credentials, proven by one request before others go; a refused OAuth token is renewed
        // once and the request repeated once; refused credentials end every later request unsent.
        self.auth
            .send(
                table,
                |a: &Answer| a.status,
                |authorization| self.send_once(table, request.try_clone(), authorization),
            )
            .await
    }

    /// One request with the given `Authorization` header (`None`: a request whose body cannot be sent twice),
    /// its body read incrementally, never beyond the size limit.
    async fn send_once(
        &self,
        table: &str,
        request: Option<reqwest::RequestBuilder>,
        authorization: HeaderValue,
    ) -> Result<Answer, ApiError> {
        let Some(request) = request else {
            let reason = "midwatch cannot send this request (its body is a stream); report it".to_string();
            return Err(ApiError::new(table, ApiErrorKind::Connect { cause: reason.clone(), reason }));
        };
        let mut response =
            request.header(AUTHORIZATION, authorization).send().await.map_err(|e| self.transport_error(table, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.clock.record(status, &headers, std::time::Instant::now());
        let limit = self.response_limit;
        let declared =
            headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let mut received = BytesMut::new();
        let body = if declared.is_some_and(|n| n > limit) {
            Body::TooLarge { limit }
        } else {
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) if received.len() as u64 + chunk.len() as u64 > limit => {
                        break Body::TooLarge { limit };
                    }
                    Ok(Some(chunk)) => received.extend_from_slice(&chunk),
                    Ok(None) => break Body::Complete(Bytes::from(std::mem::take(&mut received))),
                    Err(e) if e.is_timeout() => {
                        self.stats.record(status, received.len() as u64);
                        return Err(ApiError::new(table, ApiErrorKind::Timeout { timeout: self.opts.timeout }));
                    }
                    Err(e) => break Body::CutOff { received: received.len() as u64, reason: transport_text(&e) },
                }
            }
        };
        let bytes = match &body {
            Body::Complete(b) => b.len() as u64,
            _ => received.len() as u64,
        };
        self.stats.record(status, bytes);
        Ok(Answer { status, headers, body })
    }

    fn transport_error(&self, table: &str, e: &reqwest::Error) -> ApiError {
        let chain = crate::escape::clean(&transport_text(e));
        if e.is_timeout() {
            ApiError::new(table, ApiErrorKind::Timeout { timeout: self.opts.timeout })
        } else if crate::tls::refusal(e).is_some_and(crate::tls::is_marked_as_ca) {
            // Retrying cannot help (nor below): the same certificate comes back.
            let reason =
                format!("{}, and [instance] ca_file does not hold that very certificate", crate::tls::MarkedAsCa);
            ApiError::new(table, ApiErrorKind::Certificate { reason })
        } else if is_certificate_error(&chain) {
            ApiError::new(table, ApiErrorKind::Certificate { reason: chain })
        } else {
            ApiError::new(table, ApiErrorKind::Connect { reason: chain, cause: crate::escape::clean(&innermost(e)) })
        }
    }
}

/// True when a transport error is rustls refusing the peer's certificate (`invalid peer certificate:
/// UnknownIssuer`, an expired or wrong-name certificate), as opposed to a network failure.
fn is_certificate_error(chain: &str) -> bool {
    let chain = chain.to_ascii_lowercase();
    chain.contains("invalid peer certificate") || chain.contains("certificate verify failed")
}
