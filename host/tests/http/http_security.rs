//! The HTTP listener's defences, against the real binary: Origin and Host checks (DNS
//! rebinding), the bearer token, the body size limit, unguessable session ids, what
//! credentials reach the backend, and the refusal to listen beyond loopback.

use crate::http_support;

use std::process::Command;

use http_support::*;

/// POSTs `body` to /mcp with `headers`; returns the status, session id and body.
async fn post(base: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let mut request = post_mcp(&reqwest::Client::new(), base, body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let session = http_support::session_id(&response);
    (status, session, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn foreign_origin_and_rebinding_host_are_forbidden() {
    let (_proxy, base) = proxy_to_full_server(&["--allow-origin", "https://app.example"]);
    let (status, _, body) = post(&base, INITIALIZE, &[("origin", "https://evil.example")]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("origin not allowed"), "{body}");
    let (status, _, _) = post(&base, INITIALIZE, &[("host", "evil.example:80")]).await;
    assert_eq!(status, 403, "a rebinding Host is refused");
    let (status, _, body) = post(&base, INITIALIZE, &[("origin", "http://localhost:5173")]).await;
    assert_eq!(status, 200, "a loopback origin is allowed: {body}");
    let (status, _, body) = post(&base, INITIALIZE, &[("origin", "https://app.example")]).await;
    assert_eq!(status, 200, "an allow-listed origin is allowed: {body}");
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let port = free_port();
    let mut command = Command::new(interpose_bin());
    command
        .args(["run", "--listen", &format!("http://127.0.0.1:{port}")])
        .args(["--auth-token-env", "INTERPOSE_TEST_TOKEN"])
        .arg("--")
        .args(full_server())
        .env("INTERPOSE_TEST_TOKEN", "s3cret-token");
    let _proxy = Proc::start("interpose", command, "listening on");
    let base = format!("http://127.0.0.1:{port}");
    let (status, _, _) = post(&base, INITIALIZE, &[]).await;
    assert_eq!(status, 401, "no token");
    let (status, _, _) = post(
        &base,
        INITIALIZE,
        &[("authorization", "Bearer s3cret-tokex")],
    )
    .await;
    assert_eq!(status, 401, "wrong token");
    let (status, _, body) = post(
        &base,
        INITIALIZE,
        &[("authorization", "Bearer s3cret-token")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"protocolVersion\""), "{body}");

    // Health probes need no token: they learn only that the proxy serves.
    for path in ["/healthz", "/readyz"] {
        let probe = reqwest::get(format!("{base}{path}")).await.expect("probe");
        assert_eq!(probe.status(), 200, "{path}");
        assert_eq!(probe.text().await.unwrap(), r#"{"status":"ok"}"#, "{path}");
    }
}

#[tokio::test]
async fn missing_token_variable_is_a_clear_startup_error() {
    let output = Command::new(interpose_bin())
        .args(["run", "--listen", "http://127.0.0.1:1"])
        .args(["--auth-token-env", "INTERPOSE_TEST_UNSET_VARIABLE"])
        .args(["--", "true"])
        .env_remove("INTERPOSE_TEST_UNSET_VARIABLE")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("INTERPOSE_TEST_UNSET_VARIABLE"), "{stderr}");
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let (_proxy, base) = proxy_to_full_server(&["--max-message-bytes", "2000"]);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"pad":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let (status, _, _) = post(&base, &big, &[]).await;
    assert_eq!(status, 413);
    let (status, _, _) = post(&base, INITIALIZE, &[]).await;
    assert_eq!(status, 200, "a message under the limit still goes through");
}

#[tokio::test]
async fn session_ids_are_long_random_and_unrelated() {
    let (_proxy, base) = proxy_to_full_server(&[]);
    let (_, a, _) = post(&base, INITIALIZE, &[]).await;
    let (_, b, _) = post(&base, INITIALIZE, &[]).await;
    let (a, b) = (a.expect("a session id"), b.expect("a session id"));
    for id in [&a, &b] {
        assert!(id.len() >= 32, "128 bits or more: {id}");
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
    }
    let shared = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    assert!(
        shared < 8,
        "ids {a} and {b} share a {shared}-character prefix"
    );
}

#[tokio::test]
async fn unknown_session_and_bad_version_header_are_refused() {
    let (_proxy, base) = proxy_to_full_server(&[]);
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let (status, _, _) = post(&base, list, &[("mcp-session-id", "0123456789abcdef")]).await;
    assert_eq!(
        status, 404,
        "an unknown session is 404, so the client starts a new one"
    );
    // Which versions exist is the backend's verdict; a value that is not visible ASCII
    // cannot even be forwarded, and is refused as a malformed header, naming the request.
    let response = post_mcp(&reqwest::Client::new(), &base, INITIALIZE)
        .header(
            "mcp-protocol-version",
            reqwest::header::HeaderValue::from_bytes(b"2025-11-25\xff").expect("obs-text"),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(
        response.status(),
        400,
        "a malformed MCP-Protocol-Version is 400"
    );
    let body: serde_json::Value = response.json().await.expect("a JSON-RPC error");
    assert_eq!(body["error"]["code"], -32020, "{body}");
    assert_eq!(body["id"], 1, "{body}");
    let (status, _, _) = post(&base, "{not json", &[]).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn client_authorization_never_reaches_the_backend_unless_configured() {
    let record = unique_temp_path("interpose-headers");
    let record_arg = record.display().to_string();
    let (_backend, backend) = python_http_backend(&["--record-headers", &record_arg]);
    let url = format!("{backend}/mcp");

    // Not configured: the backend sees no Authorization at all.
    let (mut plain, base) = proxy(&["--header", "X-Test: from-proxy", "--", &url]);
    let (status, _, _) = post(
        &base,
        INITIALIZE,
        &[("authorization", "Bearer client-secret")],
    )
    .await;
    assert_eq!(status, 200);
    plain.terminate();

    // A configured bearer token replaces it.
    let port = free_port();
    let mut command = Command::new(interpose_bin());
    command
        .args(["run", "--listen", &format!("http://127.0.0.1:{port}")])
        .args([
            "--bearer-token-env",
            "INTERPOSE_TEST_UPSTREAM_TOKEN",
            "--",
            &url,
        ])
        .env("INTERPOSE_TEST_UPSTREAM_TOKEN", "upstream-token");
    let mut with_token = Proc::start("interpose", command, "listening on");
    let base = format!("http://127.0.0.1:{port}");
    post(
        &base,
        INITIALIZE,
        &[("authorization", "Bearer client-secret")],
    )
    .await;
    with_token.terminate();

    // Passing the client's own header on is an explicit choice.
    let (mut passing, base) = proxy(&["--pass-client-authorization", "--", &url]);
    post(
        &base,
        INITIALIZE,
        &[("authorization", "Bearer client-secret")],
    )
    .await;
    passing.terminate();

    let seen: Vec<serde_json::Value> = std::fs::read_to_string(&record)
        .expect("the backend recorded headers")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    std::fs::remove_file(&record).ok();
    let auth: Vec<Option<&str>> = seen
        .iter()
        .filter(|r| r["method"] == "POST")
        .map(|r| r["authorization"].as_str())
        .collect();
    assert_eq!(
        auth,
        vec![
            None,
            Some("Bearer upstream-token"),
            Some("Bearer client-secret")
        ],
        "{seen:?}"
    );
    assert_eq!(
        seen[0]["x-test"], "from-proxy",
        "--header reaches the backend"
    );
}

#[test]
fn non_loopback_listen_is_refused_without_allow_remote() {
    let output = Command::new(interpose_bin())
        .args([
            "run",
            "--listen",
            &format!("http://0.0.0.0:{}", free_port()),
        ])
        .args(["--", "true"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}
