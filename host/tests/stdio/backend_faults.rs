//! Misbehaving backends (`tests/servers/faulty_server.py`) behind the real `interpose`
//! binary: whatever the backend does, every request is answered exactly once (ids are
//! counted), the proxy's memory stays bounded (read from `/proc/PID/status`), errors
//! say what happened, and another session with its own backend process is unaffected.

use crate::http_support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_support::{
    Proc, free_port, interpose_bin, messages_in, open_session, post_mcp, repo, send_for_text,
};
use serde_json::{Value, json};

/// How long any single expected answer may take, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);
/// The proxy's peak memory may not exceed this while a backend misbehaves.
const RSS_LIMIT_KIB: u64 = 60 * 1024;

fn faulty_server() -> PathBuf {
    repo().join("tests/servers/faulty_server.py")
}

/// `VmRSS` or `VmHWM` (the peak) of process `pid`, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet: it runs no more).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Err(_) => true,
        Ok(status) => status
            .lines()
            .any(|line| line.starts_with("State:") && line.contains('Z')),
    }
}

/// `interpose run -- BACKEND...` with this test as its stdio client. Everything the
/// proxy writes is kept, so answers can be counted after the fact.
struct StdioProxy {
    child: Child,
    stdin: Option<ChildStdin>,
    received: Arc<Mutex<Vec<Value>>>,
    log: Arc<Mutex<String>>,
}

impl StdioProxy {
    fn start(backend: &[&str]) -> StdioProxy {
        let mut child = Command::new(interpose_bin())
            .arg("run")
            .arg("--")
            .args(backend)
            .env("RUST_LOG", "interpose=debug,warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start interpose");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("the proxy wrote a line that is not JSON ({e}): {line}")
                });
                sink.lock().unwrap().push(message);
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            // Bytes, not lines of UTF-8: the log quotes what the backend wrote.
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        StdioProxy {
            stdin: child.stdin.take(),
            child,
            received,
            log,
        }
    }

    fn faulty(args: &[&str]) -> StdioProxy {
        let server = faulty_server().display().to_string();
        let mut backend = vec![server.as_str()];
        backend.extend(args);
        let mut proxy = Self::start(&backend);
        proxy.initialize();
        proxy
    }

    fn initialize(&mut self) {
        let answer = self.request(
            1,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "backend-faults", "version": "1"}}),
        );
        assert!(answer.get("result").is_some(), "{answer}");
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").expect("write to interpose");
        stdin.flush().expect("flush");
    }

    fn send_call(&mut self, id: u64, tool: &str, arguments: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": tool, "arguments": arguments}}));
    }

    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.answer(id)
    }

    fn call(&mut self, id: u64, tool: &str, arguments: Value) -> Value {
        self.send_call(id, tool, arguments);
        self.answer(id)
    }

    /// Answers (results and errors, not requests) with this id received so far.
    fn answers_to(&self, id: u64) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
            .cloned()
            .collect()
    }

    fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| pred(m))
            .count()
    }

    /// Waits for the first answer to request `id`.
    fn answer(&self, id: u64) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(answer) = self.answers_to(id).into_iter().next() {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "no answer to request {id} within {PATIENCE:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits for the proxy to exit by itself.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader threads catch up with the last output.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the proxy did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes the client side and waits for the proxy to exit.
    fn finish(&mut self) -> ExitStatus {
        drop(self.stdin.take());
        self.wait_exit()
    }

    /// Asserts that each of `ids` was answered exactly once.
    fn assert_each_answered_once(&self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            let answers = self.answers_to(id);
            assert_eq!(
                answers.len(),
                1,
                "request {id} got {} answers: {answers:?}; log:\n{}",
                answers.len(),
                self.log()
            );
        }
    }
}

impl Drop for StdioProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn error_of(answer: &Value) -> (i64, String) {
    let error = answer
        .get("error")
        .unwrap_or_else(|| panic!("expected an error, got {answer}"));
    (
        error["code"].as_i64().expect("an error code"),
        error["message"]
            .as_str()
            .expect("an error message")
            .to_owned(),
    )
}

fn text_of(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a text result, got {answer}"))
}

/// The pid `fork_and_exit` logged for its grandchild.
fn grandchild_pid(log: &str) -> u32 {
    log.split("grandchild pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("the backend logged its grandchild's pid; log:\n{log}"))
}

/// Waits (bounded) for process `pid` to be gone.
fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !is_gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    is_gone(pid)
}

