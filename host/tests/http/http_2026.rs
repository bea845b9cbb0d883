//! The 2026-07-28 revision through the HTTP listener, to the letter (issue #17): what a
//! sessionless client sends reaches the backend as sent, the backend's status and
//! content type come back, and no client can fix the protocol era for another.

use crate::http_support;

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
    let payload = json!({"name": "echo", "arguments": {"text": "rewritten by the plugin"}, "_meta": envelope()});
    let config = config_rewriting_calls_of("renamed", &payload);
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

/// An `interpose.toml` (in a temporary file) whose one plugin, `fixture-verdicts`,
/// rewrites every `tools/call` of `tool` into `payload`.
fn config_rewriting_calls_of(tool: &str, payload: &Value) -> std::path::PathBuf {
    let plugin = repo().join("target/wasm/wasm32-wasip2/release/fixture_verdicts.wasm");
    assert!(
        plugin.exists(),
        "{} is missing: run scripts/build-plugins.sh",
        plugin.display()
    );
    let config = unique_temp_path("interpose-config").with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "[[plugins]]\npath = {path}\n[plugins.config]\nrules = [{{ method = \"tools/call\", kind = \"request\", tool = {tool}, verdict = \"rewrite\", payload_text = {payload} }}]\n",
            path = toml_string(&plugin.display().to_string()),
            tool = toml_string(tool),
            payload = toml_string(&payload.to_string()),
        ),
    )
    .expect("config");
    config
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string")
}

/// Item 3: an unsupported `MCP-Protocol-Version` is the backend's to refuse: its
/// -32022 with `data.supported` and `data.requested` comes back with the request's id.
#[tokio::test]
async fn unsupported_version_gets_32022_naming_supported_and_requested_with_the_id() {
    let (_proxy, base) = stdio_proxy();
    let mut discover = modern(301, "server/discover", json!({}));
    discover["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("v999.0.0");
    let headers = vec![
        ("mcp-protocol-version", "v999.0.0".to_owned()),
        ("mcp-method", "server/discover".to_owned()),
    ];
    let answer = post(&base, &headers, &discover).await;
    assert_eq!(answer.status, 400, "{answer:?}");
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

/// Item 1 and 6: a sessionless request answered at once gets one JSON body with the
/// status the spec gives its answer (404 for -32601, 400 for -32022, 200 otherwise);
/// one that streams a notification first gets SSE. Over both kinds of backend.
#[tokio::test]
async fn sessionless_answers_carry_their_status_and_are_json_when_immediate() {
    let (_http_backend, backend) = python_http_backend(&[]);
    let (_http_proxy, via_http) = proxy(&["--", &format!("{backend}/mcp")]);
    let (_stdio_proxy, via_stdio) = stdio_proxy();
    for base in [via_http, via_stdio] {
        // The first request starts the backend, which can take longer than the proxy
        // waits for an answer to send as JSON on a loaded machine.
        let warm_up = modern(600, "tools/list", json!({}));
        post(&base, &modern_headers(&warm_up), &warm_up).await;
        let unknown = modern(601, "unknown/method", json!({}));
        let answer = post(&base, &modern_headers(&unknown), &unknown).await;
        assert_eq!(answer.status, 404, "{base}: {answer:?}");
        assert_eq!(
            answer.content_type, "application/json",
            "{base}: {answer:?}"
        );
        assert_eq!(
            answer.response(601)["error"]["code"],
            -32601,
            "{base}: {answer:?}"
        );

        let call = modern(
            602,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "json"}}),
        );
        let answer = post(&base, &modern_headers(&call), &call).await;
        assert_eq!(answer.status, 200, "{base}: {answer:?}");
        assert_eq!(
            answer.content_type, "application/json",
            "{base}: {answer:?}"
        );
        assert_eq!(
            answer.response(602)["result"]["content"][0]["text"],
            "json",
            "{base}: {answer:?}"
        );
        assert!(answer.session.is_none(), "{base}: {answer:?}");

        let mut progress = modern(
            603,
            "tools/call",
            json!({"name": "progress", "arguments": {"steps": 2}}),
        );
        progress["params"]["_meta"]["progressToken"] = json!("p");
        let answer = post(&base, &modern_headers(&progress), &progress).await;
        assert_eq!(answer.status, 200, "{base}: {answer:?}");
        assert!(
            answer.content_type.starts_with("text/event-stream"),
            "{base}: {answer:?}"
        );
        assert_eq!(answer.messages.len(), 3, "{base}: {answer:?}");
        assert!(
            answer.response(603)["result"].is_object(),
            "{base}: {answer:?}"
        );
    }
}

