//! What arrives: the message, its headers, both alternatives, escaping and links.

use super::*;

#[tokio::test]
async fn the_message_arrives_with_both_alternatives_the_recipients_escaped_html_and_links() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let mut r = report(vec![
        finding("<script>x</script>", Category::Authentication),
        finding("a&b", Category::Network),
        finding("plain.user", Category::Configuration),
    ]);
    let mut links = links();
    links.issue_ids.insert(message_for("a&b", Category::Network), "ec01000000000000000000000000000a".into());
    r.user_ids.insert("a&b".into(), "b0b0000000000000000000000000000b".into());
    // A sys_id that is not one (a hostile answer) gets no link at all.
    r.user_ids.insert("plain.user".into(), "x^NQuser_name=admin".into());

    let notice = Notice { report: &r, links: &links, now: now() };
    let outcome = notify(&cfg, dir.path(), &notice, Mode::Send, no_deadline()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    assert_eq!(outcome.summary(), "email sent to 2 recipients");

    let got = sink.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.from, "midwatch@acme.example");
    assert_eq!(m.to, vec!["alice@acme.example".to_string(), "bob@acme.example".to_string()]);
    let h = headers(&m.data);
    assert_eq!(subject(m), "[midwatch] CRITICAL acme: 3 MID Server user issues (3 new)");
    assert_eq!(header(&h, "To"), vec!["Alice <alice@acme.example>, bob@acme.example"]);
    assert!(message_id(m).starts_with("<midwatch.20261122T120000Z.") && message_id(m).ends_with("@acme.example>"));
    assert_eq!(header(&h, "Date"), vec!["Sun, 22 Nov 2026 12:00:00 +0000"]);
    assert_eq!(header(&h, "Auto-Submitted"), vec!["auto-generated"]);

    let (text, html) = text_and_html(m);
    // Text: the names as they are, the documented message, remediation, links.
    assert!(flat(&text).contains("Login authentication failure for User <script>x</script> associated"), "{text}");
    assert!(text.contains("Check the password of the MID Server user"));
    // Links go by sys_id only: no user name or message in a link's query.
    assert!(
        text.contains("https://acme.service-now.com/sys_user.do?sys_id=b0b0000000000000000000000000000b"),
        "{text}"
    );
    assert!(
        text.contains("https://acme.service-now.com/ecc_agent_issue.do?sys_id=ec01000000000000000000000000000a"),
        "{text}"
    );
    assert!(text.contains("https://acme.service-now.com/ecc_agent.do?sys_id=ec0a0000000000000000000000000001"));
    assert!(!text.contains("sysparm_query") && !text.contains("user_name") && !text.contains("NQ"), "{text}");
    assert!(!html.contains("sysparm_query") && !html.contains("user_name="), "{html}");
    for line in text.lines().filter(|l| !l.contains("https://")) {
        assert!(line.chars().count() <= 76, "line longer than 76 columns: {line:?}");
    }
    // HTML: escaped everywhere, links as anchors.
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(html.contains("User a&amp;b is associated with 1 down MID Server."));
    assert!(!html.contains("a&b"), "an unescaped ampersand: {html}");
    assert!(html.contains(
        "<a href=\"https://acme.service-now.com/sys_user.do?sys_id=b0b0000000000000000000000000000b\">user a&amp;b</a>"
    ));
    assert!(
        html.contains("<a href=\"https://acme.service-now.com/ecc_agent.do?sys_id=ec0a0000000000000000000000000001\">")
    );
}

#[tokio::test]
async fn a_user_name_with_crlf_cannot_add_a_header() {
    let sink = SmtpSink::start(None).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = email_config(sink.port());
    let mut evil = report(vec![finding("mid\r\nBcc: evil@x\r\n\r\n", Category::Authentication)]);
    evil.instance = "acme\r\nBcc: evil@x".into();
    let outcome = cycle(&cfg, dir.path(), &evil, now()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.to, vec!["alice@acme.example".to_string(), "bob@acme.example".to_string()], "envelope unchanged");
    let h = headers(&m.data);
    assert!(header(&h, "Bcc").is_empty(), "no Bcc header: {h}");
    assert!(!m.data.contains("\r\nBcc:"), "no line starts with Bcc: anywhere in the message");
    assert!(!h.to_ascii_lowercase().contains("evil@x") || subject(m).contains("Bcc: evil@x"));
    assert!(!subject(m).contains('\r') && !subject(m).contains('\n'));
    let (text, html) = text_and_html(m);
    assert!(flat(&text).contains("User mid\\r\\nBcc: evil@x\\r\\n\\r\\n associated"), "escaped in text: {text}");
    assert!(flat(&text).contains("on acme\\r\\nBcc: evil@x Instance: "), "and the instance name: {text}");
    assert!(html.contains("mid\\r\\nBcc: evil@x"), "escaped in html");
}

#[tokio::test]
async fn the_sink_saves_an_eml_file_when_asked() {
    let save = tempfile::tempdir().expect("tempdir");
    let sink = SmtpSink::start(Some(save.path().join("mail"))).await.expect("sink");
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome =
        cycle(&email_config(sink.port()), dir.path(), &report(vec![finding("u1", Category::Network)]), now()).await;
    assert!(matches!(outcome.status, EmailStatus::Sent { .. }), "{outcome:?}");
    let files = sink.saved_files();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let eml = std::fs::read_to_string(&files[0]).expect("eml");
    assert!(eml.contains("Subject: [midwatch] CRITICAL acme: 1 MID Server user issue (1 new)"));
    assert!(eml.contains("Content-Type: multipart/alternative"));
}
