//! Servers named in configuration (`interpose run --servers FILE.json`, `[servers.NAME]`
//! in `--config`) behind the real binary, with `tests/servers/full_server.py` (over stdio)
//! and `full_http_server.py` (over HTTP) as the server: the one enabled server is served
//! as today's single backend, under its key's name; several enabled servers are served
//! behind one endpoint as a gateway.

use std::path::Path;

use serde_json::{Value, json};

use crate::http_support::{python, python_http_backend, repo};
use crate::support::{Proxy, config_file, interpose_to_exit, result, scratch};

const NO_BACKEND: &[&str] = &[];

/// Initializes a session and checks that the full server answered it.
fn handshake(proxy: &mut Proxy) {
    handshake_with(proxy, "interpose-full-server");
}

/// Initializes a session and checks who answered it (`serverInfo.name`).
fn handshake_with(proxy: &mut Proxy, server: &str) {
    let answer = proxy.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "interpose-tests", "version": "1.0.0"}}),
    );
    assert_eq!(result(&answer)["serverInfo"]["name"], server, "{answer}");
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
    let mut all: Vec<&std::ffi::OsStr> = vec!["run".as_ref()];
    all.extend_from_slice(args);
    let (status, _, stderr) = interpose_to_exit(&all);
    (status.success(), stderr)
}

/// A server entry that leaves `marker` behind if it is ever started.
fn marking_server(marker: &Path) -> Value {
    json!({"command": "sh", "args": ["-c", format!("touch '{}'", marker.display())]})
}

/// The full test server as an `mcpServers` entry.
fn full_server_entry() -> Value {
    json!({"command": python(), "args": [repo().join("tests/servers/full_server.py")]})
}

/// Several enabled servers are one gateway: the client gets the gateway's own
/// `initialize`, one list with each server's tools under its name, and each call goes to
/// the server that offers the tool.
#[test]
fn several_servers_are_served_behind_one_endpoint() {
    let dir = scratch();
    let file = dir.path().join("servers.json");
    let servers = json!({"mcpServers": {
        "alpha": full_server_entry(),
        "beta": full_server_entry(),
        "gamma": {"url": "http://127.0.0.1:9/mcp", "disabled": true}
    }});
    std::fs::write(&file, servers.to_string()).unwrap();
    let mut proxy =
        Proxy::start_with_backend(&["--servers".as_ref(), file.as_os_str()], NO_BACKEND, &[])
            .holding(dir);
    let answer = proxy.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "interpose-tests", "version": "1.0.0"}}),
    );
    let init = result(&answer);
    assert_eq!(init["serverInfo"]["name"], "interpose", "{answer}");
    assert_eq!(init["protocolVersion"], "2025-06-18", "{answer}");
    assert_eq!(
        init["capabilities"]["tools"]["listChanged"], true,
        "{answer}"
    );
    proxy.notify("notifications/initialized", json!({}));

    let answer = proxy.request(2, "tools/list", json!({}));
    let names: Vec<&str> = result(&answer)["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {answer}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    for name in ["alpha_echo", "beta_echo", "alpha_add", "beta_add"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("alpha_") || n.starts_with("beta_")),
        "{names:?}"
    );

    let answer = proxy.call_tool(3, "alpha_echo", json!({"text": "to alpha"}));
    assert_eq!(only_text(&answer), "to alpha");
    let answer = proxy.call_tool(4, "beta_add", json!({"a": 2, "b": 3}));
    assert_eq!(result(&answer)["structuredContent"]["sum"], 5, "{answer}");
    let answer = proxy.call_tool(5, "gamma_echo", json!({"text": "nobody"}));
    assert_eq!(answer["error"]["code"], -32602, "{answer}");

    let answer = proxy.request(6, "resources/list", json!({}));
    let uris: Vec<&str> = result(&answer)["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no resources in {answer}"))
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert!(
        !uris.is_empty()
            && uris
                .iter()
                .all(|u| u.starts_with("alpha+") || u.starts_with("beta+")),
        "{uris:?}"
    );
    let answer = proxy.request(7, "resources/read", json!({"uri": uris[0]}));
    assert_eq!(result(&answer)["contents"][0]["uri"], uris[0], "{answer}");

    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}

