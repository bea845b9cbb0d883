//! Backends that fail under HTTP: requests in flight get JSON-RPC errors at once, the
//! dead session answers 404, a new `initialize` opens a new backend session, and an
//! unreachable backend is reported clearly. Nothing may hang: every wait is bounded.

use crate::http_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_support::*;

async fn post(base: &str, session: Option<&str>, body: &str) -> (u16, Option<String>, String) {
    let mut request =
        post_mcp(&reqwest::Client::new(), base, body.to_owned()).timeout(Duration::from_secs(20));
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    send_for_text(request).await
}

#[tokio::test]
async fn crashed_stdio_backend_fails_requests_and_a_new_session_starts_a_new_one() {
    let (_proxy, base) = proxy_to_full_server(&[]);
    let session = open_session(&reqwest::Client::new(), &base).await;

    // One call in flight, then the backend dies in another.
    let slow = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{"label":"x","max_seconds":30}}}"#;
    let in_flight = tokio::spawn({
        let (base, session) = (base.clone(), session.clone());
        async move { post(&base, Some(&session), slow).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let crash = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"crash","arguments":{}}}"#;
    let (_, _, crashed) = post(&base, Some(&session), crash).await;
    let (_, _, slow_answer) = in_flight.await.expect("the slow call returns");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "errors come promptly"
    );
    for (answer, id) in [(&crashed, 3), (&slow_answer, 2)] {
        assert!(answer.contains(&format!("\"id\":{id}")), "{answer}");
        assert!(answer.contains("\"code\":-32000"), "{answer}");
        assert!(answer.contains("exited with status 3"), "{answer}");
    }

    // The dead session is gone; a new initialize gets a new backend.
    let list = r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#;
    let (status, _, _) = post(&base, Some(&session), list).await;
    assert_eq!(status, 404);
    let fresh = open_session(&reqwest::Client::new(), &base).await;
    assert_ne!(fresh, session);
    let (status, _, tools) = post(&base, Some(&fresh), list).await;
    assert_eq!(status, 200);
    assert!(tools.contains("\"echo\""), "{tools}");
}

#[tokio::test]
async fn unreachable_http_backend_is_a_clear_error() {
    let dead = format!("http://127.0.0.1:{}/mcp", free_port());
    let (_proxy, base) = proxy(&["--", &dead]);
    let started = Instant::now();
    let (status, _, body) = post(&base, None, INITIALIZE).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(status, 200, "the request itself gets the answer: {body}");
    assert!(body.contains("\"id\":1"), "{body}");
    assert!(body.contains("cannot reach the backend"), "{body}");
}

#[test]
fn stdio_client_to_unreachable_http_backend_gets_an_error_and_the_proxy_exits() {
    let dead = format!("http://127.0.0.1:{}/mcp", free_port());
    let mut child = Command::new(interpose_bin())
        .args(["run", "--", &dead])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start interpose");
    let mut stdin = child.stdin.take().expect("piped");
    writeln!(stdin, "{INITIALIZE}").expect("write");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("an answer");
    assert!(line.contains("cannot reach the backend"), "{line}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the proxy exits");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "the backend failing is a failure exit");
}

#[tokio::test]
async fn http_backend_restart_is_survived_by_starting_a_new_session() {
    let port = free_port();
    let start_backend = || {
        let mut command = Command::new(python());
        command
            .arg(repo().join("tests/servers/full_http_server.py"))
            .args(["--port", &port.to_string()]);
        Proc::start("full_http_server", command, "READY")
    };
    let mut backend = start_backend();
    let (_proxy, base) = proxy(&["--", &format!("http://127.0.0.1:{port}/mcp")]);
    let session = open_session(&reqwest::Client::new(), &base).await;
    let list = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#;
    let (status, _, _) = post(&base, Some(&session), list).await;
    assert_eq!(status, 200);

    backend.terminate();
    let (_, _, failed) = post(&base, Some(&session), list).await;
    assert!(failed.contains("\"code\":-32000"), "{failed}");
    let (status, _, _) = post(&base, Some(&session), list).await;
    assert_eq!(status, 404, "the session ended with its backend");

    let _backend = start_backend();
    let fresh = open_session(&reqwest::Client::new(), &base).await;
    let (status, _, tools) = post(&base, Some(&fresh), list).await;
    assert_eq!(status, 200);
    assert!(tools.contains("\"echo\""), "{tools}");
}

#[tokio::test]
async fn oversized_answer_from_an_http_backend_becomes_an_error() {
    let (_backend, backend) = python_http_backend(&[]);
    let (_proxy, base) = proxy(&[
        "--max-message-bytes",
        "100000",
        "--",
        &format!("{backend}/mcp"),
    ]);
    let session = open_session(&reqwest::Client::new(), &base).await;
    let big = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"big","arguments":{"size":400000}}}"#;
    let (status, _, answer) = post(&base, Some(&session), big).await;
    assert_eq!(status, 200);
    assert!(answer.contains("\"id\":9"), "{answer}");
    assert!(answer.contains("100000-byte limit"), "{answer}");
    let list = r#"{"jsonrpc":"2.0","id":10,"method":"tools/list"}"#;
    let (status, _, tools) = post(&base, Some(&session), list).await;
    assert_eq!(status, 200, "the session goes on");
    assert!(tools.contains("\"echo\""), "{tools}");
}
