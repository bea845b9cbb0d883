//! Several replicas behind one address (`[replicas]`, issue #15, docs/deploy.md): two
//! interpose processes with the same config and key in front of one HTTP backend; a
//! session opened on one continues on the other, without initializing the backend
//! again; ids that were tampered with, sealed with another key, or that name another
//! replica are refused; sessionless (2026-07-28) requests go anywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::http_support;

use http_support::*;
use serde_json::{Value, json};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_KEY: &str = "HxobHBkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAE=";
const VERSION: &str = "2025-11-25";

/// A config file with `[replicas]` (name from `INTERPOSE_REPLICA_NAME`).
fn replicas_config() -> PathBuf {
    let path = unique_temp_path("interpose-replicas").with_extension("toml");
    std::fs::write(
        &path,
        "[replicas]\nkey_env = \"INTERPOSE_SESSION_KEY\"\nname_env = \"INTERPOSE_REPLICA_NAME\"\n",
    )
    .expect("write the config");
    path
}

/// One replica: `interpose run --listen ... [--config FILE] -- BACKEND...`, with its
/// key and name in the environment.
fn replica(name: &str, key: &str, config: Option<&Path>, backend: &[String]) -> (Proc, String) {
    let port = free_port();
    let listen = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(interpose_bin());
    command.arg("run").arg("--listen").arg(&listen);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    if !backend.is_empty() {
        command.arg("--").args(backend);
    }
    command
        .env("INTERPOSE_SESSION_KEY", key)
        .env("INTERPOSE_REPLICA_NAME", name)
        .env("RUST_LOG", "interpose=info");
    let proc = Proc::start(&format!("interpose {name}"), command, "listening on");
    (proc, listen)
}

/// POSTs a request on `session` and returns the status and every message of the answer.
async fn call(
    client: &reqwest::Client,
    base: &str,
    session: &str,
    body: &Value,
) -> (u16, Vec<Value>) {
    let request = post_mcp(client, base, body.to_string())
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", VERSION);
    let (status, _, text) = send_for_text(request).await;
    (status, messages_in(&text))
}

/// The one answer to request `id` among `messages` (it must be there exactly once).
fn only_answer(messages: &[Value], id: u64) -> &Value {
    let answers: Vec<&Value> = messages
        .iter()
        .filter(|m| m["id"] == json!(id) && m.get("method").is_none())
        .collect();
    assert_eq!(answers.len(), 1, "one answer to {id}: {messages:?}");
    answers[0]
}

fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Waits (up to 20 s: info lines are written in batches) until `proc` has logged `text`.
async fn logged(proc: &Proc, text: &str) {
    for _ in 0..200 {
        if proc.output().contains(text) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{} did not log {text:?}:\n{}", proc.name, proc.output());
}

/// The backend's record: one JSON line per HTTP request it received.
fn backend_record(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn an_http_backend_session_continues_across_replicas() {
    let record = unique_temp_path("interpose-replicas-record");
    let record_arg = record.display().to_string();
    let (_backend, backend) = python_http_backend(&["--record-headers", &record_arg]);
    let config = replicas_config();
    let upstream = vec![format!("{backend}/mcp")];
    let (a_proc, a) = replica("a", KEY, Some(&config), &upstream);
    let (b_proc, b) = replica("b", KEY, Some(&config), &upstream);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();

    let session = open_session(&client, &a).await;
    assert!(session.starts_with("v1."), "a sealed id: {session}");

    // Alternating replicas: each request answered once, correctly.
    let replicas = [&b, &a];
    let echo = request(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "on b"}}),
    );
    let (status, messages) = call(&client, replicas[0], &session, &echo).await;
    assert_eq!(status, 200, "{messages:?}");
    assert_eq!(
        only_answer(&messages, 2)["result"]["content"][0]["text"],
        "on b"
    );

    let read = request(3, "resources/read", json!({"uri": "test://static/1"}));
    let (_, messages) = call(&client, replicas[1], &session, &read).await;
    assert_eq!(
        only_answer(&messages, 3)["result"]["contents"][0]["text"],
        "contents of test://static/1"
    );

    let prompt = request(
        4,
        "prompts/get",
        json!({"name": "greet", "arguments": {"name": "Ada", "style": "formal"}}),
    );
    let (_, messages) = call(&client, replicas[0], &session, &prompt).await;
    assert_eq!(
        only_answer(&messages, 4)["result"]["messages"][0]["content"]["text"],
        "Greet Ada in a formal way."
    );

    // A paginated list: each page from another replica.
    let mut uris = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..5u64 {
        let params = match &cursor {
            Some(cursor) => json!({"cursor": cursor}),
            None => json!({}),
        };
        let id = 10 + page;
        let list = request(id, "resources/list", params);
        let (_, messages) = call(&client, replicas[(page % 2) as usize], &session, &list).await;
        let result = &only_answer(&messages, id)["result"];
        for resource in result["resources"].as_array().expect("resources") {
            uris.push(resource["uri"].as_str().unwrap().to_owned());
        }
        cursor = result["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..5)
        .map(|i| format!("test://static/{i}"))
        .chain(["test://static/blob".to_owned()])
        .collect();
    assert_eq!(uris, expected);

    // The backend saw one session: one initialize (the only POST without a session id),
    // and every later POST, from either replica, named the session it created.
    let posts: Vec<Value> = backend_record(&record)
        .into_iter()
        .filter(|l| l["method"] == "POST")
        .collect();
    let without_session = posts
        .iter()
        .filter(|l| l["mcp-session-id"].is_null())
        .count();
    assert_eq!(without_session, 1, "one initialize: {posts:?}");
    let backend_session = posts
        .iter()
        .find_map(|l| l["mcp-session-id"].as_str())
        .expect("later POSTs name the backend session")
        .to_owned();
    assert!(
        posts
            .iter()
            .skip(1)
            .all(|l| l["mcp-session-id"] == json!(backend_session)),
        "{posts:?}"
    );
    // initialize, initialized, the call, the read, the prompt, three pages.
    assert_eq!(posts.len(), 8, "{posts:?}");
    logged(&b_proc, "session continued from another replica").await;

    // DELETE on B ends the backend session too.
    let delete = client
        .delete(format!("{b}/mcp"))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", VERSION);
    assert_eq!(delete.send().await.expect("DELETE").status(), 200);
    let mut deleted = false;
    for _ in 0..100 {
        deleted = backend_record(&record)
            .iter()
            .any(|l| l["method"] == "DELETE" && l["mcp-session-id"] == json!(backend_session));
        if deleted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        deleted,
        "the backend session was ended: {:?}",
        backend_record(&record)
    );
    let echo = request(
        30,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "gone"}}),
    );
    let (status, _) = call(&client, &b, &session, &echo).await;
    assert_eq!(status, 404, "B ended the session");
    // A still held a copy: the backend's 404 ends it, and the request is answered
    // with why; from then on A answers 404 too.
    let (_, messages) = call(&client, &a, &session, &echo).await;
    let error = &only_answer(&messages, 30)["error"];
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("ended the session (HTTP 404)")),
        "{messages:?}"
    );
    let mut gone = false;
    for _ in 0..100 {
        if call(&client, &a, &session, &echo).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "{}", a_proc.output());
}

#[tokio::test]
async fn tampered_and_foreign_session_ids_are_refused() {
    let (_backend, backend) = python_http_backend(&[]);
    let config = replicas_config();
    let upstream = vec![format!("{backend}/mcp")];
    let (_a, a) = replica("a", KEY, Some(&config), &upstream);
    let (b_proc, b) = replica("b", KEY, Some(&config), &upstream);
    let (other_proc, other) = replica("c", OTHER_KEY, Some(&config), &upstream);
    let client = reqwest::Client::new();
    let session = open_session(&client, &a).await;

    let mut tampered = session.clone().into_bytes();
    let at = tampered.len() - 4;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let echo = request(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    for (base, id) in [
        (&b, &tampered),
        (&other, &session),
        (&b, &"v1.AAAA".to_owned()),
    ] {
        let request = post_mcp(&client, base, echo.to_string())
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", VERSION);
        let (status, _, body) = send_for_text(request).await;
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("session not found"), "{body}");
    }
    for proc in [&b_proc, &other_proc] {
        logged(
            proc,
            "refused a session id from another replica: it does not open with this replica's key",
        )
        .await;
    }
    // The genuine id still works on B.
    let (status, messages) = call(&client, &b, &session, &echo).await;
    assert_eq!(status, 200);
    assert_eq!(
        only_answer(&messages, 2)["result"]["content"][0]["text"],
        "x"
    );
}