/// Servers whose names make the same URI prefix are refused before any starts.
#[test]
fn servers_that_cannot_be_told_apart_are_refused_before_any_starts() {
    let dir = scratch();
    let marker = dir.path().join("started");
    let file = dir.path().join("servers.json");
    let servers = json!({"mcpServers": {
        "my_db": marking_server(&marker),
        "my-db": marking_server(&marker)
    }});
    std::fs::write(&file, servers.to_string()).unwrap();

    let (ok, stderr) = run_to_exit(&["--servers".as_ref(), file.as_os_str()]);
    assert!(!ok, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "interpose: servers `my-db` and `my_db` would share the prefix `my-db` of their \
         resource URIs (a URI scheme holds letters, digits and `-` only): rename one"
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
        "interpose: --upstream, --header, --bearer-token-env, --oauth-*, --env and --name \
         apply to a backend given after `--`; a server takes its settings from its own entry"
    );

    let (ok, stderr) = run_to_exit(&[]);
    assert!(!ok, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "interpose: no backend: give a command or URL after `--`, or servers with --servers \
         FILE.json or [servers] in --config"
    );
}

/// `--prefix never`: every server's names as they are, each call routed to the server
/// that lists the name; a name two servers list is kept by the first, and the log names
/// both. `[gateway] name` is the gateway's `serverInfo`.
#[test]
fn unprefixed_servers_keep_their_names_and_a_shared_name_is_logged() {
    let dir = scratch();
    let catalog = dir.path().join("catalog.json");
    let tools = json!({"tools": [
        {"name": "echo", "inputSchema": {"type": "object"}},
        {"name": "lookup", "inputSchema": {"type": "object"}}
    ]});
    std::fs::write(&catalog, json!({"tools": tools.to_string()}).to_string()).unwrap();
    let file = dir.path().join("servers.json");
    let servers = json!({"mcpServers": {
        "alpha": full_server_entry(),
        "beta": {"command": python(), "args": [crate::support::catalog_backend(), &catalog]}
    }});
    std::fs::write(&file, servers.to_string()).unwrap();
    let config = config_file(dir.path(), "[gateway]\nname = \"acme-gateway\"\n");
    let args = [
        "--servers".as_ref(),
        file.as_os_str(),
        "--prefix".as_ref(),
        "never".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ];
    let mut proxy = Proxy::start_with_backend(&args, NO_BACKEND, &[]).holding(dir);
    handshake_with(&mut proxy, "acme-gateway");

    let answer = proxy.request(2, "tools/list", json!({}));
    let names: Vec<&str> = result(&answer)["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {answer}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    for name in ["echo", "add", "lookup"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(
        names.iter().filter(|n| **n == "echo").count(),
        1,
        "{names:?}"
    );

    let answer = proxy.call_tool(3, "echo", json!({"text": "to alpha"}));
    assert_eq!(only_text(&answer), "to alpha");
    let answer = proxy.call_tool(4, "lookup", json!({"key": "k"}));
    assert_eq!(result(&answer)["structuredContent"]["call"], 1, "{answer}");

    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        log.contains("`echo` of server `beta` is left out: server `alpha` has the same name"),
        "{log}"
    );
}

/// The `_meta` envelope of a 2026-07-28 request.
fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "interpose-tests", "version": "1.0.0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// A 2026-07-28 client's `subscriptions/listen` through a gateway of two servers:
/// one acknowledgement for both, a list change from either on the client's stream
/// (naming its listen request), and cancelling the listen cancels it at each server.
#[test]
fn a_listen_through_the_gateway_hears_every_server_and_is_acknowledged_once() {
    let dir = scratch();
    let file = dir.path().join("servers.json");
    let servers = json!({"mcpServers": {
        "alpha": full_server_entry(),
        "beta": full_server_entry()
    }});
    std::fs::write(&file, servers.to_string()).unwrap();
    let mut proxy =
        Proxy::start_with_backend(&["--servers".as_ref(), file.as_os_str()], NO_BACKEND, &[])
            .holding(dir);
    let listen = json!({"notifications": {"toolsListChanged": true}, "_meta": modern_meta()});
    proxy.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": listen}),
    );
    let ack = proxy.recv_matching("the acknowledgement", |m| {
        m["method"] == "notifications/subscriptions/acknowledged"
    });
    assert_eq!(
        ack["params"],
        json!({"notifications": {"toolsListChanged": true},
               "_meta": {"io.modelcontextprotocol/subscriptionId": 1}}),
        "{ack}"
    );

    for (id, tool) in [(2, "beta_add_tool"), (3, "alpha_add_tool")] {
        let call = json!({"name": tool, "arguments": {}, "_meta": modern_meta()});
        proxy.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": call}));
        let changed = proxy.recv_matching("tools/list_changed", |m| {
            m["method"] == "notifications/tools/list_changed"
        });
        assert_eq!(
            changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 1,
            "{changed}"
        );
        let answer = proxy.answer(id);
        assert_eq!(only_text(&answer), "dynamic_tool added");
    }
    proxy.notify(
        "notifications/cancelled",
        json!({"requestId": 1, "reason": "done"}),
    );
    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(!log.contains("WARN"), "{log}");
}
