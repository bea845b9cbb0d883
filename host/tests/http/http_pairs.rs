//! Every transport pair through the real binary, driven by the Python SDK's HTTP and
//! SSE clients: a full session (tools, progress, sampling, elicitation, roots, logging)
//! and, for the HTTP listener, two clients at once, each of which must get exactly the
//! server requests and notifications its own calls caused.

use crate::http_support;

use http_support::*;

#[test]
fn streamable_http_to_stdio_two_clients_at_once() {
    let mut args = vec!["--"];
    let backend = full_server();
    args.extend(backend.iter().map(String::as_str));
    let (_proxy, base) = proxy(&args);
    two_clients_at_once(&format!("{base}/mcp"), "streamable");
}

#[test]
fn legacy_sse_to_stdio_two_clients_at_once() {
    let mut args = vec!["--"];
    let backend = full_server();
    args.extend(backend.iter().map(String::as_str));
    let (_proxy, base) = proxy(&args);
    two_clients_at_once(&format!("{base}/sse"), "sse");
}

#[test]
fn streamable_http_to_streamable_http_two_clients_at_once() {
    let (_backend, backend) = python_http_backend(&[]);
    let (_proxy, base) = proxy(&["--", &format!("{backend}/mcp")]);
    two_clients_at_once(&format!("{base}/mcp"), "streamable");
}

#[test]
fn streamable_http_to_json_answering_backend() {
    let (_backend, backend) = python_http_backend(&["--json-response"]);
    let (_proxy, base) = proxy(&["--", &format!("{backend}/mcp")]);
    let seen = python_scenario(&["--url", &format!("{base}/mcp"), "--name", "jo"]);
    assert_full_scenario_without_progress(&seen, "jo");
}

#[test]
fn streamable_http_to_legacy_sse_two_clients_at_once() {
    let (_backend, backend) = python_http_backend(&[]);
    let (_proxy, base) = proxy(&["--", &format!("{backend}/sse")]);
    two_clients_at_once(&format!("{base}/mcp"), "streamable");
}

#[test]
fn legacy_sse_to_legacy_sse() {
    let (_backend, backend) = python_http_backend(&[]);
    let (_proxy, base) = proxy(&["--upstream", "sse", "--", &format!("{backend}/sse")]);
    let seen = python_scenario(&[
        "--url",
        &format!("{base}/sse"),
        "--name",
        "sid",
        "--transport",
        "sse",
    ]);
    assert_full_scenario(&seen, "sid");
}

#[test]
fn http_to_http_through_two_proxies() {
    let mut args = vec!["--"];
    let backend = full_server();
    args.extend(backend.iter().map(String::as_str));
    let (_inner, inner) = proxy(&args);
    let (_outer, outer) = proxy(&["--", &format!("{inner}/mcp")]);
    let seen = python_scenario(&["--url", &format!("{outer}/mcp"), "--name", "nest"]);
    assert_full_scenario(&seen, "nest");
}

#[test]
fn stateless_2026_client_to_stdio() {
    let mut args = vec!["--"];
    let backend = full_server();
    args.extend(backend.iter().map(String::as_str));
    let (_proxy, base) = proxy(&args);
    let seen = python_scenario(&[
        "--url",
        &format!("{base}/mcp"),
        "--name",
        "neo",
        "--handshake",
        "discover",
        "--scenario",
        "basic",
    ]);
    assert_eq!(seen["handshake"], serde_json::json!(["2026-07-28"]));
    assert_eq!(seen["echo"], "hello from neo");
}

#[test]
fn stateless_2026_client_to_streamable_http_backend() {
    let (_backend, backend) = python_http_backend(&[]);
    let (_proxy, base) = proxy(&["--", &format!("{backend}/mcp")]);
    let seen = python_scenario(&[
        "--url",
        &format!("{base}/mcp"),
        "--name",
        "neo",
        "--handshake",
        "discover",
        "--scenario",
        "basic",
    ]);
    assert_eq!(seen["echo"], "hello from neo");
}

/// A stdio client (the Python SDK launching `interpose run -- URL`) to an HTTP backend.
fn stdio_client_to(url: &str, name: &str) -> serde_json::Value {
    let command = serde_json::json!([interpose_bin(), "run", "--", url]).to_string();
    python_scenario(&["--transport", "stdio", "--url", &command, "--name", name])
}