// ---- issue 12, item 3: backend stderr ----

#[test]
fn stderr_without_newline_keeps_the_proxy_small() {
    let mut proxy = StdioProxy::faulty(&[]);
    let before = memory_kib(proxy.pid(), "VmRSS");
    let answer = proxy.call(2, "stderr_flood", json!({"bytes": 400 << 20}));
    assert_eq!(text_of(&answer), "flooded stderr");
    let peak = memory_kib(proxy.pid(), "VmHWM");
    eprintln!("proxy RSS before the flood {before} KiB, peak {peak} KiB");
    assert!(
        peak < RSS_LIMIT_KIB,
        "400 MiB of stderr without a newline took the proxy to {peak} KiB"
    );
    // The backend lives on, and the next newline ends the long line in the log, cut.
    let answer = proxy.call(3, "stderr_lines", json!({"count": 1}));
    assert_eq!(text_of(&answer), "wrote lines");
    assert!(
        proxy.wait_for_log("[stderr line of 419431431 bytes cut to its first 8192]"),
        "{}",
        proxy.log().chars().rev().take(2000).collect::<String>()
    );
    assert!(proxy.finish().success());
    proxy.assert_each_answered_once(1..=3);
}

#[test]
fn stderr_byte_that_is_not_utf8_does_not_stop_stderr_being_read() {
    let mut proxy = StdioProxy::faulty(&[]);
    let answer = proxy.call(2, "stderr_bad_utf8", json!({}));
    assert_eq!(text_of(&answer), "wrote a bad byte");
    // More than a pipe buffer of stderr: with nobody reading, or the pipe closed, the
    // backend would block or die of SIGPIPE here.
    let answer = proxy.call(3, "stderr_lines", json!({"count": 300}));
    assert_eq!(text_of(&answer), "wrote lines");
    let answer = proxy.call(4, "echo", json!({"still": "alive"}));
    assert_eq!(text_of(&answer), r#"{"still": "alive"}"#);
    assert!(proxy.wait_for_log("bad \u{FFFD} byte"), "{}", proxy.log());
    assert!(proxy.wait_for_log("line 299 lll"));
    assert!(proxy.finish().success());
    proxy.assert_each_answered_once(1..=4);
}

// ---- issue 12, item 4: answers that do not parse ----

#[test]
fn answer_that_does_not_parse_fails_its_request_with_the_reason() {
    let mut proxy = StdioProxy::faulty(&[]);
    for (id, tool) in [(2, "nan"), (3, "truncated")] {
        let (code, message) = error_of(&proxy.call(id, tool, json!({})));
        assert_eq!(code, -32603, "{message}");
        assert!(
            message.starts_with(
                "backend `faulty_server.py` sent a message that cannot be read: invalid JSON:"
            ),
            "{tool}: {message}"
        );
    }
    let answer = proxy.call(4, "echo", json!({"after": "bad answers"}));
    assert_eq!(text_of(&answer), r#"{"after": "bad answers"}"#);
    assert!(proxy.finish().success());
    proxy.assert_each_answered_once(1..=4);
}

// ---- issue 12, item 10: a grandchild holding the backend's stdout ----

#[test]
fn backend_exit_ends_it_even_when_a_grandchild_holds_its_stdout() {
    let mut proxy = StdioProxy::faulty(&[]);
    proxy.send_call(2, "stall", json!({}));
    proxy.send_call(3, "fork_and_exit", json!({"seconds": 300, "status": 7}));
    for id in [2, 3] {
        let (code, message) = error_of(&proxy.answer(id));
        assert_eq!(code, -32000, "{message}");
        assert!(
            message.starts_with(
                "backend `faulty_server.py` exited with status 7 before answering `tools/call`"
            ),
            "{message}"
        );
    }
    let status = proxy.wait_exit();
    assert!(!status.success(), "a backend that ended is a failure exit");
    let log = proxy.log();
    let grandchild = grandchild_pid(&log);
    assert!(
        wait_gone(grandchild),
        "the grandchild {grandchild} outlived the proxy; log:\n{log}"
    );
    assert!(
        log.contains("processes started by the backend are still running; sending SIGTERM to its process group"),
        "{log}"
    );
    proxy.assert_each_answered_once(1..=3);
}

// ---- the fault suite: every request answered exactly once ----

#[test]
fn misbehaving_backend_gets_every_request_answered_exactly_once() {
    let mut proxy = StdioProxy::faulty(&[]);
    assert_eq!(text_of(&proxy.call(2, "answer_twice", json!({}))), "first");
    assert_eq!(text_of(&proxy.call(3, "unknown_id", json!({}))), "real");
    assert_eq!(
        text_of(&proxy.call(4, "garbage", json!({}))),
        "after garbage"
    );
    let flood = proxy.call(5, "flood", json!({"count": 5000, "size": 1000}));
    assert_eq!(text_of(&flood), "flooded");
    let notified = proxy.count(|m| m["method"] == "notifications/message");
    assert_eq!(
        notified, 5000,
        "notifications are relayed, in order, before the answer"
    );
    // The second answer to 2 and the stray answers are dropped, not sent on: whatever
    // arrives after the echo below is already in.
    assert_eq!(text_of(&proxy.call(6, "echo", json!({}))), "{}");
    let peak = memory_kib(proxy.pid(), "VmHWM");
    eprintln!("proxy peak RSS {peak} KiB");
    assert!(peak < RSS_LIMIT_KIB, "peak RSS {peak} KiB");

    // Two requests in flight when the backend dies: both fail, once each.
    proxy.send_call(7, "stall", json!({}));
    proxy.send_call(8, "die", json!({"status": 3}));
    for id in [7, 8] {
        let (code, message) = error_of(&proxy.answer(id));
        assert_eq!(code, -32000);
        assert!(message.contains("exited with status 3"), "{message}");
    }
    assert!(!proxy.wait_exit().success());
    proxy.assert_each_answered_once(1..=8);
    assert_eq!(
        proxy.count(|m| m.get("id").is_some() && m.get("method").is_none()),
        8,
        "no stray answer reached the client"
    );
    let log = proxy.log();
    assert!(
        log.contains("the backend answered a request that is not in flight; dropped"),
        "{log}"
    );
    assert!(
        log.contains("backend `faulty_server.py` sent a message that cannot be read"),
        "{log}"
    );
}

#[test]
fn stalled_requests_are_answered_when_the_client_leaves() {
    // `--fault stall`: no tools/call is ever answered, whatever the tool.
    let mut proxy = StdioProxy::faulty(&["--fault", "stall"]);
    for id in 2..=4 {
        proxy.send_call(id, "echo", json!({}));
    }
    let tools = proxy.request(5, "tools/list", json!({}));
    assert!(tools["result"]["tools"].is_array(), "{tools}");
    assert!(proxy.finish().success());
    for id in 2..=4 {
        let (code, message) = error_of(&proxy.answer(id));
        assert_eq!(code, -32000);
        assert_eq!(
            message,
            "the proxy is shutting down before answering `tools/call`"
        );
    }
    proxy.assert_each_answered_once(1..=5);
}

// ---- HTTP backends (issue 12, item 12 and item 4 over HTTP) ----

#[test]
fn http_backend_answering_without_json_rpc_gets_an_error_that_shows_what_it_sent() {
    let port = free_port();
    let mut command = Command::new("python3");
    command
        .arg(faulty_server())
        .args(["--http", &port.to_string()]);
    let _backend = Proc::start("faulty_server --http", command, "READY");
    let mut proxy = StdioProxy::start(&[&format!("http://127.0.0.1:{port}/mcp")]);
    proxy.initialize();

    let (code, message) = error_of(&proxy.call(2, "html", json!({})));
    assert_eq!(code, -32603);
    assert!(
        message.starts_with(&format!(
            "the backend at http://127.0.0.1:{port}/mcp answered HTTP 200 OK (text/html, 84 bytes) \
             without a JSON-RPC answer to the request: <html>\\n<head><title>502 Bad Gateway</title>"
        )),
        "{message}"
    );
    let (code, message) = error_of(&proxy.call(7, "bad_gateway", json!({})));
    assert_eq!(code, -32000);
    assert!(
        message.contains("answered HTTP 502 Bad Gateway (text/html, 84 bytes) without a JSON-RPC answer to the request: <html>\\n<head>"),
        "{message}"
    );
    let (_, message) = error_of(&proxy.call(3, "plain_text", json!({})));
    assert!(
        message.contains("(text/plain, 18 bytes)") && message.ends_with(": upstream timed out"),
        "{message}"
    );
    for (id, tool) in [(4, "nan"), (5, "truncated")] {
        let (code, message) = error_of(&proxy.call(id, tool, json!({})));
        assert_eq!(code, -32603, "{message}");
        assert!(
            message.contains("cannot be read: invalid JSON"),
            "{tool}: {message}"
        );
    }
    assert_eq!(
        text_of(&proxy.call(6, "echo", json!({"x": 1}))),
        r#"{"x": 1}"#
    );
    assert!(proxy.finish().success());
    proxy.assert_each_answered_once(1..=7);
}

// ---- another session is unaffected ----

async fn post(base: &str, session: Option<&str>, body: Value) -> (u16, Option<String>, Vec<Value>) {
    let mut request = post_mcp(&reqwest::Client::new(), base, body.to_string()).timeout(PATIENCE);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let (status, session, text) = send_for_text(request).await;
    (status, session, messages_in(&text))
}

/// Calls `tool` in `session` and returns the answers to `id` in the response.
async fn call(base: &str, session: &str, id: u64, tool: &str, arguments: Value) -> Vec<Value> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": tool, "arguments": arguments}});
    let (status, _, messages) = post(base, Some(session), body).await;
    assert_eq!(status, 200);
    messages
        .into_iter()
        .filter(|m| m["id"] == json!(id) && m.get("method").is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_backend_does_not_disturb_another_session() {
    let server = faulty_server().display().to_string();
    let port = free_port();
    let listen = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(interpose_bin());
    command
        .args(["run", "--listen", &listen, "--"])
        .arg(&server)
        .env("RUST_LOG", "interpose=info,warn");
    let proxy = Proc::start("interpose", command, "listening on");
    let client = reqwest::Client::new();
    let bad = open_session(&client, &listen).await;
    let good = open_session(&client, &listen).await;

    // The bad session's backend floods stderr, sends garbage and an answer that does
    // not parse, then exits leaving a grandchild on its stdout, a request in flight.
    let flood = call(
        &listen,
        &bad,
        2,
        "stderr_flood",
        json!({"bytes": 200 << 20}),
    );
    let good_meanwhile = call(&listen, &good, 2, "echo", json!({"during": "flood"}));
    let (flood, good_meanwhile) = tokio::join!(flood, good_meanwhile);
    assert_eq!(flood.len(), 1);
    assert_eq!(text_of(&flood[0]), "flooded stderr");
    assert_eq!(good_meanwhile.len(), 1);
    assert_eq!(text_of(&good_meanwhile[0]), r#"{"during": "flood"}"#);
    let garbage = call(&listen, &bad, 3, "garbage", json!({})).await;
    assert_eq!(garbage.len(), 1);
    let nan = call(&listen, &bad, 4, "nan", json!({})).await;
    assert_eq!(nan.len(), 1);
    assert_eq!(error_of(&nan[0]).0, -32603);

    let stalled = tokio::spawn({
        let (listen, bad) = (listen.clone(), bad.clone());
        async move { call(&listen, &bad, 5, "stall", json!({})).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exited = call(&listen, &bad, 6, "fork_and_exit", json!({"seconds": 300})).await;
    let stalled = stalled.await.expect("the stalled call returns");
    for answers in [&stalled, &exited] {
        assert_eq!(answers.len(), 1, "{answers:?}");
        let (code, message) = error_of(&answers[0]);
        assert_eq!(code, -32000);
        assert!(message.contains("exited with status 7"), "{message}");
    }

    // The other session's backend never noticed.
    for id in 3..=5 {
        let answers = call(&listen, &good, id, "echo", json!({"n": id})).await;
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert_eq!(text_of(&answers[0]), format!(r#"{{"n": {id}}}"#));
    }
    let grandchild = grandchild_pid(&proxy.output());
    assert!(
        wait_gone(grandchild),
        "the grandchild {grandchild} outlived its session; output:\n{}",
        proxy.output()
    );
    let peak = memory_kib(proxy.pid(), "VmHWM");
    eprintln!("HTTP proxy peak RSS {peak} KiB");
    assert!(peak < RSS_LIMIT_KIB, "peak RSS {peak} KiB");
}
