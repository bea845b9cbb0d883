//! A lazy server behind a gateway over HTTP: the first session starts it (filling the
//! catalog every session shares); a later session lists its tools from that catalog
//! and starts it only when it calls one.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http_support::*;

/// How many times the server behind `marker` has started (its `--started` lines).
fn starts(marker: &Path) -> usize {
    std::fs::read_to_string(marker)
        .unwrap_or_default()
        .lines()
        .count()
}

/// Waits (boundedly) until the server behind `marker` has started `count` times.
fn wait_for_starts(marker: &Path, count: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    while starts(marker) < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    starts(marker)
}

/// Sends request `id` on `session` and returns its answer.
async fn request(
    client: &reqwest::Client,
    base: &str,
    session: &str,
    id: u64,
    method: &str,
    params: Value,
) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let post = post_mcp(client, base, body.to_string())
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25");
    let (status, _, text) = send_for_text(post).await;
    assert_eq!(status, 200, "{text}");
    messages_in(&text)
        .into_iter()
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| panic!("no answer to {id} in {text}"))
}

fn tool_names(answer: &Value) -> Vec<String> {
    answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {answer}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_server_starts_once_until_a_later_session_calls_it() {
    let marker = unique_temp_path("interpose-lazy-starts");
    let faulty = repo().join("tests/servers/faulty_server.py");
    let servers = unique_temp_path("interpose-lazy-servers.json");
    let file = json!({"mcpServers": {
        "eager": {"command": faulty},
        "lazy": {"command": faulty, "args": ["--started", marker], "lazy": true},
    }});
    std::fs::write(&servers, file.to_string()).unwrap();
    let (_proxy, base) = proxy(&["--servers", servers.to_str().unwrap()]);
    let client = reqwest::Client::new();

    // The first session starts it, and fills the catalog with its tools.
    let first = open_session(&client, &base).await;
    let listed = request(&client, &base, &first, 2, "tools/list", json!({})).await;
    assert!(
        tool_names(&listed).contains(&"lazy_echo".to_owned()),
        "{listed}"
    );
    assert_eq!(wait_for_starts(&marker, 1), 1);

    // A second session sees its tools without starting it...
    let second = open_session(&client, &base).await;
    let listed = request(&client, &base, &second, 2, "tools/list", json!({})).await;
    let names = tool_names(&listed);
    assert!(names.contains(&"lazy_echo".to_owned()), "{names:?}");
    assert!(names.contains(&"eager_echo".to_owned()), "{names:?}");
    let eager = request(
        &client,
        &base,
        &second,
        3,
        "tools/call",
        json!({"name": "eager_echo", "arguments": {"text": "eager"}}),
    )
    .await;
    assert!(eager["result"].is_object(), "{eager}");
    assert_eq!(
        starts(&marker),
        1,
        "the second session did not start it yet"
    );

    // ...until it calls one: then it starts, and the waiting call is answered.
    let called = request(
        &client,
        &base,
        &second,
        4,
        "tools/call",
        json!({"name": "lazy_echo", "arguments": {"text": "woken"}}),
    )
    .await;
    let text = called["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("woken"), "{called}");
    assert_eq!(starts(&marker), 2);

    // The first session's own instance still answers.
    let again = request(
        &client,
        &base,
        &first,
        3,
        "tools/call",
        json!({"name": "lazy_echo", "arguments": {"text": "first"}}),
    )
    .await;
    assert!(again["result"].is_object(), "{again}");
    assert_eq!(starts(&marker), 2);
    std::fs::remove_file(&marker).ok();
    std::fs::remove_file(&servers).ok();
}
