//! Servers named in configuration (`interpose run --servers FILE.json`, `[servers.NAME]`
//! in `--config`) behind the real binary, with `tests/servers/full_server.py` (over stdio)
//! and `full_http_server.py` (over HTTP) as the server: the one enabled server is served
//! as today's single backend, under its key's name; several enabled servers are refused
//! before anything starts.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::http_support::{python, python_http_backend, repo};
use crate::support::{INTERPOSE, Proxy, config_file, result, scratch};

const NO_BACKEND: &[&str] = &[];

/// Initializes a session and checks that the full server answered it.
fn handshake(proxy: &mut Proxy) {
    let answer = proxy.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "interpose-tests", "version": "1.0.0"}}),
    );
    assert_eq!(
        result(&answer)["serverInfo"]["name"],
        "interpose-full-server",
        "{answer}"
    );
    proxy.notify("notifications/initialized", json!({}));
}

/// The text of a tool result's only content item.
fn only_text(answer: &Value) -> &str {
    let content = result(answer)["content"]
        .as_array()
        .unwrap_or_else(|| panic!("no content in {answer}"));
    assert_eq!(content.len(), 1, "{answer}");
    content[0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
}

#[test]
fn servers_file_serves_its_one_enabled_server() {
    let dir = scratch();
    let file = dir.path().join("servers.json");
    // As a desktop client would write it; `cwd` makes the relative script path work, and
    // the disabled entry, whose variable is not set, is skipped.
    let servers = json!({
        "mcpServers": {
            "full": {
                "command": python(),
                "args": ["full_server.py"],
                "cwd": repo().join("tests/servers"),
                "description": "the end-to-end test server"
            },
            "spare": {
                "command": "${env:INTERPOSE_TEST_UNSET_VARIABLE}",
                "disabled": true
            }
        }
    });
    std::fs::write(&file, servers.to_string()).unwrap();
    let mut proxy =
        Proxy::start_with_backend(&["--servers".as_ref(), file.as_os_str()], NO_BACKEND, &[])
            .holding(dir);
    handshake(&mut proxy);

    let answer = proxy.call_tool(2, "echo", json!({"text": "through the servers file"}));
    assert_eq!(only_text(&answer), "through the servers file");
    let answer = proxy.call_tool(3, "add", json!({"a": 2, "b": 3}));
    assert_eq!(result(&answer)["structuredContent"]["sum"], 5, "{answer}");

    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}

#[test]
fn config_server_table_is_served_under_its_name_with_its_plugins() {
    let dir = scratch();
    // The server's own plugin answers `whoami` with the message it saw, so the answer
    // shows the server's name as plugins see it.
    let config = config_file(
        dir.path(),
        &format!(
            r#"
            [servers.files]
            command = "{python}"
            args = ["{script}"]

            [[servers.files.plugins]]
            path = "{{fixture-verdicts}}"
            [servers.files.plugins.config]
            rules = [{{ method = "tools/call", tool = "whoami", verdict = "respond", echo = true }}]
            "#,
            python = python().display(),
            script = repo().join("tests/servers/full_server.py").display(),
        ),
    );
    let mut proxy =
        Proxy::start_loaded(&["--config".as_ref(), config.as_os_str()], NO_BACKEND, 1).holding(dir);
    handshake(&mut proxy);

    let answer = proxy.call_tool(2, "whoami", json!({}));
    assert_eq!(result(&answer)["seen"]["server"], "files", "{answer}");
    let answer = proxy.call_tool(3, "echo", json!({"text": "past the plugin"}));
    assert_eq!(only_text(&answer), "past the plugin");

    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}

#[test]
fn servers_file_reaches_a_remote_server_with_its_headers() {
    let dir = scratch();
    let record = dir.path().join("headers.jsonl");
    let (_backend, base) = python_http_backend(&["--record-headers", &record.to_string_lossy()]);
    let file = dir.path().join("mcp.json");
    // As Cursor writes a remote server: a URL, headers, a token from the environment.
    let servers = json!({"mcpServers": {"remote": {
        "url": format!("{base}/mcp"),
        "headers": {"X-Test": "from the file", "Authorization": "Bearer ${env:INTERPOSE_TEST_TOKEN}"}
    }}});
    std::fs::write(&file, servers.to_string()).unwrap();
    let mut proxy = Proxy::start_with_backend(
        &["--servers".as_ref(), file.as_os_str()],
        NO_BACKEND,
        &[("INTERPOSE_TEST_TOKEN", "t0ken")],
    );
    handshake(&mut proxy);
    let answer = proxy.call_tool(2, "echo", json!({"text": "over http"}));
    assert_eq!(only_text(&answer), "over http");
    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");

    let recorded = std::fs::read_to_string(&record).expect("recorded headers");
    let requests: Vec<Value> = recorded
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert!(requests.len() >= 2, "{recorded}");
    for request in &requests {
        assert_eq!(request["x-test"], "from the file", "{request}");
        assert_eq!(request["authorization"], "Bearer t0ken", "{request}");
    }
}

/// `interpose run ARGS` with no client; its exit success and what it wrote on stderr.
fn run_to_exit(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(INTERPOSE)
        .arg("run")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run interpose");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server entry that leaves `marker` behind if it is ever started.
fn marking_server(marker: &Path) -> Value {
    json!({"command": "sh", "args": ["-c", format!("touch '{}'", marker.display())]})
}

#[test]
fn several_enabled_servers_are_refused_before_any_starts() {
    let dir = scratch();
    let marker = dir.path().join("started");
    let file = dir.path().join("servers.json");
    let servers = json!({"mcpServers": {
        "alpha": marking_server(&marker),
        "beta": marking_server(&marker),
        "gamma": {"url": "http://127.0.0.1:9/mcp", "disabled": true}
    }});
    std::fs::write(&file, servers.to_string()).unwrap();

    let (ok, stderr) = run_to_exit(&["--servers".as_ref(), file.as_os_str()]);
    assert!(!ok, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "interpose: serving several servers at once is not available yet (issue #13): 2 \
         servers are enabled (`alpha`, `beta`); disable all but one (`enabled = false` in \
         interpose.toml, `\"disabled\": true` in an mcpServers file)"
    );
    assert!(!marker.exists(), "a server was started");
}

#[test]
fn servers_and_a_backend_do_not_mix() {
    let dir = scratch();
    let file = dir.path().join("servers.json");
    std::fs::write(&file, r#"{"mcpServers": {"a": {"command": "true"}}}"#).unwrap();

    let (ok, stderr) = run_to_exit(&[
        "--servers".as_ref(),
        file.as_os_str(),
        "--".as_ref(),
        "true".as_ref(),
    ]);
    assert!(!ok, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "interpose: give either a backend after `--` or servers (--servers FILE.json, \
         [servers] in --config), not both"
    );

    let (ok, stderr) = run_to_exit(&[
        "--servers".as_ref(),
        file.as_os_str(),
        "--header".as_ref(),
        "X-Key: 1".as_ref(),
    ]);
    assert!(!ok, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "interpose: --upstream, --header, --bearer-token-env, --env and --name apply to a \
         backend given after `--`; a server takes its settings from its own entry"
    );

    let (ok, stderr) = run_to_exit(&[]);
    assert!(!ok, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "interpose: no backend: give a command or URL after `--`, or servers with --servers \
         FILE.json or [servers] in --config"
    );
}
