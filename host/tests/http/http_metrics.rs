//! `/metrics` on the HTTP listener and on the admin listener beside it: behind the
//! `/mcp` token, and free of session ids.

use std::process::Command;

use crate::http_support::{
    INITIALIZE, Proc, free_port, full_server, http_get, interpose_bin, messages_in, post_mcp,
    prometheus_samples, sample_value, send_for_text,
};

const TOKEN_VAR: &str = "INTERPOSE_TEST_METRICS_TOKEN";
const TOKEN: &str = "metrics-test-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn metrics_on_the_http_listener_take_the_token_and_name_no_session() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(interpose_bin());
    command
        .args(["run", "--listen", &format!("http://{addr}")])
        .args(["--auth-token-env", TOKEN_VAR, "--name", "full"])
        .args(["--admin", "127.0.0.1:0", "--"])
        .args(full_server())
        .env(TOKEN_VAR, TOKEN);
    // The admin listener binds first; the HTTP listener's line comes after.
    let proxy = Proc::start("interpose", command, "(Streamable HTTP)");
    let output = proxy.output();
    let admin = output
        .split("admin listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin address in:\n{output}"))
        .to_owned();
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();

    let (status, session, body) =
        send_for_text(post_mcp(&client, &base, INITIALIZE).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let session = session.expect("a session id");
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
    let (status, _, body) = send_for_text(
        post_mcp(&client, &base, call)
            .bearer_auth(TOKEN)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(messages_in(&body)[0]["result"]["content"][0]["text"], "hi");

    let (status, _) = http_get(&addr, "/metrics", None);
    assert_eq!(status, 401, "/metrics takes the token /mcp takes");
    let (status, _) = http_get(&addr, "/metrics", Some("not-the-token"));
    assert_eq!(status, 401);
    // The probes stay open, as before.
    assert_eq!(http_get(&addr, "/healthz", None).0, 200);

    let (status, text) = http_get(&addr, "/metrics", Some(TOKEN));
    assert_eq!(status, 200, "{text}");
    assert!(
        !text.contains(&session),
        "a session id in the scrape:\n{text}"
    );
    assert!(
        !text.contains("http-1"),
        "a session label in the scrape:\n{text}"
    );
    let samples = prometheus_samples(&text);
    // The admin listener serves the same registry, behind the same token.
    assert_eq!(http_get(&admin, "/metrics", None).0, 401);
    assert_eq!(http_get(&admin, "/readyz", None).0, 200);
    let (status, admin_text) = http_get(&admin, "/metrics", Some(TOKEN));
    assert_eq!(status, 200);
    let admin_samples = prometheus_samples(&admin_text);
    let requests = |samples| {
        sample_value(
            samples,
            "interpose_messages_total",
            &[("direction", "to-server"), ("kind", "request")],
        )
    };
    assert_eq!(requests(&samples), Some(2.0));
    assert_eq!(requests(&admin_samples), Some(2.0));
    let open = sample_value(
        &samples,
        "interpose_sessions_open",
        &[("transport", "streamable-http")],
    );
    assert_eq!(open, Some(1.0));
    let ops = sample_value(
        &samples,
        "mcp_server_operation_duration_seconds_count",
        &[
            ("mcp_method_name", "tools/call"),
            ("gen_ai_tool_name", "_OTHER"),
        ],
    );
    // The client called without listing the tools: the name is not a label.
    assert_eq!(ops, Some(1.0), "{samples:#?}");
}
