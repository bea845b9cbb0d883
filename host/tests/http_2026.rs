//! The 2026-07-28 revision through the HTTP listener, to the letter (issue #17): what a
//! sessionless client sends reaches the backend as sent, the backend's status and
//! content type come back, and no client can fix the protocol era for another.

mod http_support;

use http_support::*;
use serde_json::{Value, json};

/// The `_meta` envelope every 2026-07-28 request carries.
fn envelope() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// A stateless request with its envelope added to `params._meta`.
fn modern(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = envelope();
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// The protocol headers a 2026-07-28 client sends for `body`.
fn modern_headers(body: &Value) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28".to_owned()),
        (
            "mcp-method",
            body["method"].as_str().unwrap_or("").to_owned(),
        ),
    ];
    let params = &body["params"];
    if let Some(name) = params["name"].as_str().or(params["uri"].as_str()) {
        headers.push(("mcp-name", name.to_owned()));
    }
    headers
}

/// What the proxy answered one POST with.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    session: Option<String>,
    /// Every JSON-RPC message in the body (one for JSON, one per event for SSE).
    messages: Vec<Value>,
}

impl Answer {
    /// The response to the request with `id`.
    fn response(&self, id: u64) -> &Value {
        self.messages
            .iter()
            .find(|m| m["id"] == json!(id) && m.get("method").is_none())
            .unwrap_or_else(|| panic!("no answer to {id} in {self:?}"))
    }
}

/// POSTs `body` with `headers` to the proxy and reads the whole answer.
async fn post(base: &str, headers: &[(&str, String)], body: &Value) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .timeout(std::time::Duration::from_secs(30))
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let session = header("mcp-session-id");
    let text = response.text().await.expect("body");
    let messages = if content_type.starts_with("text/event-stream") {
        text.split("\n\n")
            .filter_map(|event| {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                serde_json::from_str(&data.join("\n")).ok()
            })
            .collect()
    } else {
        serde_json::from_str(&text).into_iter().collect()
    };
    Answer {
        status,
        content_type,
        session,
        messages,
    }
}

fn stdio_proxy() -> (Proc, String) {
    let mut args = vec!["--".to_owned()];
    args.extend(full_server());
    proxy(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Item 4: the stdio backend shared by sessionless clients is one connection, and
/// SDKs pin the era of a connection on its first request; a claim-less or incomplete
/// request must never reach it, whoever sends it first.
#[tokio::test]
async fn malformed_sessionless_requests_never_reach_the_shared_stdio_backend() {
    let (_proxy, base) = stdio_proxy();
    let claimless = json!({"jsonrpc": "2.0", "id": 7, "method": "server/discover"});
    let answer = post(&base, &[], &claimless).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    let error = &answer.response(7)["error"];
    assert_eq!(error["code"], -32000, "{answer:?}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Session-Id"),
        "{answer:?}"
    );

    let no_meta = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"});
    let answer = post(&base, &modern_headers(&no_meta), &no_meta).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.response(8)["error"]["code"], -32602, "{answer:?}");

    let mut no_caps = modern(9, "tools/list", json!({}));
    no_caps["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let answer = post(&base, &modern_headers(&no_caps), &no_caps).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.response(9)["error"]["code"], -32602, "{answer:?}");

    let call = modern(
        10,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "modern"}}),
    );
    let answer = post(&base, &modern_headers(&call), &call).await;
    let result = &answer.response(10)["result"];
    assert_eq!(result["content"][0]["text"], "modern", "{answer:?}");
    assert_eq!(result["resultType"], "complete", "{answer:?}");

    let probe = modern(11, "interpose_test/raw_received", json!({"last": 10}));
    let answer = post(&base, &modern_headers(&probe), &probe).await;
    let lines = answer.response(11)["result"]["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer:?}"))
        .clone();
    assert_eq!(lines.len(), 1, "only the valid call reached it: {lines:?}");
    assert!(
        lines[0].as_str().unwrap().contains("\"modern\""),
        "{lines:?}"
    );
}

/// The `mcp-*` headers of each POST the HTTP backend received, in order.
fn recorded_mcp_headers(record: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["method"] == "POST")
        .map(|l| l["mcp"].clone())
        .collect()
}

