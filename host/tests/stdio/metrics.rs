//! Prometheus metrics after a real session: the real binary in stdio mode with the
//! admin listener, the Python test server behind it, fixture plugins that pass,
//! rewrite, reject and fail; the scrape read by the Prometheus project's own parser.

use serde_json::json;

use crate::http_support::{self, Sample, http_get, prometheus_samples, sample_value};
use crate::support::{self, PLUGIN_ERROR, Proxy};

/// `policy` rewrites `echo` calls and rejects `add`; `trapper` traps on `trap`,
/// `looper` spins past its deadline on `loop`; everything else passes.
const CHAIN: &str = r#"
[[plugins]]
path = "{fixture-verdicts}"
name = "policy"
[plugins.config]
methods = ["tools/call"]
kinds = ["request"]
rules = [
  { method = "tools/call", kind = "request", tool = "echo", verdict = "rewrite", payload = { name = "echo", arguments = { text = "rewritten" } } },
  { method = "tools/call", kind = "request", tool = "add", verdict = "reject", code = -32050, message = "add is not allowed here" },
]

[[plugins]]
path = "{fixture-trap}"
name = "trapper"

[[plugins]]
path = "{fixture-loop}"
name = "looper"
timeout_ms = 100
"#;

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    sample_value(samples, name, labels).unwrap_or_else(|| {
        let near: Vec<&Sample> = samples.iter().filter(|s| s.name == name).collect();
        panic!("no sample {name}{labels:?}; samples of that name: {near:#?}")
    })
}