#[tokio::test]
async fn without_replicas_another_proxy_does_not_know_the_session() {
    let (_backend, backend) = python_http_backend(&[]);
    let upstream = vec![format!("{backend}/mcp")];
    let (_a, a) = replica("a", KEY, None, &upstream);
    let (_b, b) = replica("b", KEY, None, &upstream);
    let client = reqwest::Client::new();
    let session = open_session(&client, &a).await;
    assert_eq!(session.len(), 32, "a plain random id: {session}");
    let echo = request(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let request = post_mcp(&client, &b, echo.to_string())
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", VERSION);
    let (status, _, body) = send_for_text(request).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("session not found"), "{body}");
}

#[tokio::test]
async fn a_stdio_backed_session_names_its_replica_and_stays_there() {
    let config = replicas_config();
    let (_a, a) = replica("a", KEY, Some(&config), &full_server());
    let (_b, b) = replica("b", KEY, Some(&config), &full_server());
    let client = reqwest::Client::new();
    let session = open_session(&client, &a).await;
    let (name, random) = session.split_once(':').expect("name:random");
    assert_eq!(name, "a");
    assert_eq!(random.len(), 32);

    let echo = request(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let request = post_mcp(&client, &b, echo.to_string())
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", VERSION);
    let (status, _, body) = send_for_text(request).await;
    assert_eq!(status, 404, "{body}");
    let error: Value = serde_json::from_str(&body).expect("a JSON-RPC error");
    assert_eq!(
        error["error"]["message"],
        "session belongs to replica `a` (its backends run there); route requests to the replica named before ':' in the session id, or start a new session with initialize"
    );
    // On its own replica it is served.
    let (status, messages) = call(&client, &a, &session, &echo).await;
    assert_eq!(status, 200);
    assert_eq!(
        only_answer(&messages, 2)["result"]["content"][0]["text"],
        "x"
    );

    // A legacy SSE session is its stream: its sessionId names the replica too.
    let stream = client
        .get(format!("{a}/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET /sse");
    let mut events = SseReader::new(stream);
    let (_, endpoint) =
        tokio::time::timeout(std::time::Duration::from_secs(20), events.next_event())
            .await
            .expect("the endpoint event in time")
            .expect("an endpoint event");
    let (path, legacy_id) = endpoint
        .split_once("?sessionId=")
        .unwrap_or_else(|| panic!("an endpoint with a sessionId: {endpoint}"));
    assert!(legacy_id.starts_with("a:"), "{endpoint}");
    let misrouted = client
        .post(format!("{b}{path}?sessionId={legacy_id}"))
        .header("content-type", "application/json")
        .body(echo.to_string());
    let (status, _, body) = send_for_text(misrouted).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("session belongs to replica `a`"), "{body}");
}

/// 2026-07-28 requests carry no session: either replica answers any of them.
#[tokio::test]
async fn sessionless_requests_are_answered_by_either_replica() {
    let (_backend, backend) = python_http_backend(&[]);
    let config = replicas_config();
    let upstream = vec![format!("{backend}/mcp")];
    let (_a, a) = replica("a", KEY, Some(&config), &upstream);
    let (_b, b) = replica("b", KEY, Some(&config), &upstream);
    let client = reqwest::Client::new();
    for id in 1..=6u64 {
        let base = if id % 2 == 0 { &a } else { &b };
        let text = format!("call {id}");
        let body = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "tools/call",
            "params": {
                "name": "echo",
                "arguments": {"text": text},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
                    "io.modelcontextprotocol/clientCapabilities": {}
                }
            }
        });
        let request = post_mcp(&client, base, body.to_string())
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "echo");
        let (status, session, body) = send_for_text(request).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(session, None, "no session is opened");
        let messages = messages_in(&body);
        assert_eq!(
            only_answer(&messages, id)["result"]["content"][0]["text"],
            text
        );
    }
}

