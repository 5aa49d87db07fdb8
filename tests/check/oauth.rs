//! OAuth over real HTTP: wiremock where the exact requests matter, the simulated instance (which
//! issues, expires and revokes tokens as the instance does) where a whole cycle runs.

use std::time::Duration;

use midwatch::config::{Config, ProcessEnvironment};
use midwatch::cycle::{CheckOptions, Cycle, Outcome};
use midwatch::domain::Status;
use midwatch::snow::ApiErrorKind;
use midwatch::snow::query::Query;
use midwatch::writeback::WriteBack;
use midwatch_sim::{Dataset, FakeInstance, OAuthApp};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::*;

pub(crate) const CLIENT_ID: &str = "3f2a8c1e9b7d4e6fa0c5d2b8e1f4a7c9";
pub(crate) const CLIENT_SECRET: &str = "cl1ent+s3cret/=&x";
const TOKEN_PATH: &str = "/oauth_token.do";
const UNAUTHORIZED: &str = r#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#;

/// `[instance]` for `method` (`oauth_client_credentials` or `oauth_password`) at `url`.
pub(crate) fn oauth_config_text(url: &str, method: &str) -> String {
    let account = match method {
        "oauth_password" => format!("user = \"{USER}\"\npassword = \"{PASSWORD}\"\n"),
        _ => String::new(),
    };
    format!(
        "[instance]\nurl = \"{url}\"\nname = \"acme\"\nauth = \"{method}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = \"{CLIENT_SECRET}\"\n{account}timeout = \"5s\"\n"
    )
}

fn oauth_config(url: &str, method: &str) -> Config {
    Config::parse("test.toml", &oauth_config_text(url, method), &ProcessEnvironment).expect("valid OAuth config")
}

