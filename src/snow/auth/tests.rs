//! The token manager on tokio's paused clock, against a stand-in token endpoint: expiry, single-flight
//! renewal, the refresh token and its fallback, and the token count of a long run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use proptest::strategy::Strategy as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

use super::token_endpoint::{GrantRequest, TokenAnswer, TokenEndpoint, parse_answer};
use super::token_manager::{Flow, TokenManager, margin};
use super::*;

/// A token endpoint that issues numbered tokens and records the grants asked for.
struct FakeEndpoint {
    lifetime: Option<Duration>,
    /// How long each answer takes (on the paused clock).
    delay: Duration,
    /// Refresh tokens are refused once this old.
    refresh_lifetime: Duration,
    grants: Mutex<Vec<Grant>>,
    /// When each refresh token was issued, by its number.
    refresh_issued: Mutex<Vec<Instant>>,
    /// The next answers, before any token is issued.
    failures: Mutex<Vec<TokenError>>,
}

impl FakeEndpoint {
    fn new(lifetime: Duration) -> Arc<FakeEndpoint> {
        Arc::new(FakeEndpoint {
            lifetime: Some(lifetime),
            delay: Duration::from_millis(200),
            refresh_lifetime: Duration::from_secs(8_640_000),
            grants: Mutex::default(),
            refresh_issued: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    fn grants(&self) -> Vec<Grant> {
        self.grants.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn fail_next(&self, e: TokenError) {
        if let Ok(mut f) = self.failures.lock() {
            f.push(e);
        }
    }

    async fn answer(&self, grant: GrantRequest<'_>) -> Result<TokenAnswer, TokenError> {
        tokio::time::sleep(self.delay).await;
        let kind = grant.grant();
        let n = {
            let mut grants = self.grants.lock().map_err(|_| TokenError::Malformed { reason: "poisoned".into() })?;
            grants.push(kind);
            grants.len()
        };
        if let Some(e) = self.failures.lock().ok().and_then(|mut f| (!f.is_empty()).then(|| f.remove(0))) {
            return Err(e);
        }
        let mut issued = self.refresh_issued.lock().map_err(|_| TokenError::Malformed { reason: "poisoned".into() })?;
        let refresh_token = match grant {
            GrantRequest::RefreshToken { token } => {
                let index: usize = token.expose_secret().trim_start_matches("refresh-").parse().unwrap_or(usize::MAX);
                let fresh = issued.get(index).is_some_and(|at| at.elapsed() < self.refresh_lifetime);
                if !fresh {
                    return Err(TokenError::Refused {
                        grant: kind,
                        client_id: "c".into(),
                        user: None,
                        status: 401,
                        answer: "server_error: access_denied".into(),
                    });
                }
                None
            }
            GrantRequest::Password { .. } => {
                issued.push(Instant::now());
                Some(SecretString::from(format!("refresh-{}", issued.len() - 1)))
            }
            GrantRequest::ClientCredentials => None,
        };
        Ok(TokenAnswer {
            access_token: SecretString::from(format!("access-{n}")),
            refresh_token,
            expires_in: self.lifetime,
        })
    }
}

struct Endpoint(Arc<FakeEndpoint>);

impl TokenEndpoint for Endpoint {
    fn request<'a>(&'a self, grant: GrantRequest<'a>) -> BoxFuture<'a, Result<TokenAnswer, TokenError>> {
        Box::pin(self.0.answer(grant))
    }
}

fn client_credentials(endpoint: &Arc<FakeEndpoint>) -> TokenManager {
    TokenManager::new(Flow::ClientCredentials, "c", "the app user".into(), Box::new(Endpoint(Arc::clone(endpoint))))
}

fn password(endpoint: &Arc<FakeEndpoint>) -> TokenManager {
    let flow = Flow::Password { user: "svc".into(), password: SecretString::from("pw") };
    TokenManager::new(flow, "c", "svc".into(), Box::new(Endpoint(Arc::clone(endpoint))))
}

async fn token(tokens: &TokenManager) -> (String, u64) {
    match tokens.authorization().await {
        Ok(a) => (a.header.to_str().unwrap_or_default().to_string(), a.generation.unwrap_or_default()),
        Err(e) => panic!("no token: {e}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_is_reused_until_shortly_before_it_expires() {
    let endpoint = FakeEndpoint::new(Duration::from_secs(120));
    let tokens = client_credentials(&endpoint);
    let (first, _) = token(&tokens).await;
    assert_eq!(first, "Bearer access-1");
    // A 120 s token is renewed in its last 30 s (a quarter of it; a minute for longer tokens).
    tokio::time::advance(Duration::from_secs(89)).await;
    assert_eq!(token(&tokens).await.0, "Bearer access-1");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(token(&tokens).await, ("Bearer access-2".to_string(), 2));
    assert_eq!(endpoint.grants(), [Grant::ClientCredentials, Grant::ClientCredentials]);
    assert_eq!(margin(Duration::from_secs(1800)), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_during_expiry_share_one_token_request() {
    let endpoint = FakeEndpoint::new(Duration::from_secs(120));
    let tokens = Arc::new(client_credentials(&endpoint));
    token(&tokens).await;
    tokio::time::advance(Duration::from_secs(200)).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let tokens = Arc::clone(&tokens);
            tokio::spawn(async move { token(&tokens).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.ok(), Some(("Bearer access-2".to_string(), 2)));
    }
    assert_eq!(endpoint.grants().len(), 2, "one token request for 32 requests that found it expired");
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_is_renewed_once_for_every_request_that_carried_it() {
    let endpoint = FakeEndpoint::new(Duration::from_secs(1800));
    let tokens = Arc::new(client_credentials(&endpoint));
    let (_, generation) = token(&tokens).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let tokens = Arc::clone(&tokens);
            tokio::spawn(async move { tokens.renew_refused(generation).await.map(|a| a.generation) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.ok().and_then(Result::ok), Some(Some(2)));
    }
    assert_eq!(endpoint.grants().len(), 2, "eight refusals of the same token, one renewal");
    // A refusal of the new token renews again: each generation is renewed at most once.
    assert_eq!(tokens.renew_refused(2).await.ok().and_then(|a| a.generation), Some(3));
}

#[tokio::test(start_paused = true)]
async fn the_password_grant_refreshes_and_falls_back_to_a_new_grant_when_the_refresh_is_refused() {
    let endpoint = Arc::new(FakeEndpoint {
        refresh_lifetime: Duration::from_secs(600),
        ..Arc::into_inner(FakeEndpoint::new(Duration::from_secs(120))).expect("not shared yet")
    });
    let tokens = password(&endpoint);
    token(&tokens).await;
    tokio::time::advance(Duration::from_secs(100)).await;
    token(&tokens).await;
    // The refresh token (600 s) has run out by now: the instance refuses it, a password grant follows.
    tokio::time::advance(Duration::from_secs(600)).await;
    let (header, generation) = token(&tokens).await;
    assert_eq!((header.as_str(), generation), ("Bearer access-4", 3));
    assert_eq!(endpoint.grants(), [Grant::Password, Grant::RefreshToken, Grant::RefreshToken, Grant::Password]);
    let info = tokens.sign_in().await.expect("token");
    assert_eq!(info.grant, Grant::Password);
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_during_a_refresh_keeps_the_refresh_token_for_the_next_try() {
    let endpoint = FakeEndpoint::new(Duration::from_secs(120));
    let tokens = password(&endpoint);
    token(&tokens).await;
    tokio::time::advance(Duration::from_secs(200)).await;
    endpoint.fail_next(TokenError::Connect { url: "u".into(), reason: "connection reset".into() });
    let Err(e) = tokens.authorization().await else { panic!("the endpoint failed") };
    assert!(e.is_transient(), "{e}");
    token(&tokens).await;
    assert_eq!(endpoint.grants(), [Grant::Password, Grant::RefreshToken, Grant::RefreshToken]);
}

/// The token count of a long `run`, printed and asserted: a one-hour `run` on a 10-minute schedule with
/// 2-minute tokens asks for one token per cycle, 6 in the hour (a cycle shorter than the token's 90 s before
/// renewal needs no second one).
#[tokio::test(start_paused = true)]
async fn one_hour_of_ten_minute_cycles_with_two_minute_tokens_asks_for_six_tokens() {
    for (flow, expected) in [
        ("client_credentials", vec![Grant::ClientCredentials; 6]),
        ("password", [vec![Grant::Password], vec![Grant::RefreshToken; 5]].concat()),
    ] {
        let endpoint = FakeEndpoint::new(Duration::from_secs(120));
        let tokens = Arc::new(if flow == "password" { password(&endpoint) } else { client_credentials(&endpoint) });
        let start = Instant::now();
        for cycle in 0..6u32 {
            tokio::time::sleep_until(start + Duration::from_secs(600) * cycle).await;
            // A cycle of about 20 s: 3 rounds of 4 concurrent reads, then the writes.
            for _ in 0..4 {
                let reads: Vec<_> = (0..4)
                    .map(|_| {
                        let tokens = Arc::clone(&tokens);
                        tokio::spawn(async move { token(&tokens).await })
                    })
                    .collect();
                for read in reads {
                    assert!(read.await.is_ok());
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(3600));
        println!("{flow}: {} token requests in one hour: {:?}", endpoint.grants().len(), endpoint.grants());
        assert_eq!(endpoint.grants(), expected, "{flow}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_long_run_renews_for_months_without_a_restart() {
    // 200 days of 4-hourly cycles with the default lifetimes: 1800 s tokens, 100-day refresh tokens.
    let endpoint = Arc::new(FakeEndpoint {
        delay: Duration::ZERO,
        ..Arc::into_inner(FakeEndpoint::new(Duration::from_secs(1800))).expect("not shared yet")
    });
    let tokens = password(&endpoint);
    for _ in 0..(200 * 6) {
        token(&tokens).await;
        tokio::time::advance(Duration::from_secs(4 * 3600)).await;
    }
    let grants = endpoint.grants();
    let passwords = grants.iter().filter(|g| **g == Grant::Password).count();
    assert_eq!(passwords, 2, "a new password grant once the 100-day refresh token is refused");
    assert_eq!(grants.len(), 1200 + 1, "one token per cycle, and the one refused refresh");
}

#[test]
fn an_answer_is_read_as_the_instance_writes_it() {
    let answer = |body: &str| parse_answer(body.as_bytes());
    let a = answer(
        r#"{"access_token":"tok","refresh_token":"ref","scope":"useraccount","token_type":"Bearer","expires_in":1799}"#,
    )
    .expect("the documentation's example");
    assert_eq!((a.access_token.expose_secret(), a.expires_in), ("tok", Some(Duration::from_secs(1799))));
    assert_eq!(a.refresh_token.as_ref().map(|r| r.expose_secret().to_string()), Some("ref".into()));
    let a = answer(r#"{"access_token":"tok","scope":"useraccount","token_type":"Bearer","expires_in":"120"}"#)
        .expect("client credentials, a string lifetime");
    assert!(a.refresh_token.is_none());
    assert_eq!(a.expires_in, Some(Duration::from_secs(120)));
    assert_eq!(answer(r#"{"access_token":"tok"}"#).expect("minimal").expires_in, None);

    for (body, reason) in [
        (r#"{"token_type":"Bearer"}"#, "no access_token"),
        (r#"{"access_token":"tok-secret","token_type":"mac"}"#, "token_type is \"mac\", not Bearer"),
        (r#"{"access_token":"tok-secret""#, "EOF while parsing"),
    ] {
        let Err(e) = answer(body) else { panic!("{body} is not a token") };
        let text = e.to_string();
        assert!(text.contains(reason), "{text}");
        assert!(!text.contains("tok-secret"), "a token is never quoted: {text}");
    }
}

#[test]
fn debug_output_shows_no_secret() {
    let client = OAuthClient { id: "cid".into(), secret: SecretString::from("client-s3cret") };
    let credentials =
        Credentials::OAuthPassword { client, user: "svc".into(), password: SecretString::from("pw-s3cret") };
    let url = Url::parse("https://acme.service-now.com").expect("url");
    let auth = Auth::new(&credentials, reqwest::Client::new(), &url, Duration::from_secs(5));
    for text in [format!("{credentials:?}"), format!("{auth:?}")] {
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("cid"), "{text}");
    }
    let basic = Credentials::Basic { user: "svc".into(), password: SecretString::from("pw-s3cret") };
    let auth = Auth::new(&basic, reqwest::Client::new(), &url, Duration::from_secs(5));
    assert_eq!(format!("{auth:?}"), "Auth::Basic");
    let Kind::Basic(header) = &auth.kind else { panic!("basic") };
    assert!(header.is_sensitive());
    assert_eq!(format!("{header:?}"), "Sensitive");
}

#[tokio::test(start_paused = true)]
async fn an_absurd_expires_in_is_taken_as_a_day_and_never_overflows_the_clock() {
    // `expires_in: 1e300` reaches the manager as the largest whole number of seconds.
    let absurd = parse_answer(br#"{"access_token":"tok","token_type":"Bearer","expires_in":1e300}"#).expect("answer");
    let endpoint = FakeEndpoint::new(absurd.expires_in.expect("a lifetime"));
    let tokens = client_credentials(&endpoint);
    assert_eq!(token(&tokens).await.0, "Bearer access-1");
    assert_eq!(tokens.sign_in().await.expect("info").lifetime, super::token_manager::MAX_LIFETIME);
    tokio::time::advance(Duration::from_secs(23 * 3600)).await;
    assert_eq!(token(&tokens).await.0, "Bearer access-1", "still valid after 23 hours");
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(token(&tokens).await.0, "Bearer access-2", "renewed within the day");
    for bad in [r#""expires_in":-5"#, r#""expires_in":"soon""#, r#""expires_in":null"#] {
        let a = parse_answer(format!(r#"{{"access_token":"tok",{bad}}}"#).as_bytes()).expect("answer");
        assert_eq!(a.expires_in, None, "{bad}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_zero_expires_in_does_not_make_every_request_ask_for_a_token() {
    let endpoint = FakeEndpoint::new(Duration::ZERO);
    let tokens = client_credentials(&endpoint);
    for _ in 0..10 {
        assert_eq!(token(&tokens).await.0, "Bearer access-1");
        tokio::time::advance(Duration::from_secs(60)).await;
    }
    assert_eq!(endpoint.grants().len(), 1, "one token for ten minutes of requests");
    assert_eq!(tokens.sign_in().await.expect("info").lifetime, DEFAULT_LIFETIME);
}

proptest::proptest! {
    #![proptest_config(crate::proptest_config())]

    /// No token answer makes the parser panic.
    #[test]
    fn no_token_answer_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = parse_answer(&body);
    }

    /// Whatever `expires_in` says (a number of any size or sign, a fraction, a string), the answer is read and
    /// the lifetime taken from it is more than zero and at most a day: no clock arithmetic can overflow.
    #[test]
    fn any_expires_in_gives_a_lifetime_within_bounds(
        expires_in in proptest::prop_oneof![
            proptest::num::f64::ANY.prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)),
            proptest::num::i64::ANY.prop_map(serde_json::Value::from),
            proptest::num::u64::ANY.prop_map(serde_json::Value::from),
            "\\PC{0,24}".prop_map(serde_json::Value::from),
        ],
    ) {
        let body = serde_json::json!({"access_token": "tok", "token_type": "Bearer", "expires_in": expires_in});
        let answer = parse_answer(body.to_string().as_bytes());
        proptest::prop_assert!(answer.is_ok(), "{:?}", answer.err());
        if let Ok(answer) = answer {
            let lifetime = super::token_manager::sane_lifetime(answer.expires_in);
            proptest::prop_assert!(!lifetime.is_zero() && lifetime <= Duration::from_secs(24 * 3600), "{:?}", lifetime);
            proptest::prop_assert!(Instant::now().checked_add(lifetime).is_some());
        }
    }
}