/// Item 2, HTTP backend: a sessionless request reaches it with exactly the protocol
/// headers the client sent: `Mcp-Param-*` kept, nothing invented.
#[tokio::test]
async fn client_protocol_headers_reach_an_http_backend_unchanged() {
    let record = unique_temp_path("interpose-headers");
    let record_arg = record.display().to_string();
    let (_backend, backend) = python_http_backend(&["--record-headers", &record_arg]);
    let (_proxy, base) = proxy(&["--", &format!("{backend}/mcp")]);

    let call = modern(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let mut headers = modern_headers(&call);
    headers.push(("mcp-param-region", "=?base64?ZXUtd2VzdA==?=".to_owned()));
    let answer = post(&base, &headers, &call).await;
    assert_eq!(
        answer.response(1)["result"]["content"][0]["text"],
        "hi",
        "{answer:?}"
    );

    // No Mcp-Method: the proxy must not make one up for the backend.
    let list = modern(2, "tools/list", json!({}));
    let headers = vec![("mcp-protocol-version", "2026-07-28".to_owned())];
    post(&base, &headers, &list).await;

    let seen = recorded_mcp_headers(&record);
    std::fs::remove_file(&record).ok();
    assert_eq!(
        seen,
        vec![
            json!({
                "mcp-protocol-version": "2026-07-28",
                "mcp-method": "tools/call",
                "mcp-name": "echo",
                "mcp-param-region": "=?base64?ZXUtd2VzdA==?="
            }),
            json!({"mcp-protocol-version": "2026-07-28"}),
        ]
    );
}

/// Item 2, stdio backend: nothing behind it reads headers, so the proxy refuses a
/// 2026-07-28 request without its required headers itself (400, -32020, the id).
#[tokio::test]
async fn missing_required_headers_are_refused_for_a_stdio_backend() {
    let (_proxy, base) = stdio_proxy();
    let list = modern(3, "tools/list", json!({}));
    let headers = vec![("mcp-protocol-version", "2026-07-28".to_owned())];
    let answer = post(&base, &headers, &list).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    let error = &answer.response(3)["error"];
    assert_eq!(error["code"], -32020, "{answer:?}");
    assert!(
        error["message"].as_str().unwrap().contains("Mcp-Method"),
        "{answer:?}"
    );

    let call = modern(
        4,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let headers: Vec<_> = modern_headers(&call)
        .into_iter()
        .filter(|(name, _)| *name != "mcp-name")
        .collect();
    let answer = post(&base, &headers, &call).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.response(4)["error"]["code"], -32020, "{answer:?}");
}

/// A plugin sees a stateless `tools/call` and rewrites it; the headers that describe
/// the request are made to match what the backend now executes.
#[tokio::test]
async fn plugin_rewrites_a_stateless_tools_call_and_its_headers_follow() {
    let plugin = repo().join("target/wasm/wasm32-wasip2/release/fixture_verdicts.wasm");
    assert!(
        plugin.exists(),
        "{} is missing: run scripts/build-plugins.sh",
        plugin.display()
    );
    let config = unique_temp_path("interpose-config").with_extension("toml");
    let payload = json!({"name": "echo", "arguments": {"text": "rewritten by the plugin"}, "_meta": envelope()});
    std::fs::write(
        &config,
        format!(
            "[[plugins]]\npath = {path}\n[plugins.config]\nrules = [{{ method = \"tools/call\", kind = \"request\", tool = \"renamed\", verdict = \"rewrite\", payload_text = {payload} }}]\n",
            path = toml_string(&plugin.display().to_string()),
            payload = toml_string(&payload.to_string()),
        ),
    )
    .expect("config");
    let record = unique_temp_path("interpose-headers");
    let record_arg = record.display().to_string();
    let (_backend, backend) = python_http_backend(&["--record-headers", &record_arg]);
    let config_arg = config.display().to_string();
    let (_proxy, base) = proxy(&["--config", &config_arg, "--", &format!("{backend}/mcp")]);

    let call = modern(
        5,
        "tools/call",
        json!({"name": "renamed", "arguments": {"text": "original"}}),
    );
    let answer = post(&base, &modern_headers(&call), &call).await;
    std::fs::remove_file(&config).ok();
    assert_eq!(
        answer.response(5)["result"]["content"][0]["text"],
        "rewritten by the plugin",
        "{answer:?}"
    );
    let seen = recorded_mcp_headers(&record);
    std::fs::remove_file(&record).ok();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["mcp-name"], "echo", "{seen:?}");
    assert_eq!(seen[0]["mcp-method"], "tools/call", "{seen:?}");
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string")
}

/// Item 3: an unsupported `MCP-Protocol-Version` is the backend's to refuse: its
/// -32022 with `data.supported` and `data.requested` comes back with the request's id.
#[tokio::test]
async fn unsupported_version_gets_the_backends_error_with_the_request_id() {
    let (_proxy, base) = stdio_proxy();
    let mut discover = modern(301, "server/discover", json!({}));
    discover["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("v999.0.0");
    let headers = vec![
        ("mcp-protocol-version", "v999.0.0".to_owned()),
        ("mcp-method", "server/discover".to_owned()),
    ];
    let answer = post(&base, &headers, &discover).await;
    let error = &answer.response(301)["error"];
    assert_eq!(error["code"], -32022, "{answer:?}");
    assert_eq!(error["data"]["requested"], "v999.0.0", "{answer:?}");
    assert!(
        error["data"]["supported"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("2026-07-28"))),
        "{answer:?}"
    );
}