#[test]
fn stdio_to_streamable_http() {
    let (_backend, backend) = python_http_backend(&[]);
    let seen = stdio_client_to(&format!("{backend}/mcp"), "stan");
    assert_full_scenario(&seen, "stan");
}

#[test]
fn stdio_to_legacy_sse() {
    let (_backend, backend) = python_http_backend(&[]);
    let seen = stdio_client_to(&format!("{backend}/sse"), "sally");
    assert_full_scenario(&seen, "sally");
}

#[test]
fn server_everything_over_streamable_http_and_sse() {
    for mode in ["streamableHttp", "sse"] {
        let (_backend, backend) = everything_http(mode);
        let path = if mode == "sse" { "sse" } else { "mcp" };
        let (_proxy, base) = proxy(&["--", &format!("{backend}/{path}")]);
        let seen = python_scenario(&[
            "--url",
            &format!("{base}/mcp"),
            "--name",
            "ev",
            "--scenario",
            "basic",
            "--everything",
        ]);
        assert_eq!(seen["echo"], "Echo: hello from ev", "{mode}: {seen}");
        assert!(seen["tools"].as_u64().unwrap_or(0) > 5, "{mode}: {seen}");
    }
}

/// The TypeScript SDK's client (tests/clients/ts_http_client.mjs) against the listener.
fn typescript_client(url: &str, name: &str, kind: &str) -> serde_json::Value {
    typescript_client_of(url, name, kind, "")
}

/// The same, calling the full server's tools under `prefix` (a gateway's).
fn typescript_client_of(url: &str, name: &str, kind: &str, prefix: &str) -> serde_json::Value {
    let script = repo().join("tests/clients/ts_http_client.mjs");
    let output = std::process::Command::new("node")
        .arg(script)
        .args([url, name, kind, prefix])
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("no JSON from the TS client: {stdout}"));
    assert!(output.status.success(), "{value}");
    value
}

#[test]
fn typescript_sdk_client_over_streamable_http_and_sse() {
    let mut args = vec!["--"];
    let backend = full_server();
    args.extend(backend.iter().map(String::as_str));
    let (_proxy, base) = proxy(&args);
    for (path, kind) in [("mcp", "streamable"), ("sse", "sse")] {
        let seen = typescript_client(&format!("{base}/{path}"), "tia", kind);
        assert_eq!(seen["echo"], "hello from tia", "{kind}: {seen}");
        assert_eq!(
            seen["sample"]["content"]["text"], "sampled by tia",
            "{kind}: {seen}"
        );
        // The TS SDK may handle a progress notification after the answer it precedes
        // (seen without the proxy too), so only the answer is checked.
        assert_eq!(
            seen["progressResult"], "progressed 2 steps",
            "{kind}: {seen}"
        );
    }
}

/// The TypeScript SDK's client against a gateway of two full servers over HTTP: calls
/// routed by prefix, a server's sampling request answered by the client and the answer
/// back to that server, progress to the call it belongs to.
#[test]
fn typescript_sdk_client_through_a_gateway_of_two_servers() {
    let dir = unique_temp_path("interpose-gateway");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("servers.json");
    let server = |name: &str| {
        let mut argv = full_server();
        let command = argv.remove(0);
        (
            name.to_owned(),
            serde_json::json!({"command": command, "args": argv}),
        )
    };
    let servers: serde_json::Map<String, serde_json::Value> =
        [server("alpha"), server("beta")].into_iter().collect();
    std::fs::write(
        &file,
        serde_json::json!({"mcpServers": servers}).to_string(),
    )
    .expect("servers file");
    let file_arg = file.display().to_string();
    let (_proxy, base) = proxy(&["--servers", &file_arg]);
    for prefix in ["alpha_", "beta_"] {
        let seen = typescript_client_of(&format!("{base}/mcp"), "gia", "streamable", prefix);
        assert_eq!(seen["version"], "interpose", "{prefix}: {seen}");
        assert_eq!(seen["echo"], "hello from gia", "{prefix}: {seen}");
        assert_eq!(
            seen["sample"]["content"]["text"], "sampled by gia",
            "{prefix}: {seen}"
        );
        assert_eq!(
            seen["progressResult"], "progressed 2 steps",
            "{prefix}: {seen}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
