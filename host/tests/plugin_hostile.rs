//! Hostile plugins are contained: the message gets the failure policy's outcome with
//! an error naming the plugin and the cause, the session and the other plugins go on,
//! the proxy does not crash; a plugin that keeps failing is disabled.
//!
//! Each hostile fixture misbehaves on every `tools/call` request (and asks for
//! nothing else), so other traffic shows the proxy is still serving.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Proxy, config_file, echoed_params, error, fixture, result, scratch};

const PLUGIN_ERROR: i64 = -32001;

/// Calls a tool through a proxy running only `plugin` and returns the error message;
/// then checks the proxy still serves, and that a second call fails the same way
/// (the broken instance was replaced, not reused).
fn failure_of(plugin: &str) -> String {
    let mut proxy = Proxy::start(&["--plugin".as_ref(), fixture(plugin).as_os_str()]);
    let answer = proxy.call_tool(1, "anything", json!({}));
    let err = error(&answer).clone();
    assert_eq!(err["code"], PLUGIN_ERROR, "{answer}");
    assert_eq!(err["data"]["plugin"], plugin);
    let other = proxy.request(2, "ping", json!({}));
    assert_eq!(echoed_params(&other), &json!({}));
    let again = proxy.call_tool(3, "anything", json!({}));
    assert_eq!(error(&again)["message"], err["message"]);
    assert!(proxy.is_running());
    let message = err["message"].as_str().expect("message").to_owned();
    message
}

#[test]
fn endless_loop_is_stopped_at_the_deadline() {
    assert_eq!(
        failure_of("fixture-loop"),
        "plugin `fixture-loop` failed: deadline of 50 ms exceeded"
    );
}

#[test]
fn memory_bomb_is_stopped_at_the_memory_cap() {
    assert_eq!(
        failure_of("fixture-membomb"),
        "plugin `fixture-membomb` failed: memory limit of 64 MiB exceeded"
    );
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    assert_eq!(
        failure_of("fixture-recursion"),
        "plugin `fixture-recursion` failed: stack overflow"
    );
}

#[test]
fn trap_is_a_failure() {
    let message = failure_of("fixture-trap");
    assert!(
        message.starts_with("plugin `fixture-trap` failed: trapped: "),
        "{message}"
    );
}

#[test]
fn invalid_json_rewrite_is_a_failure() {
    assert_eq!(
        failure_of("fixture-bad-json"),
        "plugin `fixture-bad-json` failed: returned invalid JSON in `rewrite`"
    );
}

#[test]
fn giant_output_is_over_the_cap() {
    let dir = scratch();
    let config = config_file(
        &dir.path(),
        "[[plugins]]\npath = \"{fixture-giant}\"\nmax_output_bytes = 1000000\n",
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]);
    let answer = proxy.call_tool(1, "anything", json!({}));
    let message = error(&answer)["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("plugin `fixture-giant` failed: returned ")
            && message.ends_with(" bytes in `rewrite`, over the limit of 1000000 bytes"),
        "{message}"
    );
}

#[test]
fn skip_policy_passes_the_message_and_the_next_plugin_still_works() {
    let dir = scratch();
    let config = config_file(
        &dir.path(),
        r#"
        [[plugins]]
        path = "{fixture-trap}"
        failure_policy = "skip"
        [[plugins]]
        path = "{fixture-loop}"
        failure_policy = "skip"
        timeout_ms = 10
        [[plugins]]
        path = "{fixture-verdicts}"
        "#,
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]);
    let answer = proxy.call_tool(1, "respond", json!({}));
    assert_eq!(
        result(&answer)["content"][0]["text"],
        "answered by fixture-verdicts"
    );
    let answer = proxy.call_tool(2, "plain", json!({"x": 1}));
    assert_eq!(echoed_params(&answer)["arguments"], json!({"x": 1}));
    assert!(proxy.wait_for_log(
        "plugin failed: deadline of 10 ms exceeded",
        Duration::from_secs(5)
    ));
    assert!(proxy.log().contains("policy=\"skip\""));
}

#[test]
fn repeated_failures_disable_the_plugin() {
    let mut proxy = Proxy::start(&["--plugin".as_ref(), fixture("fixture-trap").as_os_str()]);
    for id in 1..=5 {
        let answer = proxy.call_tool(id, "anything", json!({}));
        let message = error(&answer)["message"].as_str().unwrap().to_owned();
        assert!(message.contains("failed: trapped"), "{message}");
    }
    assert!(proxy.wait_for_log(
        "PLUGIN DISABLED after 5 failures in a row",
        Duration::from_secs(5)
    ));
    let answer = proxy.call_tool(6, "anything", json!({}));
    assert_eq!(
        error(&answer)["message"],
        "plugin `fixture-trap` is disabled after repeated failures"
    );
    let other = proxy.request(7, "ping", json!({}));
    assert_eq!(echoed_params(&other), &json!({}));
}

/// Runs `fixture-escape` with the tool `name` and returns its report.
fn escape(proxy: &mut Proxy, id: u64, name: &str, arguments: Value) -> Value {
    let answer = proxy.call_tool(id, name, arguments);
    result(&answer).clone()
}

#[test]
fn without_grants_no_file_socket_or_environment_is_reachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let mut proxy = Proxy::start_with_env(
        &["--plugin".as_ref(), fixture("fixture-escape").as_os_str()],
        &[("INTERPOSE_TEST_SECRET", "leaked")],
    );
    let manifest = env!("CARGO_MANIFEST_DIR");
    let read = escape(
        &mut proxy,
        1,
        "read-file",
        json!({"path": format!("{manifest}/Cargo.toml")}),
    );
    assert_eq!(read["ok"], false, "{read}");
    let read = escape(&mut proxy, 2, "read-file", json!({"path": "/etc/passwd"}));
    assert_eq!(read["ok"], false, "{read}");
    let write = escape(
        &mut proxy,
        3,
        "write-file",
        json!({"path": "/tmp/interpose-escape"}),
    );
    assert_eq!(write["ok"], false, "{write}");
    assert!(!std::path::Path::new("/tmp/interpose-escape").exists());
    let connect = escape(&mut proxy, 4, "connect", json!({"addr": addr}));
    assert_eq!(connect["ok"], false, "{connect}");
    let env = escape(&mut proxy, 5, "env", json!({}));
    assert_eq!(env["vars"], json!({}));
}
