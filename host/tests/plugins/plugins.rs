//! Every verdict in each direction, through the real binary: a raw JSON-RPC client
//! on its stdio, `fixture-verdicts` in the chain, and the stdlib echo backend.
//!
//! `fixture-verdicts` follows the rules of its configuration ([`VERDICTS`]):
//! `tools/call` of `rewrite-args` (rewrites the arguments), `respond` (answers
//! itself), `reject` (error -32099); the response to `rewrite-result` (rewritten,
//! found by the request's params it asked for with `wants_request`); the
//! notification `notifications/drop-me` (dropped); a `sampling/createMessage`
//! request from the server (params rewritten).

use crate::support;

use serde_json::json;
use support::{Proxy, config_file, echoed_params, error, fixture, result, scratch};

/// A `[[plugins]]` entry for `fixture-verdicts` with the rules above.
pub const VERDICTS: &str = r#"
[[plugins]]
path = "{fixture-verdicts}"
[plugins.config]
wants_request = true
rules = [
  { method = "tools/call", kind = "request", tool = "rewrite-args", verdict = "rewrite",
    payload = { name = "rewrite-args", arguments = { rewritten = true } } },
  { method = "tools/call", kind = "request", tool = "respond", verdict = "respond",
    payload = { content = [{ type = "text", text = "answered by fixture-verdicts" }] } },
  { method = "tools/call", kind = "request", tool = "reject", verdict = "reject",
    code = -32099, message = "rejected by fixture-verdicts", data = { why = "test" } },
  { method = "tools/call", kind = "response", tool = "rewrite-result", verdict = "rewrite",
    payload = { "rewritten-result" = true } },
  { method = "notifications/drop-me", verdict = "reject" },
  { method = "sampling/createMessage", direction = "to-client", kind = "request",
    verdict = "rewrite", payload = { "rewritten-by" = "fixture-verdicts" } },
]
"#;

/// A proxy whose chain is the given config text.
fn with_config(text: &str) -> Proxy {
    let dir = scratch();
    let config = config_file(dir.path(), text);
    Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir)
}

fn with_verdicts() -> Proxy {
    with_config(VERDICTS)
}

#[test]
fn pass_plugin_leaves_messages_unchanged() {
    let mut proxy = Proxy::start(&["--plugin".as_ref(), fixture("fixture-pass").as_os_str()]);
    let answer = proxy.call_tool(1, "anything", json!({"text": "hi", "n": 1.50}));
    assert_eq!(
        echoed_params(&answer),
        &json!({"name": "anything", "arguments": {"text": "hi", "n": 1.5}})
    );
}

#[test]
fn rewritten_request_arguments_reach_the_backend() {
    let mut proxy = with_verdicts();
    let answer = proxy.call_tool(1, "rewrite-args", json!({"secret": "s3cr3t"}));
    assert_eq!(
        echoed_params(&answer),
        &json!({"name": "rewrite-args", "arguments": {"rewritten": true}})
    );
}

#[test]
fn respond_answers_without_the_backend() {
    let mut proxy = with_verdicts();
    let answer = proxy.call_tool(2, "respond", json!({}));
    assert_eq!(
        result(&answer),
        &json!({"content": [{"type": "text", "text": "answered by fixture-verdicts"}]})
    );
}

#[test]
fn rejected_request_gets_the_plugins_error() {
    let mut proxy = with_verdicts();
    let answer = proxy.call_tool(3, "reject", json!({}));
    assert_eq!(
        error(&answer),
        &json!({"code": -32099, "message": "rejected by fixture-verdicts", "data": {"why": "test"}})
    );
    // The session goes on.
    let answer = proxy.call_tool(4, "other", json!({}));
    assert_eq!(echoed_params(&answer)["name"], "other");
}

#[test]
fn rewritten_response_reaches_the_client() {
    let mut proxy = with_verdicts();
    let answer = proxy.call_tool(5, "rewrite-result", json!({}));
    assert_eq!(result(&answer), &json!({"rewritten-result": true}));
}

#[test]
fn rejected_notification_is_dropped() {
    let mut proxy = with_verdicts();
    proxy.notify("notifications/drop-me", json!({}));
    proxy.notify("notifications/keep-me", json!({}));
    let answer = proxy.request(6, "debug/seen", json!({}));
    assert_eq!(result(&answer), &json!({"seen": ["notifications/keep-me"]}));
}