fn token_body(token: &str, expires_in: u64) -> String {
    format!(r#"{{"access_token":"{token}","scope":"useraccount","token_type":"Bearer","expires_in":{expires_in}}}"#)
}

async fn mount_token(server: &MockServer, body: &str, times: Option<u64>, priority: u8) {
    let mock = Mock::given(method("POST")).and(path(TOKEN_PATH)).respond_with(json_response(200, body));
    let mock = match times {
        Some(n) => mock.up_to_n_times(n),
        None => mock,
    };
    mock.with_priority(priority).mount(server).await;
}

/// Every demo table, answered only for `Authorization: Bearer <token>`; any other request is refused with 401.
async fn mount_tables_for(server: &MockServer, token: &str) {
    for table in TABLES {
        Mock::given(method("GET"))
            .and(path(format!("/api/now/table/{table}")))
            .and(header("authorization", format!("Bearer {token}").as_str()))
            .respond_with(json_response(200, &fixture(&format!("demo/{table}.json"))))
            .mount(server)
            .await;
    }
    // An instance without the Aggregate API for this account: the read plan falls back to the Table API.
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("^/api/now/stats/"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(json_response(
            404,
            r#"{"error":{"message":"Requested URI does not represent any resource","detail":null},"status":"failure"}"#,
        ))
        .mount(server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(json_response(401, UNAUTHORIZED))
        .with_priority(10)
        .mount(server)
        .await;
}

/// A token endpoint that issues tokens, and an API that refuses every one of them (401).
pub(crate) async fn mount_token_and_refuse_every_api_call(server: &MockServer) {
    mount_token(server, &token_body("tok-refused", 1799), None, 5).await;
    mount_tables_for(server, "never-issued").await;
}

async fn received(server: &MockServer) -> (Vec<Request>, Vec<Request>) {
    server.received_requests().await.unwrap_or_default().into_iter().partition(|r| r.url.path() == TOKEN_PATH)
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body).into_owned().collect()
}

fn authorization(request: &Request) -> String {
    request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------------------------
// End to end

#[tokio::test]
async fn client_credentials_send_one_form_encoded_token_request_and_a_bearer_token_on_every_api_call() {
    let server = MockServer::start().await;
    mount_token(&server, &token_body("tok-cc-1", 1799), None, 5).await;
    mount_tables_for(&server, "tok-cc-1").await;
    let config = oauth_config(&server.uri(), "oauth_client_credentials");
    let client = client(&config);
    let opts = CheckOptions { no_write: true, ..CheckOptions::from_config(&config) };
    let outcome = Cycle::new(&config, &client, &opts).check(reference_now()).await.expect("a cycle with OAuth");
    assert_eq!(outcome.report.status, Status::Critical, "the demo scenario's findings");
    for shown in [format!("{config:?}"), format!("{client:?}"), format!("{:?}", client.auth())] {
        assert!(!shown.contains(CLIENT_SECRET) && !shown.contains("tok-cc-1"), "{shown}");
    }

    let (tokens, api) = received(&server).await;
    assert_eq!(tokens.len(), 1, "one token for the whole cycle");
    let token = &tokens[0];
    assert_eq!(
        token.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded"),
        "a JSON body gives an unspecified error"
    );
    let mut fields = form(token);
    fields.sort();
    assert_eq!(
        fields,
        [
            ("client_id".to_string(), CLIENT_ID.to_string()),
            ("client_secret".to_string(), CLIENT_SECRET.to_string()),
            ("grant_type".to_string(), "client_credentials".to_string()),
        ]
    );
    assert!(api.len() >= 8, "every table was read: {}", api.len());
    for request in &api {
        assert_eq!(authorization(request), "Bearer tok-cc-1", "{}", request.url);
    }
    assert_eq!(client.auth().token_requests(), 1);
}

async fn oauth_site(app: OAuthApp, method: &str) -> (FakeInstance, Config, midwatch::snow::Client) {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    instance.enable_oauth(app);
    let config = oauth_config(&instance.url(), method);
    let client = client(&config);
    (instance, config, client)
}

async fn full_cycle(config: &Config, client: &midwatch::snow::Client) -> Outcome {
    Cycle::new(config, client, &CheckOptions::from_config(config)).check(reference_now()).await.expect("a cycle")
}

fn created(outcome: &Outcome) -> usize {
    match &outcome.write_back {
        WriteBack::Applied { applied, .. } => applied.created.len() + applied.counted.len(),
        other => panic!("not applied: {other:?}"),
    }
}

/// Every API request the instance answered, as `(path, status)`, without the token requests.
fn api_statuses(instance: &FakeInstance) -> Vec<(String, u16)> {
    instance.requests().into_iter().filter(|r| r.path != TOKEN_PATH).map(|r| (r.path, r.status)).collect()
}

#[tokio::test]
async fn a_full_cycle_with_each_grant_reads_and_writes_through_the_batch_api_with_tokens_only() {
    for (method, grant) in [("oauth_client_credentials", "client_credentials"), ("oauth_password", "password")] {
        // The simulated instance refuses Basic auth: every answered API call carried a token it issued.
        let (instance, config, client) = oauth_site(OAuthApp::new(CLIENT_ID, CLIENT_SECRET), method).await;
        let outcome = full_cycle(&config, &client).await;
        assert_eq!(created(&outcome), 5, "{method}: the five findings written");
        let statuses = api_statuses(&instance);
        assert!(statuses.iter().any(|(p, _)| p == "/api/now/v1/batch"), "{method}: {statuses:?}");
        assert!(statuses.iter().all(|(_, s)| (200..300).contains(s)), "{method}: {statuses:?}");
        assert_eq!(instance.token_requests(), [(grant.to_string(), 200)], "{method}");
    }
}

#[tokio::test]
async fn a_token_that_expires_during_a_cycle_is_renewed_without_failing_a_request() {
    // 2 s tokens, renewed in their last half second; every answer takes 300 ms, so the cycle outlives several.
    let app = OAuthApp { access_lifetime: Duration::from_secs(2), ..OAuthApp::new(CLIENT_ID, CLIENT_SECRET) };
    let (instance, config, client) = oauth_site(app, "oauth_client_credentials").await;
    instance.set_latency(Duration::from_millis(300));
    let outcome = full_cycle(&config, &client).await;
    assert_eq!(created(&outcome), 5);
    let statuses = api_statuses(&instance);
    assert!(statuses.iter().all(|(_, s)| (200..300).contains(s)), "no request failed: {statuses:?}");
    let tokens = instance.token_requests();
    assert!(tokens.len() >= 2, "the token was renewed during the cycle: {tokens:?}");
    assert!(tokens.iter().all(|(grant, status)| grant == "client_credentials" && *status == 200), "{tokens:?}");
    assert_eq!(client.auth().token_requests(), tokens.len() as u64);
}

// ---------------------------------------------------------------------------------------------------------------
// A 401 on an API call

#[tokio::test]
async fn a_401_on_a_valid_looking_token_renews_it_once_repeats_the_request_once_and_succeeds() {
    let server = MockServer::start().await;
    mount_token(&server, &token_body("tok-1", 1799), Some(1), 1).await;
    mount_token(&server, &token_body("tok-2", 1799), None, 5).await;
    // tok-1 looks valid (1799 s) but the instance refuses it; tok-2 is accepted.
    mount_tables_for(&server, "tok-2").await;
    let client = client(&oauth_config(&server.uri(), "oauth_client_credentials"));
    client.read_first("sys_user", &Query::default(), &["sys_id"]).await.expect("the repeat succeeds");
    let (tokens, api) = received(&server).await;
    assert_eq!(tokens.len(), 2, "one renewal");
    assert_eq!(api.iter().map(authorization).collect::<Vec<_>>(), ["Bearer tok-1", "Bearer tok-2"], "one repeat");
}

#[tokio::test]
async fn a_second_401_fails_the_request_with_a_clear_message_and_no_loop() {
    let server = MockServer::start().await;
    mount_token(&server, &token_body("tok-1", 1799), None, 5).await;
    mount_tables_for(&server, "never-issued").await;
    let client = client(&oauth_config(&server.uri(), "oauth_client_credentials"));
    let err = client.read_first("sys_user", &Query::default(), &["sys_id"]).await.expect_err("refused twice");
    assert!(matches!(err.kind(), ApiErrorKind::TokenRefused { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "the instance refused a freshly issued OAuth token on sys_user (HTTP 401 again after renewing it)"
        ),
        "{text}"
    );
    assert!(text.contains("the OAuth Application User of client_id \"3f2a8c1e9b7d4e6fa0c5d2b8e1f4a7c9\""), "{text}");
    assert!(text.contains("REST API access policy"), "says what to check: {text}");
    let (tokens, api) = received(&server).await;
    assert_eq!((tokens.len(), api.len()), (2, 2), "one renewal and one repeat, then it stops");
}

#[tokio::test]
async fn a_second_401_makes_check_unknown_exit_3_through_the_binary() {
    let server = MockServer::start().await;
    mount_token(&server, &token_body("tok-1", 1799), None, 5).await;
    mount_tables_for(&server, "never-issued").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("midwatch.toml");
    std::fs::write(&file, oauth_config_text(&server.uri(), "oauth_client_credentials")).expect("write config");
    let (code, stdout, stderr) = run_binary(&["check", "--config", file.to_str().expect("utf-8")]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.starts_with("MIDWATCH UNKNOWN - the instance refused a freshly issued OAuth token on "), "{stdout}");
    let (tokens, api) = received(&server).await;
    // The first round reads three tables at once: each may see the refusal, all share the renewals.
    assert!(api.len() <= 6, "at most one repeat per request: {} API requests", api.len());
    assert!(tokens.len() <= 4, "no loop of token requests: {}", tokens.len());
    assert!(!stdout.contains(CLIENT_SECRET) && !stderr.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn revoked_tokens_are_renewed_once_within_a_cycle_and_the_cycle_succeeds() {
    let (instance, config, client) =
        oauth_site(OAuthApp::new(CLIENT_ID, CLIENT_SECRET), "oauth_client_credentials").await;
    full_cycle(&config, &client).await;
    instance.revoke_access_tokens();
    let outcome = full_cycle(&config, &client).await;
    assert_eq!(created(&outcome), 5, "counted, after the renewal");
    assert_eq!(instance.token_requests().len(), 2, "the revoked token was replaced once");
}

// ---------------------------------------------------------------------------------------------------------------
// Password grant and refresh token

#[tokio::test]
async fn the_password_grant_uses_the_refresh_token_and_falls_back_to_a_new_grant_when_it_is_refused() {
    let (instance, config, client) = oauth_site(OAuthApp::new(CLIENT_ID, CLIENT_SECRET), "oauth_password").await;
    full_cycle(&config, &client).await;
    // The access token is refused: renewed with the refresh token.
    instance.revoke_access_tokens();
    full_cycle(&config, &client).await;
    // Both are refused: the refresh fails, a new password grant follows.
    instance.revoke_access_tokens();
    instance.revoke_refresh_tokens();
    let outcome = full_cycle(&config, &client).await;
    assert_eq!(created(&outcome), 5);
    assert_eq!(
        instance.token_requests(),
        [
            ("password".to_string(), 200),
            ("refresh_token".to_string(), 200),
            ("refresh_token".to_string(), 401),
            ("password".to_string(), 200),
        ]
    );
    let bodies: Vec<String> =
        instance.requests().into_iter().filter(|r| r.path == TOKEN_PATH).map(|r| r.body).collect();
    assert!(bodies[0].contains("username=svc.midwatch"), "{bodies:?}");
    assert!(bodies[1].contains("refresh_token=%5Bredacted%5D"), "the refresh grant carries the token: {bodies:?}");
}

#[tokio::test]
async fn a_refresh_grant_sends_the_refresh_token_and_keeps_it_when_the_answer_has_none() {
    let server = MockServer::start().await;
    let first = r#"{"access_token":"tok-1","refresh_token":"ref-1","scope":"useraccount","token_type":"Bearer","expires_in":1}"#;
    mount_token(&server, first, Some(1), 1).await;
    mount_token(&server, &token_body("tok-2", 1), None, 5).await;
    for token in ["tok-1", "tok-2"] {
        Mock::given(method("GET"))
            .and(path("/api/now/table/sys_user"))
            .and(header("authorization", format!("Bearer {token}").as_str()))
            .respond_with(json_response(200, r#"{"result":[]}"#))
            .mount(&server)
            .await;
    }
    let client = client(&oauth_config(&server.uri(), "oauth_password"));
    for _ in 0..3 {
        client.read_first("sys_user", &Query::default(), &["sys_id"]).await.expect("read");
        // A 1 s token is renewed after 0.75 s.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    let (tokens, _) = received(&server).await;
    let grants: Vec<Vec<(String, String)>> = tokens.iter().map(form).collect();
    let value = |f: &[(String, String)], k: &str| f.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(value(&grants[0], "grant_type").as_deref(), Some("password"));
    assert_eq!(value(&grants[0], "username").as_deref(), Some(USER));
    assert_eq!(value(&grants[0], "password").as_deref(), Some(PASSWORD));
    for refresh in &grants[1..] {
        assert_eq!(value(refresh, "grant_type").as_deref(), Some("refresh_token"));
        assert_eq!(value(refresh, "refresh_token").as_deref(), Some("ref-1"), "the first refresh token, kept");
        assert_eq!(value(refresh, "password"), None, "no password after the first grant");
    }
    assert_eq!(grants.len(), 3);
}

// ---------------------------------------------------------------------------------------------------------------
// Concurrency

#[tokio::test]
async fn concurrent_requests_during_expiry_cause_one_token_request() {
    let server = MockServer::start().await;
    mount_token(&server, &token_body("tok-1", 1), Some(1), 1).await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(json_response(200, &token_body("tok-2", 1799)).set_delay(Duration::from_millis(300)))
        .mount(&server)
        .await;
    for token in ["tok-1", "tok-2"] {
        Mock::given(method("GET"))
            .and(path("/api/now/table/sys_user"))
            .and(header("authorization", format!("Bearer {token}").as_str()))
            .respond_with(json_response(200, r#"{"result":[]}"#))
            .mount(&server)
            .await;
    }
    let mut config = oauth_config(&server.uri(), "oauth_client_credentials");
    config.instance.concurrency = 16;
    let client = client(&config);
    client.read_first("sys_user", &Query::default(), &["sys_id"]).await.expect("first read");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let all = Query::default();
    let reads = (0..16).map(|_| client.read_first("sys_user", &all, &["sys_id"]));
    for result in futures::future::join_all(reads).await {
        result.expect("read after expiry");
    }
    let (tokens, api) = received(&server).await;
    assert_eq!(tokens.len(), 2, "16 requests found the token expired; one renewal");
    assert_eq!(api.iter().filter(|r| authorization(r) == "Bearer tok-2").count(), 16);
}

// ---------------------------------------------------------------------------------------------------------------
// Token endpoint failures

async fn token_failure(method: &str, answer: ResponseTemplate) -> String {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST")).and(path(TOKEN_PATH)).respond_with(answer).mount(&server).await;
    let client = client(&oauth_config(&server.uri(), method));
    let err = client.read_first("sys_user", &Query::default(), &["sys_id"]).await.expect_err("no token");
    assert!(matches!(err.kind(), ApiErrorKind::Token { .. }), "{err:?}");
    let (_, api) = received(&server).await;
    assert!(api.is_empty(), "no API call without a token");
    let text = err.to_string();
    let encoded: String = url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
    for secret in [CLIENT_SECRET, PASSWORD, encoded.as_str()] {
        assert!(!text.contains(secret), "{text}");
    }
    text
}

const ACCESS_DENIED: &str = r#"{"error_description":"access_denied","error":"server_error"}"#;

#[tokio::test]
async fn each_token_endpoint_failure_says_what_to_check_on_the_instance() {
    let cc = "oauth_client_credentials";
    let text = token_failure(cc, json_response(401, ACCESS_DENIED)).await;
    for needle in [
        "the instance refused the OAuth client credentials grant for client_id \"3f2a8c1e9b7d4e6fa0c5d2b8e1f4a7c9\" \
         (HTTP 401 server_error: access_denied)",
        "match the instance's Application Registry entry (System OAuth > Application Registry)",
        "glide.oauth.inbound.client.credential.grant_type.enabled exists and is true (Washington DC or later)",
        "OAuth Application User is set to an active user",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }

    let text = token_failure("oauth_password", json_response(401, ACCESS_DENIED)).await;
    for needle in [
        "the instance refused the OAuth password grant for client_id \"3f2a8c1e9b7d4e6fa0c5d2b8e1f4a7c9\" and user \
         \"svc.midwatch\" (HTTP 401 server_error: access_denied)",
        "the user's password",
        "active and not locked out",
        "must not be \"Web service access only\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }

    let unsupported = r#"{"error_description":"Unsupported grant type","error":"unsupported_grant_type"}"#;
    let text = token_failure(cc, json_response(400, unsupported)).await;
    assert!(
        text.starts_with(
            "the instance does not offer the OAuth client credentials grant (HTTP 400 unsupported_grant_type): it \
             needs Washington DC or later"
        ),
        "{text}"
    );
    assert!(text.contains("auth = \"oauth_password\""), "names the alternative: {text}");

    let hibernating = "<!DOCTYPE html><html><head><title>Instance Hibernating page</title></head><body></body></html>";
    let text = token_failure(cc, ResponseTemplate::new(200).set_body_raw(hibernating, "text/html")).await;
    assert!(text.contains("answered with an HTML page instead of a token (HTTP 200)"), "{text}");
    assert!(text.contains("hibernating (wake it up"), "{text}");

    let redirect = ResponseTemplate::new(302).insert_header("location", "https://signon.service-now.com/x?ticket=1");
    let text = token_failure(cc, redirect).await;
    assert!(text.contains("redirected to https://signon.service-now.com/x (HTTP 302)"), "{text}");

    let text = token_failure(cc, json_response(404, r#"{"error":{"message":"Not Found","detail":null}}"#)).await;
    assert!(text.starts_with("no OAuth token endpoint at "), "{text}");
    assert!(text.contains("com.snc.platform.security.oauth.is.active"), "{text}");

    let text = token_failure(cc, json_response(200, r#"{"scope":"useraccount","token_type":"Bearer"}"#)).await;
    assert!(text.contains("is not a token (no access_token)"), "{text}");

    // A proxy's error page that echoes the request: the secret is not quoted.
    let encoded: String = url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
    let echo = format!("bad request: client_secret={encoded} ({CLIENT_SECRET})");
    let text = token_failure(cc, ResponseTemplate::new(400).set_body_raw(echo, "text/plain")).await;
    assert!(text.contains("(HTTP 400 bad request: client_secret=[redacted] ([redacted]))"), "{text}");
    // The same echo inside a JSON answer, every character escaped: redacted once decoded.
    let escaped: String = CLIENT_SECRET.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let body = format!(r#"{{"error":"invalid_request","error_description":"echo {escaped}"}}"#);
    let text = token_failure(cc, json_response(400, &body)).await;
    assert!(text.contains("(HTTP 400 invalid_request: echo [redacted])"), "{text}");

    let text = token_failure(cc, json_response(400, r#"{"error":"invalid_request","error_description":"bad"}"#)).await;
    assert!(
        text.starts_with("the instance refused the OAuth client_credentials grant (HTTP 400 invalid_request: bad)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_gateway_error_of_the_token_endpoint_is_retried_like_a_read() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(503).set_body_raw("<html>Service Unavailable</html>", "text/html"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_token(&server, &token_body("tok-1", 1799), None, 5).await;
    mount_tables_for(&server, "tok-1").await;
    let client = client(&oauth_config(&server.uri(), "oauth_client_credentials"));
    client.read_first("sys_user", &Query::default(), &["sys_id"]).await.expect("the third token request succeeds");
    let (tokens, _) = received(&server).await;
    assert_eq!(tokens.len(), 3);
}

// ---------------------------------------------------------------------------------------------------------------
// config check and the demo

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_obtains_a_token_says_which_grant_worked_and_probes_the_tables_with_it() {
    for (method, grant) in [("oauth_client_credentials", "client_credentials"), ("oauth_password", "password")] {
        let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
        instance.enable_oauth(OAuthApp::new(CLIENT_ID, CLIENT_SECRET));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("midwatch.toml");
        std::fs::write(&file, oauth_config_text(&instance.url(), method)).expect("write config");
        let path = file.display().to_string();
        let (code, stdout, stderr) =
            tokio::task::spawn_blocking(move || run_binary(&["config", "check", "--config", &path]))
                .await
                .expect("midwatch config check");
        assert_eq!(code, 0, "{method}: {stdout}{stderr}");
        let expected = format!(
            "note: auth = \"{method}\": the instance issued an OAuth token with the {grant} grant, valid for 30m \
             (expires_in 1800 s)"
        );
        assert!(stdout.contains(&expected), "{method}: {stdout}");
        assert!(stdout.contains("the instance answers and the account can read every table"), "{stdout}");
        assert_eq!(instance.token_requests(), [(grant.to_string(), 200)], "the tables were probed with that token");
        assert!(api_statuses(&instance).iter().all(|(_, s)| (200..300).contains(s)), "{:?}", api_statuses(&instance));
    }
}

#[tokio::test]
async fn config_check_names_a_refused_grant_as_its_one_problem() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(json_response(401, ACCESS_DENIED))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("midwatch.toml");
    std::fs::write(&file, oauth_config_text(&server.uri(), "oauth_client_credentials")).expect("write config");
    let (code, stdout, _) = run_binary(&["config", "check", "--config", file.to_str().expect("utf-8")]);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("problem: the instance refused the OAuth client credentials grant"), "{stdout}");
    assert!(stdout.contains("1 problem(s) found"), "the tables are not probed without a token: {stdout}");
}

#[test]
fn the_demo_runs_with_each_oauth_grant() {
    for (auth, grant) in [
        ("oauth", "client_credentials"),
        ("oauth_client_credentials", "client_credentials"),
        ("oauth_password", "password"),
    ] {
        let (code, stdout, stderr) = run_binary(&["demo", "--auth", auth, "--detail", "summary"]);
        assert_eq!(code, 2, "{auth}: {stderr}");
        assert!(stdout.starts_with("MIDWATCH CRITICAL - 5 findings"), "{auth}: {stdout}");
        assert!(stderr.contains("the simulated instance refuses Basic auth"), "{auth}: {stderr}");
        assert!(stderr.contains(&format!("1 OAuth token request(s) over both cycles ({grant})")), "{auth}: {stderr}");
    }
}

#[tokio::test]
async fn an_oversized_token_answer_is_refused_without_reading_it_whole() {
    use std::io::Write as _;
    let server = MockServer::start().await;
    // 64 MiB of padding compress to a few KiB: gzip is decompressed as it is read, and the reading stops.
    let padding = " ".repeat(64 * 1024 * 1024);
    let body = format!(r#"{{"access_token":"tok","token_type":"Bearer","expires_in":1799,"x":"{padding}"}}"#);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).expect("gzip");
    let compressed = gz.finish().expect("gzip");
    assert!(compressed.len() < 1024 * 1024);
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_raw(compressed, "application/json;charset=UTF-8"),
        )
        .mount(&server)
        .await;
    let client = client(&oauth_config(&server.uri(), "oauth_client_credentials"));
    let err = client.read_first("sys_user", &Query::default(), &["sys_id"]).await.expect_err("no token");
    assert!(err.to_string().contains("larger than 64 KiB"), "{err}");
}
