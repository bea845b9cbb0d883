//! One server down costs only its own, through the real binary with real backends
//! (`tests/servers/faulty_server.py`): a server that hangs on `initialize` or cannot
//! be started is left out and named in errors; a server killed mid-call fails its
//! call at once and, with `restart = "on-failure"`, comes back after its backoff; one
//! that always crashes is retried with growing delays while the others serve; a single
//! backend with `--restart on-failure` outlives its backend.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http_support::repo;
use crate::support::{Proxy, error, result, scratch};

const NO_BACKEND: &[&str] = &[];
/// Generous bound for what happens "soon" on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn faulty_server() -> PathBuf {
    repo().join("tests/servers/faulty_server.py")
}

/// A `faulty_server.py` entry of an `mcpServers` file, with `args` after the script.
fn faulty_entry(args: &[&str]) -> Value {
    json!({"command": faulty_server(), "args": args})
}

/// `interpose run --servers FILE` for `servers` (the `mcpServers` object).
fn gateway(dir: tempfile::TempDir, servers: Value) -> Proxy {
    gateway_with(dir, servers, &[])
}

/// The same, with `flags` before `--servers`.
fn gateway_with(dir: tempfile::TempDir, servers: Value, flags: &[&str]) -> Proxy {
    let file = dir.path().join("servers.json");
    std::fs::write(&file, json!({ "mcpServers": servers }).to_string()).unwrap();
    let mut args: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
    args.extend(["--servers".as_ref(), file.as_os_str()]);
    Proxy::start_with_backend(&args, NO_BACKEND, &[]).holding(dir)
}

fn initialize(proxy: &mut Proxy) -> Value {
    let answer = proxy.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "interpose-tests", "version": "1.0.0"}}),
    );
    proxy.notify("notifications/initialized", json!({}));
    answer
}

fn tool_names(answer: &Value) -> Vec<String> {
    result(answer)["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn message(answer: &Value) -> &str {
    error(answer)["message"].as_str().unwrap_or_default()
}

/// The lines of a `--started` marker file (none yet: empty).
fn starts(marker: &Path) -> Vec<String> {
    std::fs::read_to_string(marker)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits (boundedly) until `marker` has at least `count` starts.
fn wait_for_starts(marker: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let lines = starts(marker);
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_tools_changed(message: &Value) -> bool {
    message["method"] == "notifications/tools/list_changed"
}

#[test]
fn a_server_that_hangs_or_cannot_start_is_left_out_and_named_in_errors() {
    let dir = scratch();
    // `hung` has a start timeout of its own; `stuck` has the flag's.
    let mut hung = faulty_entry(&["--hang-initialize"]);
    hung["start_timeout_ms"] = json!(1500);
    let mut proxy = gateway_with(
        dir,
        json!({
            "good": faulty_entry(&[]),
            "hung": hung,
            "stuck": faulty_entry(&["--hang-initialize"]),
            "missing": {"command": "/nonexistent/interpose-no-such-server"},
        }),
        &["--start-timeout", "2.5"],
    );

    let asked = Instant::now();
    let answer = initialize(&mut proxy);
    let waited = asked.elapsed();
    assert_eq!(
        result(&answer)["serverInfo"]["name"],
        "interpose",
        "{answer}"
    );
    // It waited for the longest start timeout, and no longer than the default (the
    // hung servers never answer at all).
    assert!(
        waited >= Duration::from_millis(2400),
        "answered after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );

    let listed = proxy.request(2, "tools/list", json!({}));
    let names = tool_names(&listed);
    assert!(names.contains(&"good_echo".to_owned()), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("good_")), "{names:?}");

    let echoed = proxy.call_tool(3, "good_echo", json!({"text": "still here"}));
    assert!(
        result(&echoed)["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("still here"),
        "{echoed}"
    );

    let hung = proxy.call_tool(4, "hung_echo", json!({}));
    assert_eq!(error(&hung)["code"], -32000, "{hung}");
    assert_eq!(message(&hung), "server `hung` did not start within 1.5s");
    assert_eq!(error(&hung)["data"]["server"], "hung");
    let stuck = proxy.call_tool(6, "stuck_echo", json!({}));
    assert_eq!(message(&stuck), "server `stuck` did not start within 2.5s");

    let missing = proxy.call_tool(5, "missing_echo", json!({}));
    assert!(
        message(&missing).starts_with("server `missing` is not available: could not start"),
        "{missing}"
    );
    assert!(
        message(&missing).contains("/nonexistent/interpose-no-such-server"),
        "{missing}"
    );

    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}

#[test]
fn a_server_killed_mid_call_fails_the_call_at_once_and_comes_back() {
    let dir = scratch();
    let marker = dir.path().join("flaky.starts");
    let marker_arg = marker.display().to_string();
    let mut flaky = faulty_entry(&["--started", &marker_arg]);
    flaky["restart"] = json!("on-failure");
    let mut proxy = gateway(dir, json!({"good": faulty_entry(&[]), "flaky": flaky}));
    initialize(&mut proxy);
    let names = tool_names(&proxy.request(2, "tools/list", json!({})));
    assert!(names.contains(&"flaky_stall".to_owned()), "{names:?}");
    let pid = wait_for_starts(&marker, 1)
        .first()
        .and_then(|line| line.strip_prefix("started ")?.parse::<i32>().ok())
        .expect("the flaky server wrote its pid");

    // A call it will never answer, then the process is killed.
    proxy.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "flaky_stall", "arguments": {}}}));
    // The call is forwarded before the good server's answer to a later request comes
    // back only if the relay read it first: it reads the client in order.
    let echoed = proxy.call_tool(4, "good_echo", json!({}));
    assert!(echoed.get("result").is_some(), "{echoed}");
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the flaky server");
    let failed = proxy.answer(3);
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "answered {took:?} after the kill"
    );
    assert_eq!(error(&failed)["code"], -32000, "{failed}");
    assert!(
        message(&failed)
            .starts_with("server `flaky`: backend `faulty_server.py` was killed by signal 9"),
        "{failed}"
    );
    assert!(
        message(&failed).ends_with("before answering `tools/call`"),
        "{failed}"
    );
    assert_eq!(error(&failed)["data"]["server"], "flaky");
    proxy.recv_matching("list_changed as the server left", is_tools_changed);

    // After its backoff it is back: the client hears the lists changed, and its tools
    // are listed and answer again.
    proxy.recv_matching("list_changed as the server returned", is_tools_changed);
    assert_eq!(wait_for_starts(&marker, 2).len(), 2);
    assert!(
        proxy
            .log()
            .contains("restarting server `flaky` (attempt 1)"),
        "{}",
        proxy.log()
    );
    let names = tool_names(&proxy.request(5, "tools/list", json!({})));
    assert!(names.contains(&"flaky_echo".to_owned()), "{names:?}");
    let echoed = proxy.call_tool(6, "flaky_echo", json!({"text": "back"}));
    assert!(
        result(&echoed)["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("back"),
        "{echoed}"
    );

    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}

