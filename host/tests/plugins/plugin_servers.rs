//! Per-server plugin chains in a gateway, through the real binary, with two real
//! servers (`tests/servers/full_server.py` twice, as `alpha` and `beta`): the global
//! chain sees the client's (prefixed) names, a server's own chain that server's own
//! names, both are told the owning server, and the order is the one docs/plugins.md
//! gives.

use serde_json::{Value, json};

use crate::http_support::{python, repo};
use crate::support::{PLUGIN_ERROR, Proxy, check_to_exit, config_file, fixture, result, scratch};

const NO_BACKEND: &[&str] = &[];

/// A gateway of `alpha` and `beta`: audit-log as the global chain; alpha's own chain
/// audit-log then a tool-policy denying `echo`, alpha's own name for its tool.
fn gateway_config(dir: &std::path::Path) -> std::path::PathBuf {
    let server = |name: &str| {
        format!(
            "[servers.{name}]\ncommand = \"{}\"\nargs = [\"{}\"]\n",
            python().display(),
            repo().join("tests/servers/full_server.py").display()
        )
    };
    config_file(
        dir,
        &format!(
            r#"
            [[plugins]]
            path = "{audit}"

            {alpha}
            [[servers.alpha.plugins]]
            path = "{audit}"
            [[servers.alpha.plugins]]
            path = "{policy}"
            [servers.alpha.plugins.config]
            deny = ["echo"]

            {beta}
            "#,
            audit = fixture("audit-log").display(),
            policy = fixture("tool-policy").display(),
            alpha = server("alpha"),
            beta = server("beta"),
        ),
    )
}

/// The gateway of [`gateway_config`], started with JSON logs, after the handshake.
fn start_gateway(dir: &tempfile::TempDir) -> Proxy {
    let config = gateway_config(dir.path());
    let mut proxy = Proxy::start_loaded(
        &[
            "--log-format".as_ref(),
            "json".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
        NO_BACKEND,
        3,
    );
    assert_eq!(handshake(&mut proxy)["name"], "interpose");
    proxy
}

/// Initializes a session; returns the `serverInfo` the client got.
fn handshake(proxy: &mut Proxy) -> Value {
    let answer = proxy.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "interpose-tests", "version": "1.0.0"}}),
    );
    proxy.notify("notifications/initialized", json!({}));
    result(&answer)["serverInfo"].clone()
}

/// The audit-log lines about request `id` (in the order logged), each as
/// `(plugin, the plugin's record)`, once the (batched) log holds `count` of them.
fn audit_of(proxy: &Proxy, id: u64, count: usize) -> Vec<(String, Value)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let lines: Vec<(String, Value)> = proxy
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|line| {
                let record: Value = serde_json::from_str(line["message"].as_str()?).ok()?;
                (record["id"] == json!(id)).then(|| {
                    (
                        line["interpose.plugin.name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        record,
                    )
                })
            })
            .collect();
        if lines.len() >= count || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `(plugin, direction, kind, tool, server)` of each audit line, for comparing.
fn walk(lines: &[(String, Value)]) -> Vec<String> {
    lines
        .iter()
        .map(|(plugin, record)| {
            format!(
                "{plugin}: {} {} {} @{}",
                record["direction"].as_str().unwrap_or("?"),
                record["kind"].as_str().unwrap_or("?"),
                record["tool"].as_str().unwrap_or("-"),
                record["server"].as_str().unwrap_or("?"),
            )
        })
        .collect()
}

/// A call routed to alpha walks the global chain with the client's name, then alpha's
/// own chain with alpha's name, and its answer the reverse; each is told `alpha`.
/// beta has no chain of its own: its calls pass the global chain alone.
#[test]
fn a_routed_call_walks_the_global_chain_then_its_servers_own_and_back() {
    let dir = scratch();
    let mut proxy = start_gateway(&dir);

    let answer = proxy.call_tool(2, "alpha_add", json!({"a": 2, "b": 3}));
    assert_eq!(result(&answer)["structuredContent"]["sum"], 5, "{answer}");
    assert_eq!(
        walk(&audit_of(&proxy, 2, 4)),
        [
            "audit-log: to-server request alpha_add @alpha",
            "alpha/audit-log: to-server request add @alpha",
            "alpha/audit-log: to-client response add @alpha",
            "audit-log: to-client response alpha_add @alpha",
        ],
        "log:\n{}",
        proxy.log()
    );

    let answer = proxy.call_tool(3, "beta_add", json!({"a": 1, "b": 1}));
    assert_eq!(result(&answer)["structuredContent"]["sum"], 2, "{answer}");
    assert_eq!(
        walk(&audit_of(&proxy, 3, 2)),
        [
            "audit-log: to-server request beta_add @beta",
            "audit-log: to-client response beta_add @beta",
        ]
    );

    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}

