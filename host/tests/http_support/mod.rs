//! Shared by the tests that speak HTTP: starting the real `interpose` binary, real
//! backends (the Python test server over stdio or HTTP, server-everything) and real
//! clients (the Python SDK scenario script), and cleaning them up; requests to the
//! proxy's `/mcp` and reading their answers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

/// The handshake-era (2025-11-25) `initialize` that tests open sessions with.
pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

pub fn interpose_bin() -> &'static str {
    env!("CARGO_BIN_EXE_interpose")
}

/// The test venv's Python (with `mcp`), made by scripts/setup-tests.sh.
pub fn python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-tests.sh",
        python.display()
    );
    python
}

pub fn full_server() -> Vec<String> {
    vec![
        python().display().to_string(),
        repo()
            .join("tests/servers/full_server.py")
            .display()
            .to_string(),
    ]
}

/// server-everything's entry point, when the test node_modules are installed.
pub fn everything() -> PathBuf {
    let entry =
        repo().join("tests/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.exists(),
        "{} is missing: run scripts/setup-tests.sh",
        entry.display()
    );
    entry
}

/// A path in the temp dir that no other test (in this or another test binary) uses.
pub fn unique_temp_path(prefix: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A process started by a test: its output is collected, and it is stopped (SIGTERM,
/// then SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `command` and waits until a line of its stdout or stderr contains `ready`.
    pub fn start(name: &str, mut command: Command, ready: &str) -> Proc {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let output = output.clone();
            let ready_tx = ready_tx.clone();
            let ready = ready.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains(&ready) {
                        ready_tx.send(()).ok();
                    }
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        let proc = Proc {
            name: name.to_owned(),
            child,
            output,
        };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("{name} did not get ready; output:\n{}", proc.output());
        }
        proc
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then the exit status (killing it after 5 s).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM).ok();
        match self.wait_exit(Duration::from_secs(5)) {
            Some(status) => Some(status),
            None => {
                self.child.kill().ok();
                self.child.wait().ok()
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate();
        if std::thread::panicking() {
            eprintln!("---- output of {} ----\n{}", self.name, self.output());
        }
    }
}

/// `interpose run --listen http://127.0.0.1:PORT ARGS...`; returns it and its base URL.
pub fn proxy(args: &[&str]) -> (Proc, String) {
    let port = free_port();
    let listen = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(interpose_bin());
    command.arg("run").arg("--listen").arg(&listen).args(args);
    let proc = Proc::start("interpose", command, "listening on");
    (proc, listen)
}

/// `interpose run --listen http://127.0.0.1:PORT FLAGS... -- full_server.py`: the
/// proxy over HTTP in front of the Python test server over stdio, one per session.
pub fn proxy_to_full_server(flags: &[&str]) -> (Proc, String) {
    let mut args: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
    args.push("--".into());
    args.extend(full_server());
    proxy(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `interpose run ARGS...` with stdio for a client; not waited on.
pub fn stdio_proxy_command(args: &[&str]) -> Command {
    let mut command = Command::new(interpose_bin());
    command.arg("run").args(args);
    command
}

/// The Python test server over HTTP (/mcp and /sse); returns it and its base URL.
pub fn python_http_backend(extra: &[&str]) -> (Proc, String) {
    let port = free_port();
    let mut command = Command::new(python());
    command
        .arg(repo().join("tests/servers/full_http_server.py"))
        .arg("--port")
        .arg(port.to_string())
        .args(extra);
    let proc = Proc::start("full_http_server", command, "READY");
    (proc, format!("http://127.0.0.1:{port}"))
}

/// server-everything in `streamableHttp` or `sse` mode; returns it and its base URL.
pub fn everything_http(mode: &str) -> (Proc, String) {
    let port = free_port();
    let mut command = Command::new("node");
    command
        .arg(everything())
        .arg(mode)
        .env("PORT", port.to_string());
    let ready = if mode == "sse" {
        "running on port"
    } else {
        "listening on port"
    };
    let proc = Proc::start("server-everything", command, ready);
    (proc, format!("http://127.0.0.1:{port}"))
}

/// Runs the Python SDK client scenario (tests/clients/http_scenario.py) and returns the
/// JSON it printed.
pub fn python_scenario(args: &[&str]) -> serde_json::Value {
    let output = Command::new(python())
        .arg(repo().join("tests/clients/http_scenario.py"))
        .args(args)
        .output()
        .expect("run the scenario");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stdout.lines().last().unwrap_or("");
    let value: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|_| {
        panic!("scenario printed no JSON\nstdout:\n{stdout}\nstderr:\n{stderr}")
    });
    assert!(
        output.status.success(),
        "scenario {args:?} failed: {value}\nstderr:\n{stderr}"
    );
    value
}

/// Checks what the full scenario saw, for the client named `name`.
pub fn assert_full_scenario(seen: &serde_json::Value, name: &str) {
    assert_eq!(
        seen["progress"],
        serde_json::json!(["step 1 of 3", "step 2 of 3", "step 3 of 3"]),
        "progress notifications reach the caller: {seen}"
    );
    assert_full_scenario_without_progress(seen, name);
}

/// The same, for a backend that sends no progress (the Python SDK answering with JSON
/// drops a request's notifications: checked directly, without the proxy).
pub fn assert_full_scenario_without_progress(seen: &serde_json::Value, name: &str) {
    assert_eq!(seen["echo"], format!("hello from {name}"), "{seen}");
    assert_eq!(seen["progress_result"], "progressed 3 steps", "{seen}");
    assert_eq!(
        seen["sample"]["content"]["text"],
        format!("sampled by {name}"),
        "sampling went to the right client: {seen}"
    );
    assert_eq!(
        seen["elicit"]["content"]["name"], name,
        "elicitation went to the right client: {seen}"
    );
    assert_eq!(
        seen["roots"][0]["uri"],
        format!("file:///{name}"),
        "roots/list went to the right client: {seen}"
    );
    assert_eq!(
        seen["logs"], seen["log_result"]["sent"],
        "log notifications reach the client: {seen}"
    );
    assert_eq!(
        seen["server_requests"],
        serde_json::json!(["sampling/createMessage", "elicitation/create", "roots/list"]),
        "{seen}"
    );
}

/// Runs two full scenarios at once (clients `alice` and `bob`) against `url` and
/// checks that each saw only what was meant for it.
pub fn two_clients_at_once(url: &str, transport: &str) {
    let runs: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|name| {
            let url = url.to_owned();
            let transport = transport.to_owned();
            std::thread::spawn(move || {
                python_scenario(&["--url", &url, "--name", name, "--transport", &transport])
            })
        })
        .collect();
    for (run, name) in runs.into_iter().zip(["alice", "bob"]) {
        let seen = run.join().expect("scenario thread");
        assert_full_scenario(&seen, name);
    }
}

/// Reads the SSE events of a response one at a time, as `(id, data)`.
pub struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        SseReader {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event with data; `None` when the stream ends.
    pub async fn next_event(&mut self) -> Option<(String, String)> {
        use futures::StreamExt;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if !data.is_empty() {
                    return Some((id, data));
                }
            }
            let chunk = self.body.next().await?.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Reads SSE events (as `(id, data)`) from a response until `done` says so or the
/// stream ends; panics if that takes more than 20 s.
pub async fn read_events(
    response: reqwest::Response,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    // A 2026-07-28 request answered at once comes back as one JSON body.
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let body = tokio::time::timeout(Duration::from_secs(20), response.text())
            .await
            .expect("an answer in time")
            .expect("a body");
        return vec![(String::new(), body)];
    }
    let mut reader = SseReader::new(response);
    let mut events = Vec::new();
    let read = async {
        while let Some(event) = reader.next_event().await {
            events.push(event);
            if done(&events) {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("events in time");
    events
}

/// The `Mcp-Session-Id` a response carries, if any.
pub fn session_id(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A POST of `body` to the proxy's `/mcp` at `base`, with the `Content-Type` and
/// `Accept` every MCP client sends; the caller adds session and protocol headers.
pub fn post_mcp(
    client: &reqwest::Client,
    base: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
}

/// Sends `request`; returns the status, the session id the response names, and the body.
pub async fn send_for_text(request: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let session = session_id(&response);
    (
        status,
        session,
        response.text().await.expect("the body in time"),
    )
}

/// An initialized (2025-11-25) session on the proxy at `base`; returns its id.
pub async fn open_session(client: &reqwest::Client, base: &str) -> String {
    let (status, session, body) = send_for_text(post_mcp(client, base, INITIALIZE)).await;
    assert_eq!(status, 200, "{body}");
    let session = session.expect("a session id");
    let initialized = post_mcp(
        client,
        base,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .header("mcp-session-id", &session)
    .header("mcp-protocol-version", "2025-11-25");
    let status = initialized.send().await.expect("POST").status();
    assert_eq!(status, 202);
    session
}

/// The JSON-RPC messages of a response body, JSON or SSE.
pub fn messages_in(body: &str) -> Vec<Value> {
    let body = body.trim();
    if body.is_empty() {
        return Vec::new();
    }
    if body.starts_with('{') {
        return vec![serde_json::from_str(body).expect("a JSON body")];
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter(|data| !data.trim().is_empty())
        .map(|data| serde_json::from_str(data.trim()).expect("JSON in an SSE event"))
        .collect()
}

/// One sample of a scrape: its name, labels and value.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a `/metrics` scrape, as the Prometheus project's Python client
/// parses the text format (`prometheus_client.parser`): a scrape it refuses fails the
/// test.
pub fn prometheus_samples(text: &str) -> Vec<Sample> {
    const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples = [
    {"name": s.name, "labels": s.labels, "value": s.value}
    for family in text_string_to_metric_families(sys.stdin.read())
    for s in family.samples
]
print(json.dumps(samples))
"#;
    let mut child = Command::new(python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the parser");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .expect("write the scrape");
    let output = child.wait_with_output().expect("the parser's output");
    assert!(
        output.status.success(),
        "prometheus_client refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the parser's JSON")
}

/// The value of the sample `name` whose labels are exactly `labels`, if there is one.
pub fn sample_value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// A GET of `path` from the listener at `addr` (`HOST:PORT`), with a bearer token if
/// given; the status and the body.
pub fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a read timeout");
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("the response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
