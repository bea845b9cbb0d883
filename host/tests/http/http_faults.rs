//! Attacks and faults against the HTTP listener, through the real binary: clients of
//! the shared stateless session must not see or cancel each other's requests, batches
//! that reuse an id are refused, the session cap holds under concurrency and counts
//! backends until they are reaped, slow or stalled connections are let go, and a slow
//! reader never silently loses an answer.

use crate::http_support;

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
    let body = body.into();
    let handshake = serde_json::from_str::<Value>(&body).is_ok_and(|b| b["method"] == "initialize");
    let request = match session {
        Some(id) => post_mcp(client, base, body)
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-11-25"),
        // A 2025-era handshake: no version to claim yet.
        None if handshake => post_mcp(client, base, body),
        None => {
            // A complete 2026-07-28 request: the `_meta` envelope in each message and,
            // for one message, the `Mcp-Method` header (the shared stdio backend only
            // ever sees such requests).
            let body = with_envelopes(&body);
            let parsed: Value = serde_json::from_str(&body).expect("a JSON body");
            let method = parsed["method"].as_str().map(str::to_owned);
            let request = post_mcp(client, base, body).header("mcp-protocol-version", "2026-07-28");
            match method {
                Some(method) => request.header("mcp-method", method),
                None => request,
            }
        }
    };
    request.send().await.expect("POST")
}

/// `body` with the 2026-07-28 `_meta` envelope in each of its messages.
fn with_envelopes(body: &str) -> String {
    let mut parsed: Value = serde_json::from_str(body).expect("a JSON body");
    match &mut parsed {
        Value::Array(messages) => messages.iter_mut().for_each(add_envelope),
        message => add_envelope(message),
    }
    parsed.to_string()
}

