//! Session lifecycle on the HTTP listener: each session gets its own backend process,
//! DELETE, idle expiry and SIGTERM stop it, and the cap on sessions holds.

use crate::http_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http_support::*;

async fn initialize(base: &str) -> (u16, Option<String>) {
    let response = post_mcp(&reqwest::Client::new(), base, INITIALIZE)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let session = http_support::session_id(&response);
    let body = response.text().await.unwrap_or_default();
    assert!(
        status != 200 || body.contains("\"protocolVersion\""),
        "initialize was answered: {body}"
    );
    (status, session)
}

/// A proxy whose backend writes its pid to a file when it starts.
fn proxy_with_pidfile(extra: &[&str]) -> (Proc, String, PathBuf) {
    let pidfile = unique_temp_path("interpose-pid");
    std::fs::remove_file(&pidfile).ok();
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    args.push("--".into());
    args.extend(full_server());
    args.push("--pidfile".into());
    args.push(pidfile.display().to_string());
    let (proxy, base) = proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (proxy, base, pidfile)
}

/// The pid the backend wrote, once it has.
fn backend_pid(pidfile: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            std::fs::remove_file(pidfile).ok();
            return pid;
        }
        assert!(Instant::now() < deadline, "the backend wrote no pid");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` is gone within `limit` (generous: the machine may be busy).
fn exits_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[tokio::test]
async fn delete_ends_the_session_and_stops_its_backend() {
    let (_proxy, base, pidfile) = proxy_with_pidfile(&[]);
    let (_, session) = initialize(&base).await;
    let session = session.expect("session id");
    let pid = backend_pid(&pidfile);
    let delete = || {
        reqwest::Client::new()
            .delete(format!("{base}/mcp"))
            .header("mcp-session-id", &session)
            .send()
    };
    assert_eq!(delete().await.expect("DELETE").status(), 200);
    assert!(
        exits_within(pid, Duration::from_secs(15)),
        "the backend stopped"
    );
    assert_eq!(delete().await.expect("DELETE").status(), 404);
}

#[tokio::test]
async fn idle_sessions_expire_and_stop_their_backend() {
    let (_proxy, base, pidfile) = proxy_with_pidfile(&["--session-idle-timeout", "1"]);
    let (status, session) = initialize(&base).await;
    assert_eq!(status, 200);
    let pid = backend_pid(&pidfile);
    assert!(
        exits_within(pid, Duration::from_secs(15)),
        "the idle session's backend was stopped"
    );
    let response = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("mcp-session-id", session.expect("session id"))
        .body(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn session_cap_is_enforced_and_frees_up() {
    let (_proxy, base) = proxy_to_full_server(&["--max-sessions", "1"]);
    let (status, first) = initialize(&base).await;
    assert_eq!(status, 200);
    let (status, _) = initialize(&base).await;
    assert_eq!(status, 503, "over the cap");
    reqwest::Client::new()
        .delete(format!("{base}/mcp"))
        .header("mcp-session-id", first.expect("session id"))
        .send()
        .await
        .expect("DELETE");
    // The slot comes free once the ended session's backend has been reaped.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = initialize(&base).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "no room once a session ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn sigterm_stops_every_session_backend() {
    let (mut proxy, base, pidfile) = proxy_with_pidfile(&[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (status, _) = runtime.block_on(initialize(&base));
    assert_eq!(status, 200);
    let pid = backend_pid(&pidfile);
    let status = proxy.terminate().expect("the proxy exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        exits_within(pid, Duration::from_millis(500)),
        "the backend was stopped before the proxy exited"
    );
}