/// Item 5: a 2026-07-28 `initialize` without a session is a removed method (404
/// -32601), opens no session and holds no slot: with `--max-sessions 1`, a handshake
/// client still gets in after several of them.
#[tokio::test]
async fn a_2026_initialize_opens_no_session() {
    let (_http_backend, backend) = python_http_backend(&[]);
    let (_http_proxy, via_http) = proxy(&["--max-sessions", "1", "--", &format!("{backend}/mcp")]);
    let mut args = vec!["--max-sessions".to_owned(), "1".to_owned(), "--".to_owned()];
    args.extend(full_server());
    let (_stdio_proxy, via_stdio) = proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for base in [via_http, via_stdio] {
        for id in 1..=3 {
            let initialize = modern(
                id,
                "initialize",
                json!({"protocolVersion": "2026-07-28", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}),
            );
            let answer = post(&base, &modern_headers(&initialize), &initialize).await;
            assert_eq!(answer.status, 404, "{base}: {answer:?}");
            assert_eq!(
                answer.response(id)["error"]["code"],
                -32601,
                "{base}: {answer:?}"
            );
            assert!(answer.session.is_none(), "{base}: {answer:?}");
        }
        let handshake = json!({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
        let answer = post(&base, &[], &handshake).await;
        assert_eq!(answer.status, 200, "{base}: {answer:?}");
        assert!(answer.session.is_some(), "{base}: {answer:?}");
        assert_eq!(
            answer.response(9)["result"]["protocolVersion"],
            "2025-11-25",
            "{base}: {answer:?}"
        );
    }
}

/// Item 6: a 2025-era session's streams start with a priming event (an id to resume
/// from, `retry`, empty data), and resuming from it replays the whole stream.
#[tokio::test]
async fn handshake_era_streams_start_with_a_priming_event() {
    let (_proxy, base) = stdio_proxy();
    let client = reqwest::Client::new();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
    let response = client
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize.to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let text = response.text().await.expect("body");
    let first = text.split("\n\n").next().unwrap_or_default();
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let id = lines[0].strip_prefix("id: ").expect("an id first");
    assert!(id.ends_with("-0"), "{text}");
    assert_eq!(lines[1], "retry: 1000", "{text}");
    assert_eq!(lines[2].trim_end(), "data:", "{text}");

    let resumed = client
        .get(format!("{base}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", id)
        .timeout(std::time::Duration::from_secs(20))
        .send()
        .await
        .expect("GET");
    assert_eq!(resumed.status(), 200);
    let replayed = resumed.text().await.expect("replay");
    assert!(
        replayed.contains("\"protocolVersion\":\"2025-11-25\""),
        "resuming from the priming event replays the answer: {replayed}"
    );
    assert!(!replayed.contains("retry:"), "{replayed}");
}

/// Item 2, stdio backend: the `Mcp-Param-*` headers of a `tools/call` must mirror the
/// arguments the tool's `x-mcp-header` names (learnt from `tools/list`): a broken
/// encoding, a different value or an absent header is 400 -32020 with the id.
#[tokio::test]
async fn param_headers_are_checked_for_a_stdio_backend() {
    let mut args = vec!["--".to_owned()];
    args.extend(full_server());
    args.push("--header-tool".to_owned());
    let (_proxy, base) = proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let list = modern(1, "tools/list", json!({}));
    let answer = post(&base, &modern_headers(&list), &list).await;
    assert!(
        answer.response(1)["result"]["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t["name"] == "regional")),
        "{answer:?}"
    );
    let call = modern(
        2,
        "tools/call",
        json!({"name": "regional", "arguments": {"region": "Hello"}}),
    );
    let with = |value: Option<&str>| {
        let mut headers = modern_headers(&call);
        if let Some(value) = value {
            headers.push(("mcp-param-region", value.to_owned()));
        }
        headers
    };
    let answer = post(&base, &with(Some("=?base64?SGVsbG8=?=")), &call).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.response(2)["result"]["content"][0]["text"],
        "Hello",
        "{answer:?}"
    );
    for bad in [
        Some("=?base64?SGVsbG8?="),
        Some("=?base64?SGVs!!!bG8=?="),
        Some("Goodbye"),
        None,
    ] {
        let answer = post(&base, &with(bad), &call).await;
        assert_eq!(answer.status, 400, "{bad:?}: {answer:?}");
        assert_eq!(
            answer.response(2)["error"]["code"],
            -32020,
            "{bad:?}: {answer:?}"
        );
    }
}

/// Item 5, handshake era: an `initialize` the backend refuses leaves no session
/// behind (no id given out, no slot held).
#[tokio::test]
async fn a_refused_handshake_leaves_no_session() {
    let mut args = vec!["--max-sessions".to_owned(), "1".to_owned(), "--".to_owned()];
    args.extend(full_server());
    let (_proxy, base) = proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for id in 1..=3 {
        let refused = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {"protocolVersion": 2025}});
        let answer = post(&base, &[], &refused).await;
        assert!(answer.response(id)["error"].is_object(), "{answer:?}");
        assert!(answer.session.is_none(), "{answer:?}");
    }
    // A slot is free again once the refused session's backend has been reaped.
    let handshake = json!({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let answer = post(&base, &[], &handshake).await;
        if answer.status == 200 {
            assert!(answer.session.is_some(), "{answer:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refused sessions still hold the slot: {answer:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Opens a `subscriptions/listen` stream (id `id`) for tool list changes; returns the
/// reader once the stream's head is in.
async fn listen_for_tool_changes(base: &str, id: &str) -> SseReader {
    let listen = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": true}, "_meta": envelope()}});
    let mut request = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(listen.to_string());
    for (name, value) in modern_headers(&listen) {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("POST subscriptions/listen");
    assert_eq!(response.status(), 200);
    SseReader::new(response)
}

/// The next message on a listen stream, within 20 s.
async fn next_message(reader: &mut SseReader) -> Value {
    let (_, data) = tokio::time::timeout(std::time::Duration::from_secs(20), reader.next_event())
        .await
        .expect("an event in time")
        .expect("the stream is open");
    serde_json::from_str(&data).expect("JSON")
}

/// A subscription's notifications (on stdio tied to the listen request only by
/// `_meta.subscriptionId`) reach the client that opened it, naming the subscription
/// by that client's own request id, also when two clients chose the same id.
#[tokio::test]
async fn subscription_notifications_reach_their_listener_named_by_its_own_id() {
    let (_proxy, base) = stdio_proxy();
    subscriptions_reach_their_listeners(&base).await;
}

/// Over HTTP the backend's stream ties them to the request, but they name it by the
/// id the proxy gave it upstream unless the proxy restores the client's.
#[tokio::test]
async fn subscription_ids_from_an_http_backend_are_the_clients_own() {
    let (_backend, backend) = python_http_backend(&[]);
    let (_proxy, base) = proxy(&["--", &format!("{backend}/mcp")]);
    subscriptions_reach_their_listeners(&base).await;
}

async fn subscriptions_reach_their_listeners(base: &str) {
    const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
    let base = base.to_owned();
    let mut first = listen_for_tool_changes(&base, "sub").await;
    let mut second = listen_for_tool_changes(&base, "sub").await;
    for reader in [&mut first, &mut second] {
        let ack = next_message(reader).await;
        assert_eq!(
            ack["method"], "notifications/subscriptions/acknowledged",
            "{ack}"
        );
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], "sub", "{ack}");
    }

    let call = modern(
        3,
        "tools/call",
        json!({"name": "add_tool", "arguments": {}}),
    );
    let answer = post(&base, &modern_headers(&call), &call).await;
    assert_eq!(
        answer.response(3)["result"]["content"][0]["text"],
        "dynamic_tool added",
        "{answer:?}"
    );
    for reader in [&mut first, &mut second] {
        let changed = next_message(reader).await;
        assert_eq!(
            changed["method"], "notifications/tools/list_changed",
            "{changed}"
        );
        assert_eq!(
            changed["params"]["_meta"][SUBSCRIPTION_ID], "sub",
            "{changed}"
        );
    }
}

/// Item 1 to the letter: an HTTP backend's status and content type reach a sessionless
/// client as the backend chose them, also where the spec's table says nothing (a 403)
/// and where the backend streams an answer it could have sent as JSON.
#[tokio::test]
async fn an_http_backends_status_and_content_type_come_through_as_sent() {
    let port = free_port();
    let mut command = std::process::Command::new("python3");
    command
        .arg(repo().join("tests/servers/faulty_server.py"))
        .args(["--http", &port.to_string()]);
    let _backend = Proc::start("faulty_server --http", command, "READY");
    let (_proxy, base) = proxy(&["--", &format!("http://127.0.0.1:{port}/mcp")]);

    let forbidden = modern(
        1,
        "tools/call",
        json!({"name": "forbidden", "arguments": {}}),
    );
    let answer = post(&base, &modern_headers(&forbidden), &forbidden).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(
        answer.content_type.starts_with("application/json"),
        "{answer:?}"
    );
    assert_eq!(answer.response(1)["error"]["code"], -32001, "{answer:?}");

    let streamed = modern(
        2,
        "tools/call",
        json!({"name": "sse_answer", "arguments": {}}),
    );
    let answer = post(&base, &modern_headers(&streamed), &streamed).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.content_type.starts_with("text/event-stream"),
        "{answer:?}"
    );
    assert_eq!(
        answer.response(2)["result"]["content"][0]["text"],
        "on a stream",
        "{answer:?}"
    );

    let plain = modern(
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"x": 1}}),
    );
    let answer = post(&base, &modern_headers(&plain), &plain).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.content_type.starts_with("application/json"),
        "{answer:?}"
    );
}