#[test]
fn a_server_that_always_crashes_is_retried_with_growing_delays_while_others_serve() {
    let dir = scratch();
    let marker = dir.path().join("crashing.starts");
    let marker_arg = marker.display().to_string();
    let mut crashing = faulty_entry(&["--started", &marker_arg, "--exit-at-start", "1"]);
    crashing["restart"] = json!("on-failure");
    let mut proxy = gateway(
        dir,
        json!({"good": faulty_entry(&[]), "crashing": crashing}),
    );
    let answer = initialize(&mut proxy);
    assert_eq!(
        result(&answer)["serverInfo"]["name"],
        "interpose",
        "{answer}"
    );

    // The first start and three restarts: 0.5 s, 1 s and 2 s after each crash.
    let started = wait_for_starts(&marker, 4);
    assert!(started.len() >= 4, "started {} times", started.len());
    for (attempt, delay) in [(1, "500ms"), (2, "1s"), (3, "2s")] {
        let line = format!("restart {attempt} in {delay}");
        assert!(
            proxy.wait_for_log(&line, PATIENCE),
            "no `{line}` in the log:\n{}",
            proxy.log()
        );
    }
    // Meanwhile the good server answers, and calls to the crashing one fail at once,
    // naming it.
    let echoed = proxy.call_tool(2, "good_echo", json!({"text": "unbothered"}));
    assert!(echoed.get("result").is_some(), "{echoed}");
    let refused = proxy.call_tool(3, "crashing_echo", json!({}));
    assert!(
        message(&refused).starts_with("server `crashing`"),
        "{refused}"
    );

    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}

#[test]
fn one_backend_with_restart_outlives_its_backend() {
    let dir = scratch();
    let marker = dir.path().join("backend.starts");
    let server = faulty_server();
    let backend = [server.as_os_str(), "--started".as_ref(), marker.as_os_str()];
    let mut proxy =
        Proxy::start_with_backend(&["--restart", "on-failure"], &backend, &[]).holding(dir);
    let answer = initialize(&mut proxy);
    // Its tools can change now (it can die and come back): the client is told so.
    assert_eq!(
        result(&answer)["capabilities"]["tools"]["listChanged"],
        true,
        "{answer}"
    );
    assert_eq!(result(&answer)["serverInfo"]["name"], "faulty-server");
    let died = proxy.call_tool(2, "die", json!({"status": 3}));
    assert_eq!(
        message(&died),
        "backend `faulty_server.py` exited with status 3 before answering `tools/call`",
        "{died}"
    );
    proxy.recv_matching("list_changed as the backend returned", is_tools_changed);
    assert_eq!(wait_for_starts(&marker, 2).len(), 2);
    let echoed = proxy.call_tool(3, "echo", json!({"text": "again"}));
    assert!(
        result(&echoed)["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("again"),
        "{echoed}"
    );
    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}
