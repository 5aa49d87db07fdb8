//! One redaction for every quoted body: a gateway page that echoes the request's credentials reaches the
//! status line, the JSON report and the log without them.

use base64::Engine as _;

use crate::support::*;

/// The test account's password in the form a page may show it, keyed by the fixture's placeholder.
fn forms() -> Vec<(&'static str, String)> {
    let json = serde_json::to_string(PASSWORD).expect("json");
    vec![
        ("{BASIC}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))),
        ("{PASSWORD_JSON}", json.trim_matches('"').replace('-', "\\u002d")),
        ("{PASSWORD_FORM}", url::form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect()),
        ("{PASSWORD}", PASSWORD.to_string()),
    ]
}

#[tokio::test]
async fn a_gateway_page_echoing_the_credentials_is_quoted_without_them() {
    let mut page = fixture("answers/gateway_echo_400.txt");
    for (placeholder, value) in forms() {
        page = page.replace(placeholder, &value);
    }
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/api/now/table/ecc_agent"))
        .respond_with(wiremock::ResponseTemplate::new(400).set_body_raw(page, "text/plain"))
        .mount(&server)
        .await;
    mount_demo_tables(&server, &["ecc_agent"]).await;
    let (_dir, file) = config_file(&server.uri());
    let file = file.to_string_lossy().into_owned();
    for format in ["text", "json"] {
        let (code, stdout, stderr) = run_binary(&["check", "--format", format, "--config", &file]);
        assert_eq!(code, 3, "{stdout}{stderr}");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        for secret in [PASSWORD, basic.as_str()] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} leaked:\n{stdout}\n{stderr}");
        }
        // The JSON report quotes the same text as a JSON string.
        let stdout = if format == "json" { stdout.replace("\\\"", "\"") } else { stdout };
        assert!(
            stdout.contains("400 Bad Request (request rejected by policy)"),
            "the page is still quoted: {stdout}\n{stderr}"
        );
        assert!(stdout.contains("credential [redacted] / json \"[redacted]\" / form [redacted]"), "{stdout}");
        assert!(stdout.contains("Authorization: [redacted]"), "{stdout}");
    }
}