#[test]
fn server_to_client_sampling_request_is_rewritten() {
    let mut proxy = with_verdicts();
    proxy.send(
        json!({"jsonrpc": "2.0", "id": 7, "method": "trigger/sampling",
                      "params": {"messages": [], "maxTokens": 10}}),
    );
    let sampling = proxy.recv_matching("the sampling request", |m| {
        m["method"] == "sampling/createMessage"
    });
    assert_eq!(
        sampling["params"],
        json!({"rewritten-by": "fixture-verdicts"})
    );
    proxy.send(json!({"jsonrpc": "2.0", "id": sampling["id"], "result": {"model": "m"}}));
    let answer = proxy.answer(7);
    assert_eq!(result(&answer), &json!({"sampled": {"model": "m"}}));
}

#[test]
fn chain_order_first_rejection_ends_the_walk() {
    // fixture-pass, then fixture-verdicts, then a plugin that would answer everything
    // itself: a rejection by verdicts means the third never sees the request.
    let mut proxy = with_config(&format!(
        "[[plugins]]\npath = \"{{fixture-pass}}\"\n{VERDICTS}\n{}",
        r#"
        [[plugins]]
        path = "{fixture-verdicts}"
        name = "last"
        config = { rules = [{ verdict = "respond", payload = { from = "last" } }] }
        "#
    ));
    let answer = proxy.call_tool(8, "reject", json!({}));
    assert_eq!(error(&answer)["code"], -32099);
    let answer = proxy.call_tool(9, "other", json!({}));
    assert_eq!(result(&answer), &json!({"from": "last"}));
}

#[test]
fn answers_walk_the_chain_backwards() {
    // Two rewriting plugins on responses: the last in the chain sees the backend's
    // answer first, and the first plugin has the last word.
    let mut proxy = with_config(
        r#"
        [[plugins]]
        path = "{fixture-verdicts}"
        name = "first"
        config = { rules = [{ kind = "response", verdict = "rewrite", echo = true }] }
        [[plugins]]
        path = "{fixture-verdicts}"
        name = "second"
        config = { rules = [{ kind = "response", verdict = "rewrite", payload = { by = "second" } }] }
        "#,
    );
    let answer = proxy.request(10, "ping", json!({}));
    let seen = &result(&answer)["seen"];
    assert_eq!(seen["payload"], r#"{"by":"second"}"#);
    assert_eq!(seen["direction"], "to-client");
    assert_eq!(seen["kind"], "response");
    assert_eq!(seen["method"], "ping");
}

#[test]
fn kv_store_is_shared_by_the_instances_of_a_plugin() {
    let mut proxy = Proxy::start(&["--plugin".as_ref(), fixture("fixture-kv").as_os_str()]);
    for n in 1..=5 {
        let answer = proxy.call_tool(n, "count", json!({}));
        assert_eq!(result(&answer)["structuredContent"], json!({"count": n}));
    }
}

/// The audit-log line for `kind` of request `id`, parsed, once the (batched) log has it.
fn audit_line(proxy: &Proxy, kind: &str, id: u64) -> serde_json::Value {
    let needle = format!(r#""kind":"{kind}","method":"tools/call","id":{id},"#);
    assert!(
        proxy.wait_for_log(&needle, std::time::Duration::from_secs(5)),
        "no audit line for the {kind} {id}; log:\n{}",
        proxy.log()
    );
    let log = proxy.log();
    let line = log.lines().find(|l| l.contains(&needle)).unwrap();
    let json = &line[line.find('{').unwrap()..line.rfind('}').unwrap() + 1];
    serde_json::from_str(json).unwrap()
}

/// With `--log-format json` every log line is one JSON object with its fields at the
/// top level; a plugin's line names the plugin and carries its text as the message.
#[test]
fn json_logs_are_one_object_per_line_naming_the_plugin() {
    let mut proxy = Proxy::start(&[
        "--log-format".as_ref(),
        "json".as_ref(),
        "--plugin".as_ref(),
        fixture("audit-log").as_os_str(),
    ]);
    proxy.call_tool(5, "echo", json!({"text": "logged"}));
    let needle = r#"\"kind\":\"response\",\"method\":\"tools/call\",\"id\":5,"#;
    assert!(
        proxy.wait_for_log(needle, std::time::Duration::from_secs(5)),
        "no audit line; log:\n{}",
        proxy.log()
    );
    let (status, log) = proxy.finish();
    assert!(status.success(), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    let audit = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains(r#""kind":"response""#))
        })
        .expect("the audit line");
    assert_eq!(audit["interpose.plugin.name"], "audit-log", "{audit}");
    let record: serde_json::Value =
        serde_json::from_str(audit["message"].as_str().unwrap()).expect("the plugin's JSON");
    assert_eq!(record["id"], 5);
}

#[test]
fn audit_log_gets_sizes_timing_and_the_tool_name_from_the_host() {
    let mut proxy = Proxy::start(&["--plugin".as_ref(), fixture("audit-log").as_os_str()]);
    let params = json!({"name": "echo", "arguments": {"text": "héllo"}});
    let line = serde_json::to_string(
        &json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}),
    )
    .unwrap();
    let answer = proxy.request_raw(5, &line);
    let result: &serde_json::value::RawValue = serde_json::from_str::<
        std::collections::HashMap<String, &serde_json::value::RawValue>,
    >(&answer)
    .unwrap()["result"];

    let request = audit_line(&proxy, "request", 5);
    assert_eq!(request["tool"], "echo");
    assert_eq!(request["bytes"], params.to_string().len());
    assert!(request.get("duration_ms").is_none());

    let response = audit_line(&proxy, "response", 5);
    assert_eq!(response["tool"], "echo", "named from the request's params");
    assert_eq!(
        response["bytes"],
        result.get().len(),
        "UTF-8 bytes of the result"
    );
    let waited = response["duration_ms"].as_f64().expect("answers are timed");
    assert!(waited > 0.0 && waited < 5000.0, "{waited}");
}

