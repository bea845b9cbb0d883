//! Hostile plugins are contained: the message gets the failure policy's outcome with
//! an error naming the plugin and the cause, the session and the other plugins go on,
//! the proxy does not crash; a session whose messages keep making a plugin fail has
//! its breaker opened for a cooldown. Messages over a plugin's input limit are refused
//! before it is called, and text a plugin logs cannot pass for the proxy's own lines.
//!
//! Each hostile fixture misbehaves on `tools/call` of its own tool (`loop`,
//! `membomb`, ...) and passes other tools, so other traffic shows the plugin and the
//! proxy still serve.

use crate::http_support::{http_get, prometheus_samples, sample_value};
use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{PLUGIN_ERROR, Proxy, config_file, echoed_params, error, fixture, result, scratch};

/// Calls `tool` through a proxy running only `plugin` (default settings) and returns
/// the error message, after checking that the proxy and the plugin still serve and
/// that a second call fails the same way (the broken instance was replaced).
fn failure_of(plugin: &str, tool: &str) -> String {
    let proxy = Proxy::start(&["--plugin".as_ref(), fixture(plugin).as_os_str()]);
    failure_in(proxy, plugin, tool)
}

/// The same with `settings` added to the plugin's entry in a config file.
fn failure_with_settings(plugin: &str, tool: &str, settings: &str) -> String {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!("[[plugins]]\npath = \"{{{plugin}}}\"\n{settings}\n"),
    );
    let proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir);
    failure_in(proxy, plugin, tool)
}

fn failure_in(mut proxy: Proxy, plugin: &str, tool: &str) -> String {
    let answer = proxy.call_tool(1, tool, json!({}));
    let err = error(&answer).clone();
    assert_eq!(err["code"], PLUGIN_ERROR, "{answer}");
    assert_eq!(err["data"]["plugin"], plugin);
    let other = proxy.call_tool(2, "harmless", json!({"x": 1}));
    assert_eq!(echoed_params(&other)["arguments"], json!({"x": 1}));
    let again = proxy.call_tool(3, tool, json!({}));
    assert_eq!(error(&again)["message"], err["message"]);
    assert!(proxy.is_running());
    err["message"].as_str().expect("message").to_owned()
}

#[test]
fn endless_loop_is_stopped_at_the_deadline() {
    assert_eq!(
        failure_of("fixture-loop", "loop"),
        "plugin `fixture-loop` failed: deadline of 50 ms exceeded"
    );
}

#[test]
fn memory_bomb_is_stopped_at_the_memory_cap() {
    // A generous deadline, so that the memory cap is what stops it even on a busy
    // machine.
    assert_eq!(
        failure_with_settings(
            "fixture-membomb",
            "membomb",
            "memory_mb = 32\ntimeout_ms = 5000"
        ),
        "plugin `fixture-membomb` failed: memory limit of 32 MiB exceeded"
    );
}

#[test]
fn deep_recursion_is_contained() {
    // Rust guests keep large frames on a stack in linear memory: running off its end
    // is an out-of-bounds access; running off the Wasm call stack is a stack
    // overflow. Either way the call is stopped and named.
    let message = failure_of("fixture-recursion", "recursion");
    assert!(
        [
            "plugin `fixture-recursion` failed: stack overflow",
            "plugin `fixture-recursion` failed: trapped: out of bounds memory access",
        ]
        .contains(&message.as_str()),
        "{message}"
    );
}

#[test]
fn trap_is_a_failure() {
    assert_eq!(
        failure_of("fixture-trap", "trap"),
        "plugin `fixture-trap` failed: trapped: wasm `unreachable` instruction executed"
    );
}

#[test]
fn invalid_json_rewrite_is_a_failure() {
    assert_eq!(
        failure_of("fixture-bad-json", "bad-json"),
        "plugin `fixture-bad-json` failed: returned invalid JSON in `rewrite`"
    );
}

