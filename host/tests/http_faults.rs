//! Attacks and faults against the HTTP listener, through the real binary: clients of
//! the shared stateless session must not see or cancel each other's requests, batches
//! that reuse an id are refused, the session cap holds under concurrency and counts
//! backends until they are reaped, slow or stalled connections are let go, and a slow
//! reader never silently loses an answer.

mod http_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_support::*;
use serde_json::{Value, json};

/// A stdlib JSON-RPC backend over stdio whose answers the tests control:
/// - `hold` is not answered until `release`, which first sends each held request a
///   progress notification (for its own token, with a message naming its `label`),
///   then answers them (`{"label": ...}`), then answers itself;
/// - `cancelled` answers the `requestId`s of every `notifications/cancelled` received;
/// - `big` answers `{"text": "x" * size}`;
/// - `initialize` answers with the client's protocol version; anything else is echoed;
/// - at the end of its input it takes 0.3 s to exit, as a backend cleaning up does.
const FAULT_BACKEND: &str = r#"
import json, sys, time
held, cancelled = [], []
def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    if not line.strip():
        continue
    msg = json.loads(line)
    method, params = msg.get("method"), msg.get("params") or {}
    if "id" not in msg:
        if method == "notifications/cancelled":
            cancelled.append(params.get("requestId"))
        continue
    if method == "hold":
        held.append(msg)
    elif method == "release":
        for h in held:
            p = h.get("params") or {}
            token = (p.get("_meta") or {}).get("progressToken")
            send({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                "progressToken": token, "progress": 1, "message": "secret of " + p.get("label", "")}})
        for h in held:
            send({"jsonrpc": "2.0", "id": h["id"], "result": {"label": (h.get("params") or {}).get("label")}})
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"released": len(held)}})
        held = []
    elif method == "cancelled":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"cancelled": cancelled}})
    elif method == "big":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"text": "x" * int(params.get("size", 0))}})
    elif method == "initialize":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {
            "protocolVersion": params.get("protocolVersion"), "capabilities": {},
            "serverInfo": {"name": "fault-backend", "version": "0"}}})
    else:
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"echo": params}})
time.sleep(0.3)
"#;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

/// The fault backend's script, written once per test binary.
fn fault_backend() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path = unique_temp_path("interpose-fault-backend").with_extension("py");
        std::fs::write(&path, FAULT_BACKEND).expect("write the backend script");
        path
    })
    .clone()
}

/// The proxy over HTTP with `extra` flags, in front of the fault backend.
fn fault_proxy(extra: &[&str]) -> (Proc, String) {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.push("--".into());
    args.push(python().display().to_string());
    args.push(fault_backend().display().to_string());
    proxy(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A POST to /mcp, with a session id or (2026-07-28) without one.
async fn post(
    client: &reqwest::Client,
    base: &str,
    session: Option<&str>,
    body: impl Into<String>,
) -> reqwest::Response {
    let mut request = client
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    request = match session {
        Some(id) => request
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-11-25"),
        None => request.header("mcp-protocol-version", "2026-07-28"),
    };
    request.body(body.into()).send().await.expect("POST")
}

/// Opens a session; returns its id.
async fn open_session(client: &reqwest::Client, base: &str) -> String {
    let response = post(client, base, None, INITIALIZE).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["mcp-session-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    response.text().await.expect("initialize answer");
    id
}

fn parsed(events: &[(String, String)]) -> Vec<Value> {
    events
        .iter()
        .map(|(_, data)| serde_json::from_str(data).expect("events carry JSON"))
        .collect()
}

/// Reads a response stream to its end (20 s at most); the messages it carried.
async fn all_messages(response: reqwest::Response) -> Vec<Value> {
    parsed(&read_events(response, |_| false).await)
}

fn hold(id: u64, label: &str, token: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "hold",
           "params": {"label": label, "_meta": {"progressToken": token}}})
    .to_string()
}

#[tokio::test]
async fn stateless_clients_reusing_a_progress_token_see_only_their_own_progress() {
    let (_proxy, base) = fault_proxy(&[]);
    let client = reqwest::Client::new();
    // Both clients pick the same id and the same token; the first is still waiting
    // when the second comes.
    let alice = post(&client, &base, None, hold(1, "alice", "shared")).await;
    assert_eq!(alice.status(), 200);
    let bob = post(&client, &base, None, hold(1, "bob", "shared")).await;
    assert_eq!(bob.status(), 200);
    let release = post(
        &client,
        &base,
        None,
        r#"{"jsonrpc":"2.0","id":9,"method":"release"}"#,
    )
    .await;
    let released = all_messages(release).await;
    assert_eq!(released.last().unwrap()["result"]["released"], 2);
    for (response, name) in [(alice, "alice"), (bob, "bob")] {
        let messages = all_messages(response).await;
        assert_eq!(
            messages,
            vec![
                json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                    "progressToken": "shared", "progress": 1, "message": format!("secret of {name}")}}),
                json!({"jsonrpc": "2.0", "id": 1, "result": {"label": name}}),
            ],
            "{name} gets its own progress, under its own token, and its own answer"
        );
    }
}