#[test]
fn answers_made_in_the_chain_walk_back_through_the_plugins_before() {
    // audit-log first; after it, plugins that answer requests themselves: a denial,
    // a `respond`, and a failure under the default `failure_policy = "reject"`.
    let mut proxy = with_config(&format!(
        r#"
        [[plugins]]
        path = "{audit}"
        [[plugins]]
        path = "{policy}"
        config = {{ deny = ["delete_*"] }}
        [[plugins]]
        path = "{{fixture-verdicts}}"
        config = {{ rules = [{{ tool = "respond", verdict = "respond", payload = {{ by = "verdicts" }} }}] }}
        [[plugins]]
        path = "{{fixture-trap}}"
        "#,
        audit = fixture("audit-log").display(),
        policy = fixture("tool-policy").display(),
    ));

    let answer = proxy.call_tool(11, "delete_everything", json!({}));
    let denial =
        "tool `delete_everything` is denied by tool-policy: it matches deny pattern `delete_*`";
    assert_eq!(error(&answer)["message"], denial);
    let seen = audit_line(&proxy, "error", 11);
    assert_eq!(seen["direction"], "to-client");
    assert_eq!(seen["error"], json!({"code": -32001, "message": denial}));
    assert_eq!(
        seen["tool"], "delete_everything",
        "the request's params come along"
    );
    assert!(seen["duration_ms"].as_f64().is_some(), "{seen}");

    let answer = proxy.call_tool(12, "respond", json!({}));
    assert_eq!(result(&answer), &json!({"by": "verdicts"}));
    let seen = audit_line(&proxy, "response", 12);
    assert_eq!(seen["bytes"], r#"{"by":"verdicts"}"#.len());
    assert_eq!(seen["tool"], "respond");

    let answer = proxy.call_tool(13, "trap", json!({}));
    let failed = error(&answer)["message"].as_str().unwrap().to_owned();
    assert!(
        failed.starts_with("plugin `fixture-trap` failed: trapped"),
        "{failed}"
    );
    let seen = audit_line(&proxy, "error", 13);
    assert_eq!(seen["error"]["message"], failed);

    // Each answer was seen once, on its way back.
    let answer = proxy.call_tool(14, "other", json!({}));
    assert_eq!(echoed_params(&answer)["name"], "other");
    audit_line(&proxy, "response", 14);
    let log = proxy.log();
    for id in 11..=13 {
        let answers = log
            .lines()
            .filter(|l| l.contains(r#""direction":"to-client""#))
            .filter(|l| l.contains(&format!(r#""method":"tools/call","id":{id},"#)))
            .count();
        assert_eq!(answers, 1, "answers to {id} the audit saw:\n{log}");
    }
}

#[test]
fn respond_to_a_notification_acts_as_rewrite() {
    let mut proxy = with_config(
        r#"
        [[plugins]]
        path = "{fixture-verdicts}"
        config = { rules = [{ method = "notifications/message", verdict = "respond",
                              payload = { level = "info", data = "from respond" } }] }
        "#,
    );
    proxy.send(
        json!({"jsonrpc": "2.0", "id": 20, "method": "trigger/notify",
                      "params": {"level": "info", "data": "from the backend"}}),
    );
    let note = proxy.recv_matching("the notification", |m| {
        m["method"] == "notifications/message"
    });
    assert_eq!(
        note["params"],
        json!({"level": "info", "data": "from respond"})
    );
    assert_eq!(result(&proxy.answer(20)), &json!({"notified": true}));
}