#[test]
fn giant_output_is_over_the_cap() {
    assert_eq!(
        failure_with_settings(
            "fixture-giant",
            "giant",
            "max_output_bytes = 1000000\ntimeout_ms = 5000\nconfig = { bytes = 2000000 }",
        ),
        "plugin `fixture-giant` failed: returned 2000000 bytes in `rewrite`, over the limit of 1000000 bytes"
    );
}

#[test]
fn init_that_never_returns_stops_the_start() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        "[[plugins]]\npath = \"{fixture-loop}\"\nconfig = { phase = \"init\" }\n",
    );
    let (status, log) = support::run_to_exit(&["--config".as_ref(), config.as_os_str()]);
    assert!(!status.success());
    assert!(
        log.contains(": cannot start the plugin: `init` failed: deadline of 2000 ms exceeded"),
        "{log}"
    );
}

#[test]
fn skip_policy_passes_the_message_and_the_next_plugin_still_works() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        r#"
        [[plugins]]
        path = "{fixture-trap}"
        failure_policy = "skip"
        config = { tool = "respond" }
        [[plugins]]
        path = "{fixture-loop}"
        failure_policy = "skip"
        timeout_ms = 10
        config = { tool = "respond" }
        [[plugins]]
        path = "{fixture-verdicts}"
        config = { rules = [{ tool = "respond", verdict = "respond", payload = { by = "verdicts" } }] }
        "#,
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir);
    let answer = proxy.call_tool(1, "respond", json!({}));
    assert_eq!(result(&answer), &json!({"by": "verdicts"}));
    let answer = proxy.call_tool(2, "plain", json!({"x": 1}));
    assert_eq!(echoed_params(&answer)["arguments"], json!({"x": 1}));
    assert!(proxy.wait_for_log(
        "plugin failed: deadline of 10 ms exceeded",
        Duration::from_secs(5)
    ));
    assert!(proxy.log().contains("policy=\"skip\""));
}

/// What a client gets for a message of a session whose breaker is open, under the
/// default `unchecked_policy` (reject).
const PAUSED: &str =
    "plugin `fixture-trap` was not called: paused for this client session after repeated failures";

/// Sleeps until `wait` is surely over.
fn sleep_past(wait: Duration) {
    std::thread::sleep(wait + Duration::from_millis(300));
}