#[tokio::test]
async fn stateless_cancellation_cannot_reach_another_clients_request() {
    let (_proxy, base) = fault_proxy(&[]);
    let client = reqwest::Client::new();
    let alice = post(&client, &base, None, hold(1, "alice", "a")).await;
    assert_eq!(alice.status(), 200);
    // Another client, without a session, guesses the ids in flight.
    for id in 1..=5 {
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": id, "reason": "attack"}});
        let response = post(&client, &base, None, cancel.to_string()).await;
        assert_eq!(response.status(), 202, "a notification is accepted");
    }
    let status = post(
        &client,
        &base,
        None,
        r#"{"jsonrpc":"2.0","id":2,"method":"cancelled"}"#,
    )
    .await;
    let status = all_messages(status).await;
    assert_eq!(
        status,
        vec![json!({"jsonrpc": "2.0", "id": 2, "result": {"cancelled": []}})],
        "no cancellation reached the backend"
    );
    let release = post(
        &client,
        &base,
        None,
        r#"{"jsonrpc":"2.0","id":3,"method":"release"}"#,
    )
    .await;
    all_messages(release).await;
    let answers = all_messages(alice).await;
    assert_eq!(
        answers.last(),
        Some(&json!({"jsonrpc": "2.0", "id": 1, "result": {"label": "alice"}})),
        "the request was not cancelled: {answers:?}"
    );
}

#[tokio::test]
async fn a_batch_with_a_duplicate_id_is_refused_not_left_open() {
    let (_proxy, base) = fault_proxy(&[]);
    let client = reqwest::Client::new();
    let session = open_session(&client, &base).await;
    let batch = r#"[{"jsonrpc":"2.0","id":5,"method":"echo","params":{"n":1}},{"jsonrpc":"2.0","id":5,"method":"echo","params":{"n":2}}]"#;
    for session in [Some(session.as_str()), None] {
        let response = tokio::time::timeout(
            Duration::from_secs(20),
            post(&client, &base, session, batch),
        )
        .await
        .expect("an answer in time");
        assert_eq!(response.status(), 400, "session {session:?}");
        let body: Value = response.json().await.expect("a JSON-RPC error");
        assert_eq!(body["error"]["code"], -32600, "{body}");
        assert_eq!(
            body["error"]["message"],
            "request id 5 appears more than once in the batch; each request needs its own id"
        );
    }
    // The session still serves distinct ids.
    let ok = post(
        &client,
        &base,
        Some(&session),
        r#"[{"jsonrpc":"2.0","id":5,"method":"echo"},{"jsonrpc":"2.0","id":6,"method":"echo"}]"#,
    )
    .await;
    let mut ids: Vec<u64> = all_messages(ok)
        .await
        .iter()
        .map(|m| m["id"].as_u64().expect("an answer"))
        .collect();
    ids.sort();
    assert_eq!(ids, vec![5, 6]);
}

/// The pids of the live (or not yet reaped) children of `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

#[tokio::test]
async fn concurrent_initializes_admit_exactly_the_session_cap() {
    let (_proxy, base) = fault_proxy(&["--max-sessions", "4"]);
    let client = reqwest::Client::new();
    let attempts = (0..40).map(|_| {
        let client = client.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let response = post(&client, &base, None, INITIALIZE).await;
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        })
    });
    let mut by_status: HashMap<u16, Vec<String>> = HashMap::new();
    for attempt in attempts {
        let (status, body) = attempt.await.expect("task");
        by_status.entry(status).or_default().push(body);
    }
    assert_eq!(by_status.get(&200).map_or(0, Vec::len), 4, "{by_status:?}");
    let refused = &by_status[&503];
    assert_eq!(refused.len(), 36, "{by_status:?}");
    for body in refused {
        let error: Value = serde_json::from_str(body).expect("a JSON-RPC error");
        assert_eq!(error["id"], 1, "{error}");
        assert_eq!(error["error"]["code"], -32000, "{error}");
        assert_eq!(
            error["error"]["message"],
            "the proxy already serves 4 sessions; try again later"
        );
    }
}

#[tokio::test]
async fn sessions_ended_with_delete_hold_their_slot_until_the_backend_is_reaped() {
    let (proxy, base) = fault_proxy(&["--max-sessions", "4"]);
    let proxy_pid = proxy.pid();
    let most_alive = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let most_alive = most_alive.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                most_alive.fetch_max(children_of(proxy_pid).len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let cycles = Arc::new(AtomicUsize::new(0));
    let workers = (0..6).map(|_| {
        let base = base.clone();
        let cycles = cycles.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(240);
            while cycles.fetch_add(1, Ordering::Relaxed) < 150 {
                let session = loop {
                    assert!(Instant::now() < deadline, "no slot came free");
                    let response = post(&client, &base, None, INITIALIZE).await;
                    if response.status() == 200 {
                        let id = response.headers()["mcp-session-id"]
                            .to_str()
                            .expect("ascii")
                            .to_owned();
                        response.text().await.expect("initialize answer");
                        break id;
                    }
                    assert_eq!(response.status(), 503);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                };
                let deleted = client
                    .delete(format!("{base}/mcp"))
                    .header("mcp-session-id", session)
                    .send()
                    .await
                    .expect("DELETE");
                assert_eq!(deleted.status(), 200);
            }
        })
    });
    for worker in workers {
        worker.await.expect("worker");
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    let most = most_alive.load(Ordering::Relaxed);
    assert!(
        (1..=4).contains(&most),
        "{most} backend processes were alive at once"
    );
}