/// Adds the 2026-07-28 `_meta` envelope to a request or notification.
fn add_envelope(message: &mut Value) {
    if message.get("method").is_none() {
        return;
    }
    if !message["params"].is_object() {
        message["params"] = json!({});
    }
    let meta = &mut message["params"]["_meta"];
    if !meta.is_object() {
        *meta = json!({});
    }
    meta["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
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
    let (proxy, base) = fault_proxy(&["--max-sessions", "4"]);
    let client = reqwest::Client::new();
    // A few rounds: the race the cap must win is a matter of timing.
    for round in 0..3 {
        let attempts = (0..40).map(|_| {
            let client = client.clone();
            let base = base.clone();
            tokio::spawn(async move {
                let response = post(&client, &base, None, INITIALIZE).await;
                let status = response.status().as_u16();
                let session = http_support::session_id(&response);
                (status, session, response.text().await.unwrap_or_default())
            })
        });
        let mut by_status: HashMap<u16, Vec<String>> = HashMap::new();
        let mut admitted = Vec::new();
        for attempt in attempts {
            let (status, session, body) = attempt.await.expect("task");
            admitted.extend(session);
            by_status.entry(status).or_default().push(body);
        }
        assert_eq!(
            by_status.get(&200).map_or(0, Vec::len),
            4,
            "round {round}: {by_status:?}"
        );
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
        for session in admitted {
            client
                .delete(format!("{base}/mcp"))
                .header("mcp-session-id", session)
                .send()
                .await
                .expect("DELETE");
        }
        // The slots come free once the backends are reaped.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !children_of(proxy.pid()).is_empty() {
            assert!(Instant::now() < deadline, "the backends were not reaped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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

/// Resident memory of `pid`, in MiB, from /proc.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024
}

/// Waits (20 s at most) for the server to close `tcp`; returns what it sent first.
async fn read_until_closed(tcp: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = tcp.read_to_end(&mut received);
    match tokio::time::timeout(Duration::from_secs(20), read).await {
        Ok(_) => String::from_utf8_lossy(&received).into_owned(),
        Err(_) => panic!("the connection is still open after 20 s"),
    }
}

fn address(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn an_oversized_body_gets_a_json_rpc_413_naming_the_request() {
    let (_proxy, base) = fault_proxy(&["--max-message-bytes", "2000"]);
    let client = reqwest::Client::new();
    let big = json!({"jsonrpc": "2.0", "id": "big-1", "method": "echo",
                     "params": {"pad": "x".repeat(5000)}})
    .to_string();
    let declared = post(&client, &base, None, big.clone()).await;
    assert_eq!(declared.status(), 413);
    let error: Value = declared.json().await.expect("a JSON-RPC error");
    assert_eq!(error["id"], "big-1", "{error}");
    assert_eq!(error["error"]["code"], -32600, "{error}");
    assert_eq!(
        error["error"]["data"],
        json!({"size": with_envelopes(&big).len(), "limit": 2000}),
        "{error}"
    );
    // Chunked, with no length to go by: refused once past the limit.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(500)
        .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let chunked = post_mcp(
        &client,
        &base,
        reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
    )
    .send()
    .await
    .expect("POST");
    assert_eq!(chunked.status(), 413);
    let error: Value = chunked.json().await.expect("a JSON-RPC error");
    assert_eq!(error["id"], "big-1", "{error}");
    assert_eq!(error["error"]["data"]["limit"], 2000, "{error}");
    assert!(
        error["error"]["data"]["size"].as_u64() > Some(2000),
        "{error}"
    );
}

#[tokio::test]
async fn slowloris_connections_are_closed_after_the_header_deadline() {
    use tokio::io::AsyncWriteExt;
    let (_proxy, base) = fault_proxy(&["--header-read-timeout", "1"]);
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut tcp = tokio::net::TcpStream::connect(address(&base))
            .await
            .expect("connect");
        tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .expect("a partial header");
        slow.push(tcp);
    }
    let started = Instant::now();
    for tcp in &mut slow {
        read_until_closed(tcp).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "closed well after the deadline: {:?}",
        started.elapsed()
    );
    // The listener still serves.
    let client = reqwest::Client::new();
    assert_eq!(post(&client, &base, None, INITIALIZE).await.status(), 200);
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_after_the_body_deadline() {
    use tokio::io::AsyncWriteExt;
    let (_proxy, base) = fault_proxy(&["--body-read-timeout", "1"]);
    let mut tcp = tokio::net::TcpStream::connect(address(&base))
        .await
        .expect("connect");
    tcp.write_all(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":42,",
    )
    .await
    .expect("a partial body");
    let response = read_until_closed(&mut tcp).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let error: Value = serde_json::from_str(body).expect("a JSON-RPC error");
    assert_eq!(error["id"], 42, "{error}");
    assert_eq!(error["error"]["code"], -32600, "{error}");
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_room_comes_back() {
    use tokio::io::AsyncWriteExt;
    let (_proxy, base) = fault_proxy(&["--max-connections", "8", "--header-read-timeout", "60"]);
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut tcp = tokio::net::TcpStream::connect(address(&base))
            .await
            .expect("connect");
        tcp.write_all(b"POST /mcp HTTP/1.1\r\n")
            .await
            .expect("write");
        idle.push(tcp);
    }
    // Accepted in order: once the 8 are in, a ninth is over the cap.
    let mut ninth = tokio::net::TcpStream::connect(address(&base))
        .await
        .expect("connect");
    let refused = read_until_closed(&mut ninth).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("the proxy already serves 8 connections; try again later"),
        "{refused}"
    );
    drop(idle);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match post_mcp(&client, &base, INITIALIZE).send().await {
            Ok(response) if response.status() == 200 => break,
            other => {
                assert!(Instant::now() < deadline, "no room came back: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn unauthenticated_partial_bodies_are_refused_before_they_are_read() {
    use tokio::io::AsyncWriteExt;
    let mut command = std::process::Command::new(interpose_bin());
    let port = free_port();
    let listen = format!("http://127.0.0.1:{port}");
    command
        .args([
            "run",
            "--listen",
            &listen,
            "--auth-token-env",
            "INTERPOSE_FAULTS_TOKEN",
            "--",
        ])
        .arg(python())
        .arg(fault_backend())
        .env("INTERPOSE_FAULTS_TOKEN", "s3cret");
    let proxy = Proc::start("interpose", command, "listening on");
    let before = rss_mib(proxy.pid());
    let chunk = vec![b'x'; 1024 * 1024];
    let attackers = (0..40).map(|_| {
        let address = address(&listen);
        let chunk = chunk.clone();
        tokio::spawn(async move {
            let mut tcp = tokio::net::TcpStream::connect(address).await.expect("connect");
            tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .expect("headers");
            // 15 MiB in chunks, never finished; the proxy may stop reading at any time.
            let write = async {
                for _ in 0..15 {
                    tcp.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                    tcp.write_all(&chunk).await?;
                    tcp.write_all(b"\r\n").await?;
                }
                Ok::<_, std::io::Error>(())
            };
            tokio::time::timeout(Duration::from_secs(20), write).await.ok();
            read_until_closed(&mut tcp).await
        })
    });
    for attacker in attackers {
        let response = attacker.await.expect("attacker");
        assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    }
    let after = rss_mib(proxy.pid());
    assert!(
        after < before + 64,
        "RSS grew from {before} MiB to {after} MiB"
    );
}

/// A batch of `count` requests with ids 1..=count.
fn batch(count: u64, method: &str, params: Value) -> String {
    let requests: Vec<Value> = (1..=count)
        .map(|id| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .collect();
    Value::Array(requests).to_string()
}

/// Adds the ids of the answers among `events` to `seen`.
fn count_answers(events: &[(String, String)], seen: &mut HashMap<u64, usize>) {
    for message in parsed(events) {
        if let Some(id) = message["id"].as_u64() {
            *seen.entry(id).or_default() += 1;
        }
    }
}

#[tokio::test]
async fn a_slow_reader_that_resumes_gets_every_answer_exactly_once() {
    let (_proxy, base) = fault_proxy(&[]);
    let client = reqwest::Client::new();
    let session = open_session(&client, &base).await;
    let body = batch(1200, "echo", json!({"pad": "p".repeat(10_000)}));
    let response = post(&client, &base, Some(&session), body).await;
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    let mut first = Vec::new();
    while first.len() < 50 {
        first.push(reader.next_event().await.expect("an event"));
    }
    // Stop reading long enough for the proxy to have everything else ready, then
    // lose the connection.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(reader);
    let last_seen = first.last().expect("events").0.clone();
    let resumed = client
        .get(format!("{base}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", &last_seen)
        .send()
        .await
        .expect("GET");
    assert_eq!(resumed.status(), 200);
    let rest = read_events(resumed, |_| false).await;
    let mut seen = HashMap::new();
    count_answers(&first, &mut seen);
    count_answers(&rest, &mut seen);
    let missing: Vec<u64> = (1..=1200).filter(|id| !seen.contains_key(id)).collect();
    assert!(
        missing.is_empty(),
        "{} answers lost: {missing:?}",
        missing.len()
    );
    assert!(seen.values().all(|&n| n == 1), "an answer came twice");
    assert_eq!(seen.len(), 1200);
}

#[tokio::test]
async fn replay_buffers_of_all_sessions_stay_within_the_budget() {
    let (proxy, base) = fault_proxy(&["--replay-budget-mib", "16"]);
    let client = reqwest::Client::new();
    let before = rss_mib(proxy.pid());
    let size = 4 * 1024 * 1024;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let session = open_session(&client, &base).await;
        for id in 1..=20 {
            let request =
                json!({"jsonrpc": "2.0", "id": id, "method": "big", "params": {"size": size}});
            let answers =
                all_messages(post(&client, &base, Some(&session), request.to_string()).await).await;
            assert_eq!(answers.len(), 1);
            assert_eq!(
                answers[0]["result"]["text"].as_str().map(str::len),
                Some(size)
            );
        }
        sessions.push(session);
    }
    // Every session is still open, its finished streams resumable.
    let after = rss_mib(proxy.pid());
    eprintln!("RSS {before} MiB before, {after} MiB after 240 MiB of answers");
    assert!(
        after < before + 120,
        "RSS grew from {before} MiB to {after} MiB for 240 MiB of answers already read"
    );
}

#[tokio::test]
async fn clients_that_never_read_or_drop_mid_request_do_not_hold_up_other_sessions() {
    use tokio::io::AsyncWriteExt;
    let (proxy, base) = fault_proxy(&["--slow-reader-timeout", "2"]);
    let client = reqwest::Client::new();
    let before = rss_mib(proxy.pid());
    // A: asks for 100 MiB of answers and does not read them.
    let stalled = open_session(&client, &base).await;
    let stalled_client = reqwest::Client::new();
    let never_read = post(
        &stalled_client,
        &base,
        Some(&stalled),
        batch(100, "big", json!({"size": 1024 * 1024})),
    )
    .await;
    assert_eq!(never_read.status(), 200);
    // C: sends half a request body and goes away.
    let mut dropped = tokio::net::TcpStream::connect(address(&base))
        .await
        .expect("connect");
    dropped
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"jsonrpc\":\"2.0\",")
        .await
        .expect("half a body");
    drop(dropped);
    // B: its calls are answered meanwhile, promptly.
    let other = open_session(&client, &base).await;
    let started = Instant::now();
    for id in 1..=20 {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "echo", "params": {"n": id}});
        let answers =
            all_messages(post(&client, &base, Some(&other), request.to_string()).await).await;
        assert_eq!(
            answers,
            vec![json!({"jsonrpc": "2.0", "id": id, "result": {"echo": {"n": id}}})]
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "20 calls took {:?}",
        started.elapsed()
    );
    // A's session gave up waiting: what A did not read is now small errors. (The
    // backend's own queue into the proxy may still have held the whole batch.)
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = rss_mib(proxy.pid());
    assert!(
        held < before + 250,
        "RSS grew from {before} MiB to {held} MiB for 100 MiB of answers"
    );
    // When A reads at last, each request has exactly one answer: a result, or an
    // error saying why it was dropped.
    let mut reader = SseReader::new(never_read);
    let mut answers: HashMap<u64, Value> = HashMap::new();
    let read = async {
        while let Some((_, data)) = reader.next_event().await {
            let message: Value = serde_json::from_str(&data).expect("JSON");
            let id = message["id"].as_u64().expect("an answer");
            assert!(
                answers.insert(id, message).is_none(),
                "id {id} answered twice"
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the stream ends");
    assert_eq!(answers.len(), 100);
    let errors: Vec<&Value> = answers
        .values()
        .filter(|m| m.get("error").is_some())
        .collect();
    assert!(!errors.is_empty(), "some answers were replaced");
    for error in errors {
        let text = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            text.contains("was dropped: the client did not read its event stream for 2s"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn partial_bodies_without_a_token_stay_within_the_body_budget() {
    use tokio::io::AsyncWriteExt;
    let (proxy, base) = fault_proxy(&["--body-budget-mib", "8"]);
    let before = rss_mib(proxy.pid());
    let chunk = vec![b'x'; 1024 * 1024];
    // Chunked bodies of 4 MiB so far, never finished, one after the other: two fill
    // the budget, the third is refused.
    let mut stalled = Vec::new();
    for n in 0..3 {
        let mut tcp = tokio::net::TcpStream::connect(address(&base))
            .await
            .expect("connect");
        tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .expect("headers");
        let write = async {
            for _ in 0..4 {
                tcp.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                tcp.write_all(&chunk).await?;
                tcp.write_all(b"\r\n").await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let written = tokio::time::timeout(Duration::from_secs(20), write).await;
        if n < 2 {
            assert!(matches!(written, Ok(Ok(()))), "body {n} is read");
            // Let the proxy take it all in.
            tokio::time::sleep(Duration::from_secs(1)).await;
            stalled.push(tcp);
        } else {
            let response = read_until_closed(&mut tcp).await;
            assert!(
                response.starts_with("HTTP/1.1 503"),
                "{}",
                response.get(..300).unwrap_or(&response)
            );
            assert!(response.contains("too many request bodies"), "{response}");
        }
    }
    let held = rss_mib(proxy.pid());
    assert!(
        held < before + 64,
        "RSS grew from {before} MiB to {held} MiB"
    );
    // The stalled bodies give their share back when their connections go.
    drop(stalled);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"pad": "p".repeat(6 * 1024 * 1024)}});
    loop {
        let response = post(&client, &base, None, big.to_string()).await;
        if response.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the budget did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