/// alpha's tool-policy names alpha's own `echo`: it hides alpha's from the merged list
/// and refuses calls to it, with one error under the request's id that walks back
/// through alpha's chain and the global one; beta's `echo` is listed and answers.
#[test]
fn a_servers_own_policy_blocks_its_tool_and_spares_the_same_name_elsewhere() {
    let dir = scratch();
    let mut proxy = start_gateway(&dir);

    let answer = proxy.request(2, "tools/list", json!({}));
    let names: Vec<&str> = result(&answer)["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {answer}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert!(names.contains(&"beta_echo"), "{names:?}");
    assert!(names.contains(&"alpha_add"), "{names:?}");
    assert!(!names.contains(&"alpha_echo"), "{names:?}");

    let answer = proxy.call_tool(3, "alpha_echo", json!({"text": "blocked"}));
    assert_eq!(answer["id"], 3, "{answer}");
    assert_eq!(answer["error"]["code"], PLUGIN_ERROR, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("tool `echo` is denied by tool-policy"),
        "{answer}"
    );
    assert_eq!(
        walk(&audit_of(&proxy, 3, 4)),
        [
            "audit-log: to-server request alpha_echo @alpha",
            "alpha/audit-log: to-server request echo @alpha",
            "alpha/audit-log: to-client error echo @alpha",
            "audit-log: to-client error alpha_echo @alpha",
        ],
        "log:\n{}",
        proxy.log()
    );

    let answer = proxy.call_tool(4, "beta_echo", json!({"text": "through beta"}));
    assert_eq!(
        result(&answer)["content"][0]["text"],
        "through beta",
        "{answer}"
    );
    // The refused call got its one answer: the next answer is the next request's.
    let answer = proxy.request(5, "ping", json!({}));
    assert_eq!(answer, json!({"jsonrpc": "2.0", "id": 5, "result": {}}));

    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}

/// `interpose check` loads each server's chain as `interpose run` does, and a plugin
/// of a server's chain that cannot load is named with its server.
#[test]
fn check_loads_each_servers_chain_and_names_the_server_of_a_bad_plugin() {
    let dir = scratch();
    let config = gateway_config(dir.path());
    let (status, out) = check_to_exit(&["--config".as_ref(), config.as_os_str()]);
    assert!(status.success(), "{out}");
    assert_eq!(
        out.trim_end(),
        "ok: 1 plugin(s), 2 server(s) with 2 plugin(s) of their own"
    );

    let broken = config_file(
        dir.path(),
        r#"
        [servers.alpha]
        command = "python3"
        [[servers.alpha.plugins]]
        path = "{fixture-verdicts}"
        [servers.alpha.plugins.config]
        init_error = "no rules today"

        [servers.beta]
        command = "python3"
        "#,
    );
    let (status, out) = check_to_exit(&["--config".as_ref(), broken.as_os_str()]);
    assert!(!status.success(), "{out}");
    assert!(
        out.trim_end()
            .starts_with("interpose: server `alpha`: plugin `alpha/fixture_verdicts`"),
        "{out}"
    );
    assert!(out.contains("no rules today"), "{out}");
}

/// One server with plugins of its own is today's proxy: no prefixes, its plugins keep
/// their names, and they run after the global ones (and before them on the way back).
#[test]
fn a_lone_servers_plugins_run_after_the_global_ones_under_their_own_names() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!(
            r#"
            [[plugins]]
            path = "{audit}"

            [servers.solo]
            command = "{python}"
            args = ["{script}"]
            [[servers.solo.plugins]]
            path = "{audit}"
            name = "solo-audit"
            "#,
            audit = fixture("audit-log").display(),
            python = python().display(),
            script = repo().join("tests/servers/full_server.py").display(),
        ),
    );
    let mut proxy = Proxy::start_loaded(
        &[
            "--log-format".as_ref(),
            "json".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
        NO_BACKEND,
        2,
    );
    assert_eq!(handshake(&mut proxy)["name"], "interpose-full-server");
    let answer = proxy.call_tool(2, "add", json!({"a": 2, "b": 2}));
    assert_eq!(result(&answer)["structuredContent"]["sum"], 4, "{answer}");
    assert_eq!(
        walk(&audit_of(&proxy, 2, 4)),
        [
            "audit-log: to-server request add @solo",
            "solo-audit: to-server request add @solo",
            "solo-audit: to-client response add @solo",
            "audit-log: to-client response add @solo",
        ],
        "log:\n{}",
        proxy.log()
    );
    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
}