#[test]
fn repeated_failures_open_the_sessions_breaker_which_rearms_after_its_cooldown() {
    const COOLDOWN: Duration = Duration::from_millis(3000);
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!(
            "[[plugins]]\npath = \"{{fixture-trap}}\"\nbreaker_cooldown_ms = {}\n",
            COOLDOWN.as_millis()
        ),
    );
    let args = [
        "--config".as_ref(),
        config.as_os_str(),
        "--admin".as_ref(),
        "127.0.0.1:0".as_ref(),
    ];
    let mut proxy = Proxy::start(&args).holding(dir);
    for id in 1..=5 {
        let answer = proxy.call_tool(id, "trap", json!({}));
        let message = error(&answer)["message"].as_str().unwrap().to_owned();
        assert!(message.contains("failed: trapped"), "{message}");
    }
    assert!(
        proxy.wait_for_log(
            "plugin breaker OPEN after 5 failures in a row in this client session: for 3000 ms",
            Duration::from_secs(5)
        ),
        "{}",
        proxy.log()
    );
    // One log line per failure, the fifth naming the breaker it opened.
    let log = proxy.log();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("plugin failed: "))
        .collect();
    assert_eq!(failures.len(), 5, "{log}");
    assert!(failures[4].contains("plugin failed: trapped"), "{log}");
    assert!(failures[4].contains("plugin breaker OPEN after 5"), "{log}");
    assert!(failures[4].contains("plugin=\"fixture-trap\""), "{log}");
    assert_eq!(log.matches("plugin breaker OPEN").count(), 1, "{log}");
    // Open: the unchecked policy applies to everything it would see, without entering it.
    for (id, tool) in [(6, "trap"), (7, "harmless")] {
        let answer = proxy.call_tool(id, tool, json!({}));
        assert_eq!(error(&answer)["message"], PAUSED, "{answer}");
    }
    // Messages it never asked for still flow.
    let other = proxy.request(8, "ping", json!({}));
    assert_eq!(echoed_params(&other), &json!({}));

    // After the cooldown one message is tried; it fails: open for another cooldown.
    sleep_past(COOLDOWN);
    let answer = proxy.call_tool(9, "trap", json!({}));
    assert!(
        error(&answer)["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed: trapped")),
        "the trial entered the plugin: {answer}"
    );
    assert!(proxy.wait_for_log("plugin breaker OPEN again", Duration::from_secs(5)));
    let answer = proxy.call_tool(10, "harmless", json!({}));
    assert_eq!(error(&answer)["message"], PAUSED, "{answer}");

    // After the next cooldown a trial that works closes the breaker.
    sleep_past(COOLDOWN);
    for id in 11..=12 {
        let answer = proxy.call_tool(id, "harmless", json!({"n": id}));
        assert_eq!(echoed_params(&answer)["arguments"], json!({"n": id}));
    }
    for logged in ["plugin breaker half-open", "plugin breaker closed"] {
        assert!(
            proxy.wait_for_log(logged, Duration::from_secs(5)),
            "{}",
            proxy.log()
        );
    }

    // The metrics tell the same story: opened, then opened again; six traps, three
    // messages not called for; the two calls after it closed passed.
    let (status, text) = http_get(&proxy.admin_addr(), "/metrics", None);
    assert_eq!(status, 200, "{text}");
    let samples = prometheus_samples(&text);
    let trap = |name, labels: &[(&str, &str)]| {
        let mut all = vec![("plugin", "fixture-trap")];
        all.extend_from_slice(labels);
        sample_value(&samples, name, &all)
    };
    assert_eq!(trap("interpose_plugin_breaker_opens_total", &[]), Some(2.0));
    let failures = "interpose_plugin_failures_total";
    assert_eq!(trap(failures, &[("cause", "trap")]), Some(6.0));
    assert_eq!(trap(failures, &[("cause", "paused")]), Some(3.0));
    let verdicts = "interpose_plugin_verdicts_total";
    assert_eq!(trap(verdicts, &[("verdict", "pass")]), Some(2.0));
}

#[test]
fn under_skip_an_open_breaker_fails_closed_unless_unchecked_policy_says_skip() {
    for (unchecked, passes) in [("reject", false), ("skip", true)] {
        let dir = scratch();
        let config = config_file(
            dir.path(),
            &format!(
                "[[plugins]]\npath = \"{{fixture-trap}}\"\nfailure_policy = \"skip\"\nunchecked_policy = \"{unchecked}\"\n"
            ),
        );
        let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir);
        for id in 1..=5 {
            // Each failure alone is the operator's choice: it passes, logged.
            let answer = proxy.call_tool(id, "trap", json!({}));
            assert_eq!(echoed_params(&answer)["name"], "trap");
        }
        assert!(proxy.wait_for_log("plugin breaker OPEN", Duration::from_secs(5)));
        // But an open breaker does not turn the plugin into a pass-through for every
        // message of the session, unless the operator says so.
        let answer = proxy.call_tool(6, "harmless", json!({}));
        if passes {
            assert_eq!(echoed_params(&answer)["name"], "harmless", "{answer}");
        } else {
            assert_eq!(error(&answer)["message"], PAUSED, "{answer}");
        }
    }
}