#[test]
fn a_scrape_counts_what_a_session_through_plugins_did() {
    let dir = support::scratch();
    let config = support::config_file(dir.path(), CHAIN);
    let args = [
        "--config",
        config.to_str().expect("utf-8 path"),
        "--admin",
        "127.0.0.1:0",
        "--name",
        "full",
    ];
    let mut proxy = Proxy::start_loaded(&args, &http_support::full_server(), 3).holding(dir);
    let admin = proxy.admin_addr();
    assert_eq!(http_get(&admin, "/healthz", None).0, 200);

    let init = proxy.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
    );
    assert!(init.get("result").is_some(), "{init}");
    proxy.notify("notifications/initialized", json!({}));
    let (status, body) = http_get(&admin, "/readyz", None);
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let tools = proxy.request(2, "tools/list", json!({}));
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{tools}"
    );

    let echo = proxy.call_tool(3, "echo", json!({"text": "original"}));
    assert_eq!(echo["result"]["content"][0]["text"], "rewritten", "{echo}");
    let add = proxy.call_tool(4, "add", json!({"a": 1, "b": 2}));
    assert_eq!(add["error"]["code"], -32050, "{add}");
    let trap = proxy.call_tool(5, "trap", json!({}));
    assert_eq!(trap["error"]["code"], PLUGIN_ERROR, "{trap}");
    let spin = proxy.call_tool(6, "loop", json!({}));
    assert_eq!(spin["error"]["code"], PLUGIN_ERROR, "{spin}");
    assert!(
        spin["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deadline")),
        "{spin}"
    );
    let fail = proxy.call_tool(7, "fail", json!({}));
    assert_eq!(fail["result"]["isError"], true, "{fail}");

    let (status, text) = http_get(&admin, "/metrics", None);
    assert_eq!(status, 200, "{text}");
    let s = prometheus_samples(&text);

    // What the relay judged: 7 requests and `initialized` from the client; the
    // backend answered the 4 requests that reached it.
    let messages = "interpose_messages_total";
    let to_server = |kind| value(&s, messages, &[("direction", "to-server"), ("kind", kind)]);
    assert_eq!(to_server("request"), 7.0);
    assert_eq!(to_server("notification"), 1.0);
    let to_client = |kind| value(&s, messages, &[("direction", "to-client"), ("kind", kind)]);
    assert_eq!(to_client("response"), 4.0);
    assert_eq!(to_client("error"), 0.0);
    assert!(
        value(
            &s,
            "interpose_message_bytes_total",
            &[("direction", "to-client")]
        ) > 0.0
    );

    // The client's operations: each tools/call under its tool's name (a tool the
    // backend did not list is `_OTHER`), with its error.
    let server_ops = "mcp_server_operation_duration_seconds_count";
    let call = |labels: &[(&str, &str)]| {
        let mut all = vec![("mcp_method_name", "tools/call")];
        all.extend_from_slice(labels);
        value(&s, server_ops, &all)
    };
    assert_eq!(call(&[("gen_ai_tool_name", "echo")]), 1.0);
    assert_eq!(
        call(&[("gen_ai_tool_name", "add"), ("error_type", "-32050")]),
        1.0
    );
    assert_eq!(
        call(&[("gen_ai_tool_name", "_OTHER"), ("error_type", "-32001")]),
        2.0
    );
    assert_eq!(
        call(&[("gen_ai_tool_name", "fail"), ("error_type", "tool_error")]),
        1.0
    );
    assert_eq!(
        value(&s, server_ops, &[("mcp_method_name", "initialize")]),
        1.0
    );
    assert_eq!(
        value(&s, server_ops, &[("mcp_method_name", "tools/list")]),
        1.0
    );
    // Upstream, only what reached the backend.
    let client_ops = "mcp_client_operation_duration_seconds_count";
    let upstream = |labels: &[(&str, &str)]| {
        let mut all = vec![("server", "full"), ("mcp_method_name", "tools/call")];
        all.extend_from_slice(labels);
        sample_value(&s, client_ops, &all)
    };
    assert_eq!(upstream(&[]), Some(1.0));
    assert_eq!(upstream(&[("error_type", "tool_error")]), Some(1.0));

    // Each plugin's verdicts and failures, as the walk went.
    let verdicts = |plugin, verdict| {
        value(
            &s,
            "interpose_plugin_verdicts_total",
            &[("plugin", plugin), ("verdict", verdict)],
        )
    };
    assert_eq!(verdicts("policy", "rewrite"), 1.0);
    assert_eq!(verdicts("policy", "reject"), 1.0);
    assert_eq!(verdicts("policy", "pass"), 3.0);
    assert_eq!(verdicts("trapper", "pass"), 3.0);
    assert_eq!(verdicts("looper", "pass"), 2.0);
    let failures = |plugin, cause| {
        value(
            &s,
            "interpose_plugin_failures_total",
            &[("plugin", plugin), ("cause", cause)],
        )
    };
    assert_eq!(failures("trapper", "trap"), 1.0);
    assert_eq!(failures("looper", "deadline"), 1.0);
    assert_eq!(failures("policy", "trap"), 0.0);
    let calls = "interpose_plugin_call_duration_seconds_count";
    assert_eq!(
        value(&s, calls, &[("plugin", "policy"), ("hook", "request")]),
        5.0
    );
    assert_eq!(
        value(&s, calls, &[("plugin", "looper"), ("hook", "request")]),
        3.0
    );
    assert!(value(&s, "interpose_plugin_instances", &[("plugin", "policy")]) >= 1.0);

    // The session and its backend.
    assert_eq!(
        value(&s, "interpose_sessions_open", &[("transport", "stdio")]),
        1.0
    );
    assert_eq!(
        value(&s, "interpose_backend_up", &[("server", "full")]),
        1.0
    );
    // No label names a session.
    assert!(
        s.iter()
            .all(|sample| !sample.labels.contains_key("session"))
    );
    assert!(!text.contains("original"), "no payload text in a scrape");
    proxy.finish();
}

#[test]
fn the_admin_listener_refuses_a_non_loopback_address() {
    let (status, stderr) = support::run_to_exit(&["--admin", "0.0.0.0:0"]);
    assert!(!status.success());
    assert!(
        stderr.contains("refusing to serve the admin listener on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}
