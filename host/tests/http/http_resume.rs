//! Streams that break: a client that drops a response stream and comes back with
//! `Last-Event-ID` gets what it missed (and nothing twice), and server messages sent
//! while no GET stream is open wait for one. Upstream, the proxy's own client resumes
//! a stream the backend closed before answering.

use crate::http_support;

use std::time::Duration;

use http_support::*;

async fn post(
    client: &reqwest::Client,
    base: &str,
    session: &str,
    body: &str,
) -> reqwest::Response {
    post_mcp(client, base, body.to_owned())
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn dropped_response_stream_resumes_with_last_event_id() {
    let (_proxy, base) = proxy_to_full_server(&[]);
    let client = reqwest::Client::new();
    let session = open_session(&client, &base).await;

    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow","arguments":{"label":"r","max_seconds":1},"_meta":{"progressToken":"p"}}}"#;
    let response = post(&client, &base, &session, call).await;
    // Read the "started" progress, then drop the connection before the answer.
    let first = read_events(response, |events| !events.is_empty()).await;
    let (last_id, data) = &first[0];
    assert!(data.contains("notifications/progress"), "{data}");
    assert!(!last_id.is_empty(), "events carry ids");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resumed = client
        .get(format!("{base}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("last-event-id", last_id)
        .send()
        .await
        .expect("GET with Last-Event-ID");
    assert_eq!(resumed.status(), 200);
    let rest = read_events(resumed, |events| {
        events.iter().any(|(_, d)| d.contains("\"id\":7"))
    })
    .await;
    assert_eq!(rest.len(), 1, "only what was missed: {rest:?}");
    assert!(rest[0].1.contains("slow r was never cancelled"), "{rest:?}");
}

#[tokio::test]
async fn server_messages_wait_for_the_get_stream() {
    let (_proxy, base) = proxy_to_full_server(&[]);
    let client = reqwest::Client::new();
    let session = open_session(&client, &base).await;

    // add_tool sends notifications/tools/list_changed, which belongs to no request
    // when it comes from a stdio backend, so it goes to the standalone stream.
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add_tool","arguments":{}}}"#;
    let answer = post(&client, &base, &session, call).await;
    let events = read_events(answer, |e| e.iter().any(|(_, d)| d.contains("\"id\":3"))).await;
    assert!(
        events.iter().all(|(_, d)| !d.contains("list_changed")),
        "{events:?}"
    );

    let stream = client
        .get(format!("{base}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("GET");
    let queued = read_events(stream, |e| !e.is_empty()).await;
    assert!(
        queued[0].1.contains("notifications/tools/list_changed"),
        "{queued:?}"
    );
}

#[tokio::test]
async fn proxy_resumes_a_backend_stream_that_closed_before_its_answer() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    let record = unique_temp_path("interpose-resume");
    let record_arg = record.display().to_string();
    let (_backend, backend) =
        python_http_backend(&["--event-store", "--record-headers", &record_arg]);
    let (_proxy, base) = proxy(&["--", &format!("{backend}/mcp")]);
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(format!("{base}/mcp"));
    let client = ().serve(transport).await.expect("initialize");
    let result = client
        .call_tool(CallToolRequestParams::new("drop_stream"))
        .await
        .expect("answered despite the dropped stream");
    let text = result.content[0].as_text().expect("text").text.clone();
    assert_eq!(text, "answered after the stream was dropped");
    client.cancel().await.ok();
    let log = std::fs::read_to_string(&record).expect("recorded headers");
    std::fs::remove_file(&record).ok();
    assert!(
        log.lines()
            .any(|l| l.contains("\"GET\"") && !l.contains("\"last-event-id\": null")),
        "the proxy resumed with Last-Event-ID:\n{log}"
    );
}

/// The 2026-07-28 `_meta` every stateless request carries.
const MODERN_META: &str = r#""io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}"#;

#[tokio::test]
async fn stateless_client_closing_its_stream_cancels_the_request() {
    let (_proxy, base) = proxy_to_full_server(&[]);
    let client = reqwest::Client::new();
    let stateless_post = |body: String| {
        let name =
            serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["params"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        post_mcp(&client, &base, body)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", name)
            .send()
    };
    let slow = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"slow","arguments":{{"label":"gone","max_seconds":30}},"_meta":{{"progressToken":"s",{MODERN_META}}}}}}}"#
    );
    let response = stateless_post(slow).await.expect("POST slow");
    assert_eq!(response.status(), 200);
    let started = read_events(response, |events| !events.is_empty()).await;
    assert!(started[0].1.contains("started"), "{started:?}");
    // The response stream is dropped here: that is the cancellation.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"cancel_status","arguments":{{}},"_meta":{{{MODERN_META}}}}}}}"#
    );
    let response = stateless_post(status).await.expect("POST cancel_status");
    let events = read_events(response, |e| e.iter().any(|(_, d)| d.contains("\"id\":1"))).await;
    assert!(
        events.last().is_some_and(|(_, d)| d.contains("gone")),
        "{events:?}"
    );
}