#[test]
fn oversized_messages_are_refused_before_the_call_and_do_not_count_as_failures() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        "[[plugins]]\npath = \"{fixture-pass}\"\nmax_input_bytes = 1000\n",
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir);
    let arguments = json!({"blob": "x".repeat(1000)});
    // The plugin sees the params exactly as the client wrote them.
    let len = json!({"name": "big", "arguments": arguments})
        .to_string()
        .len();
    // More than enough failures to open a breaker, were they counted.
    for id in 1..=8 {
        let answer = proxy.call_tool(id, "big", arguments.clone());
        let err = error(&answer);
        assert_eq!(err["code"], PLUGIN_ERROR);
        assert_eq!(
            err["message"],
            format!(
                "plugin `fixture-pass` was not called: a message of {len} bytes is over the input limit of 1000 bytes (`max_input_bytes`)"
            )
        );
        assert_eq!(err["data"]["plugin"], "fixture-pass");
    }
    let answer = proxy.call_tool(9, "small", json!({"x": 1}));
    assert_eq!(echoed_params(&answer)["arguments"], json!({"x": 1}));
    assert!(!proxy.log().contains("breaker"), "{}", proxy.log());
}

/// The text of a forged log line: what the proxy's own lines look like.
const FORGED: &str = "2026-01-01T00:00:00Z  INFO interpose: forged";

#[test]
fn plugin_text_cannot_forge_a_log_line() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!(
            r#"
            [[plugins]]
            path = "{{fixture-verdicts}}"
            [[plugins.config.rules]]
            tool = "forge"
            verdict = "pass"
            log = "hello\n{FORGED}\r{FORGED} by CR"
            print = "printed\r{FORGED} by CR on stdout"
            "#
        ),
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir);
    let answer = proxy.call_tool(1, "forge", json!({}));
    assert_eq!(echoed_params(&answer)["name"], "forge");
    // Each call is one line, its control characters escaped.
    for logged in [
        format!("hello\\n{FORGED}\\r{FORGED} by CR plugin=\"fixture-verdicts\""),
        format!("printed\\r{FORGED} by CR on stdout plugin=fixture-verdicts stream=\"stdout\""),
    ] {
        assert!(
            proxy.wait_for_log(&logged, Duration::from_secs(5)),
            "{logged:?} not in:\n{}",
            proxy.log()
        );
    }
    let (_, log) = proxy.finish();
    for line in log.lines() {
        assert!(!line.starts_with(FORGED), "forged line: {line:?}");
        assert!(
            !line.contains('\r'),
            "a carriage return was written: {line:?}"
        );
    }
}

#[test]
fn without_grants_no_file_socket_or_environment_is_reachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let dir = scratch();
    let manifest = env!("CARGO_MANIFEST_DIR");
    let config = config_file(
        dir.path(),
        &format!(
            r#"
            [[plugins]]
            path = "{{fixture-escape}}"
            [plugins.config]
            read = ["{manifest}/Cargo.toml", "/etc/passwd"]
            list = ["/", "."]
            write = ["/tmp/interpose-escape-test"]
            env = ["INTERPOSE_TEST_SECRET", "PATH"]
            connect = ["{addr}"]
            "#
        ),
    );
    let mut proxy = Proxy::start_with_env(
        &["--config".as_ref(), config.as_os_str()],
        &[("INTERPOSE_TEST_SECRET", "leaked")],
    )
    .holding(dir);
    let answer = proxy.call_tool(1, "escape", json!({}));
    let report = &result(&answer)["structuredContent"];
    let outcomes = |section: &str| -> Vec<(String, Value)> {
        report[section]
            .as_object()
            .unwrap_or_else(|| panic!("no {section} in {report}"))
            .iter()
            .map(|(k, v)| (k.clone(), v["ok"].clone()))
            .collect()
    };
    for section in ["read", "list", "write", "env", "connect"] {
        let tried = outcomes(section);
        assert!(!tried.is_empty(), "{report}");
        for (what, ok) in tried {
            assert_eq!(ok, false, "{section} {what} should fail: {report}");
        }
    }
    assert_eq!(report["env_count"], 0);
    assert!(!std::path::Path::new("/tmp/interpose-escape-test").exists());
}