/// After a plugin rewrites a `tools/call`'s arguments, the `Mcp-Param-*` headers the
/// tool declares mirror the new arguments, so the backend (which checks them) runs the
/// rewritten call instead of refusing it with -32020.
#[tokio::test]
async fn a_plugin_rewriting_arguments_keeps_their_param_headers_true() {
    let payload =
        json!({"name": "regional", "arguments": {"region": "Zürich"}, "_meta": envelope()});
    let config = config_rewriting_calls_of("regional", &payload);
    let record = unique_temp_path("interpose-headers");
    let record_arg = record.display().to_string();
    let (_backend, backend) =
        python_http_backend(&["--header-tool", "--record-headers", &record_arg]);
    let config_arg = config.display().to_string();
    let (_proxy, base) = proxy(&["--config", &config_arg, "--", &format!("{backend}/mcp")]);

    let list = modern(1, "tools/list", json!({}));
    post(&base, &modern_headers(&list), &list).await;
    let call = modern(
        2,
        "tools/call",
        json!({"name": "regional", "arguments": {"region": "eu"}}),
    );
    let mut headers = modern_headers(&call);
    headers.push(("mcp-param-region", "eu".to_owned()));
    let answer = post(&base, &headers, &call).await;
    std::fs::remove_file(&config).ok();
    let seen = recorded_mcp_headers(&record);
    std::fs::remove_file(&record).ok();
    assert_eq!(
        answer.response(2)["result"]["content"][0]["text"],
        "Zürich",
        "{answer:?} {seen:?}"
    );
    assert_eq!(
        seen.last().unwrap()["mcp-param-region"],
        "=?base64?WsO8cmljaA==?=",
        "{seen:?}"
    );
}