/// A replica without its key does not start: it could not continue anyone's session.
#[test]
fn a_replica_without_its_key_refuses_to_start() {
    let config = replicas_config();
    let output = Command::new(interpose_bin())
        .args(["run", "--listen"])
        .arg(format!("http://127.0.0.1:{}", free_port()))
        .arg("--config")
        .arg(&config)
        .args(["--", "http://127.0.0.1:9/mcp"])
        .env_remove("INTERPOSE_SESSION_KEY")
        .env("INTERPOSE_REPLICA_NAME", "a")
        .output()
        .expect("run interpose");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "[replicas] key_env: the environment variable `INTERPOSE_SESSION_KEY` is not set or is empty"
        ),
        "{stderr}"
    );
    let output = Command::new(interpose_bin())
        .args(["run", "--listen"])
        .arg(format!("http://127.0.0.1:{}", free_port()))
        .arg("--config")
        .arg(&config)
        .args(["--", "http://127.0.0.1:9/mcp"])
        .env("INTERPOSE_SESSION_KEY", "c2hvcnQ=")
        .env("INTERPOSE_REPLICA_NAME", "a")
        .output()
        .expect("run interpose");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`INTERPOSE_SESSION_KEY` must hold 32 random bytes in base64"),
        "{stderr}"
    );
}

/// A gateway of two HTTP servers: the sealed id carries both backend sessions, and the
/// other replica calls each server's tool and reads each one's resource by its
/// prefixed name without listing first.
#[tokio::test]
async fn a_gateway_session_continues_across_replicas() {
    let (_x, x) = python_http_backend(&[]);
    let (_y, y) = python_http_backend(&[]);
    let config = unique_temp_path("interpose-replicas-gateway").with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "[replicas]\nkey_env = \"INTERPOSE_SESSION_KEY\"\nname_env = \"INTERPOSE_REPLICA_NAME\"\n\n[servers.x]\nurl = \"{x}/mcp\"\n\n[servers.y]\nurl = \"{y}/mcp\"\n"
        ),
    )
    .expect("write the config");
    let (_a, a) = replica("a", KEY, Some(&config), &[]);
    let (_b, b) = replica("b", KEY, Some(&config), &[]);
    let client = reqwest::Client::new();
    let session = open_session(&client, &a).await;
    assert!(session.starts_with("v1."), "{session}");
    for (id, server) in [(2u64, "x"), (3, "y")] {
        let text = format!("via {server}");
        let echo = request(
            id,
            "tools/call",
            json!({"name": format!("{server}_echo"), "arguments": {"text": text}}),
        );
        let (status, messages) = call(&client, &b, &session, &echo).await;
        assert_eq!(status, 200, "{messages:?}");
        assert_eq!(
            only_answer(&messages, id)["result"]["content"][0]["text"],
            text
        );
    }
    let read = request(4, "resources/read", json!({"uri": "y+test://static/2"}));
    let (_, messages) = call(&client, &b, &session, &read).await;
    assert_eq!(
        only_answer(&messages, 4)["result"]["contents"][0]["text"],
        "contents of test://static/2"
    );
}

/// Requests that reach a replica at once with an id it has not seen continue the
/// session once: one rebuilt session serves them all, each answered once.
#[tokio::test]
async fn concurrent_first_requests_on_a_replica_continue_the_session_once() {
    let (_backend, backend) = python_http_backend(&[]);
    let config = replicas_config();
    let upstream = vec![format!("{backend}/mcp")];
    let (_a, a) = replica("a", KEY, Some(&config), &upstream);
    let (b_proc, b) = replica("b", KEY, Some(&config), &upstream);
    let client = reqwest::Client::new();
    let session = open_session(&client, &a).await;
    let calls = (0..8u64).map(|i| {
        let (client, b, session) = (client.clone(), b.clone(), session.clone());
        async move {
            let id = 100 + i;
            let text = format!("at once {i}");
            let echo = request(
                id,
                "tools/call",
                json!({"name": "echo", "arguments": {"text": text}}),
            );
            let (status, messages) = call(&client, &b, &session, &echo).await;
            assert_eq!(status, 200, "{messages:?}");
            assert_eq!(
                only_answer(&messages, id)["result"]["content"][0]["text"],
                text
            );
        }
    });
    futures::future::join_all(calls).await;
    logged(&b_proc, "session continued from another replica").await;
    // Lines are flushed within 50 ms: a second one would be there by now.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let continued = b_proc
        .output()
        .matches("session continued from another replica")
        .count();
    assert_eq!(continued, 1, "{}", b_proc.output());
}
