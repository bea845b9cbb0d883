//! Hostile Python and JavaScript plugins are contained exactly as hostile Rust ones
//! are (`plugin_hostile.rs`): the message gets the failure policy's outcome (reject: a
//! `-32001` error naming the plugin and the cause; skip: it passes), the session, the
//! other plugins and other sessions go on, the proxy does not crash, and the failed
//! instance is replaced. Over HTTP, one session's messages that make the shipped
//! `tool-policy` or `redact` fail (oversized, or breaking the memory cap) change
//! nothing for another session.
//!
//! The Python fixture (`fixture-py-hostile`) raises, loops or allocates without end
//! on a `tools/call` of the tool named `raise`, `loop` or `membomb`, and passes other
//! tools; the JavaScript ones
//! (`fixture-js-throw`, `-loop`, `-membomb`) on every `tools/call`. Each runs in a
//! chain before the `redact` plugin of its language, in front of the catalog backend
//! (`catalog_backend.py`), whose resource `test://secret` holds an AWS key: a read of
//! it shows the next plugin still working.

use crate::http_support;
use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{GUEST_LIMITS, PLUGIN_ERROR, Proxy, config_file, error, result, scratch};

const CATALOG: &str = r#"{"resources": {"test://secret": "{\"contents\":[{\"uri\":\"test://secret\",\"text\":\"key AKIAIOSFODNN7EXAMPLE\"}]}"}}"#;

/// A config whose chain is `plugin` with `settings`, then `redact` in the same
/// language; and the catalog file.
fn chain_files(dir: &Path, plugin: &str, settings: &str) -> (PathBuf, PathBuf) {
    let redact = if plugin.starts_with("fixture-py-") {
        "redact-py"
    } else {
        "redact-js"
    };
    let config = config_file(
        dir,
        &format!(
            "[[plugins]]\npath = \"{{{plugin}}}\"\n{settings}\n\n[[plugins]]\npath = \"{{{redact}}}\"\n{GUEST_LIMITS}\n"
        ),
    );
    let catalog = dir.join("catalog.json");
    std::fs::write(&catalog, CATALOG).expect("write the catalog");
    (config, catalog)
}

/// A proxy running the chain of [`chain_files`].
fn start(plugin: &str, settings: &str) -> Proxy {
    let dir = scratch();
    let (config, catalog) = chain_files(dir.path(), plugin, settings);
    Proxy::start_with_catalog(&config, &catalog, 2).holding(dir)
}

/// The params the catalog backend says it received, from its answer to a `tools/call`
/// it has no scripted result for.
fn received(answer: &Value) -> Value {
    let text = result(answer)["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("not the backend's answer: {answer}"));
    serde_json::from_str(text).expect("the backend echoes JSON")
}

/// Checks that the next plugin in the chain still redacts.
fn assert_next_plugin_works(proxy: &mut Proxy, id: u64) {
    let answer = proxy.request(id, "resources/read", json!({"uri": "test://secret"}));
    assert_eq!(
        result(&answer)["contents"][0]["text"],
        "key [REDACTED:aws-access-key]",
        "{answer}"
    );
}

/// Calls `tool` through a proxy whose chain starts with the hostile `plugin` (with
/// `settings`, failure policy `reject`) and returns the error message, after checking
/// that the error names the plugin and the cause; that the session and the next
/// plugin go on; for Python fixtures, that the plugin itself still serves other tools
/// (with `pool_size = 1`, on a new instance); that a second call fails the same way
/// (the broken instance was replaced, not reused); and that the proxy ends cleanly.
/// Also returns the proxy's log.
fn failure_of(plugin: &str, tool: &str, settings: &str) -> (String, String) {
    let mut proxy = start(plugin, &format!("pool_size = 1\n{settings}"));
    let answer = proxy.call_tool(1, tool, json!({}));
    let err = error(&answer).clone();
    assert_eq!(err["code"], PLUGIN_ERROR, "{answer}");
    assert_eq!(err["data"]["plugin"], plugin, "{answer}");
    let message = err["message"].as_str().expect("message").to_owned();
    assert_eq!(
        message,
        format!(
            "plugin `{plugin}` failed: {}",
            err["data"]["cause"].as_str().expect("cause")
        )
    );
    assert_next_plugin_works(&mut proxy, 2);
    if plugin.starts_with("fixture-py-") {
        let other = proxy.call_tool(3, "harmless", json!({"x": 1}));
        assert_eq!(
            received(&other),
            json!({"name": "harmless", "arguments": {"x": 1}})
        );
    }
    let again = proxy.call_tool(4, tool, json!({}));
    assert_eq!(error(&again)["message"], message.as_str(), "{again}");
    assert!(proxy.is_running());
    let (status, log) = proxy.finish();
    assert!(status.success(), "{log}");
    (message, log)
}

/// The hostile Python fixture: what it does is named by the tool called.
const HOSTILE_PY: &str = "fixture-py-hostile";

/// The cause a guest exception gets: the guest runtimes abort, which traps.
const TRAPPED: &str = "trapped: wasm `unreachable` instruction executed";

#[test]
fn python_exception_is_a_failure() {
    let (message, log) = failure_of(HOSTILE_PY, "raise", GUEST_LIMITS);
    assert_eq!(message, format!("plugin `{HOSTILE_PY}` failed: {TRAPPED}"));
    // The exception itself is in the log, tagged with the plugin.
    assert!(
        log.contains(&format!(
            "plugin.Boom: raised in intercept on purpose plugin={HOSTILE_PY}"
        )),
        "{log}"
    );
}

#[test]
fn javascript_exception_is_a_failure() {
    let (message, log) = failure_of("fixture-js-throw", "anything", GUEST_LIMITS);
    assert_eq!(
        message,
        format!("plugin `fixture-js-throw` failed: {TRAPPED}")
    );
    assert!(
        log.contains(
            "fixture-js-throw: deliberate failure on tool `anything` plugin=fixture-js-throw"
        ),
        "{log}"
    );
}

#[test]
fn python_endless_loop_is_stopped_at_the_deadline() {
    let (message, _) = failure_of(HOSTILE_PY, "loop", "timeout_ms = 1000\nmemory_mb = 128");
    assert_eq!(
        message,
        format!("plugin `{HOSTILE_PY}` failed: deadline of 1000 ms exceeded")
    );
}

#[test]
fn javascript_endless_loop_is_stopped_at_the_deadline() {
    let (message, _) = failure_of(
        "fixture-js-loop",
        "anything",
        "timeout_ms = 1000\nmemory_mb = 128",
    );
    assert_eq!(
        message,
        "plugin `fixture-js-loop` failed: deadline of 1000 ms exceeded"
    );
}

// Memory bombs get a generous deadline, so that the memory cap is what stops them
// even on a busy machine.

#[test]
fn python_memory_bomb_is_stopped_at_the_memory_cap() {
    let (message, _) = failure_of(HOSTILE_PY, "membomb", "timeout_ms = 30000\nmemory_mb = 96");
    assert_eq!(
        message,
        format!("plugin `{HOSTILE_PY}` failed: memory limit of 96 MiB exceeded")
    );
}

#[test]
fn javascript_memory_bomb_is_stopped_at_the_memory_cap() {
    let (message, _) = failure_of(
        "fixture-js-membomb",
        "anything",
        "timeout_ms = 30000\nmemory_mb = 96",
    );
    assert_eq!(
        message,
        "plugin `fixture-js-membomb` failed: memory limit of 96 MiB exceeded"
    );
}

#[test]
fn skip_policy_passes_the_message_through_failing_guests() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!(
            r#"
            [[plugins]]
            path = "{{{HOSTILE_PY}}}"
            failure_policy = "skip"
            {GUEST_LIMITS}
            [[plugins]]
            path = "{{fixture-js-throw}}"
            failure_policy = "skip"
            {GUEST_LIMITS}
            "#
        ),
    );
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, CATALOG).expect("write the catalog");
    let mut proxy = Proxy::start_with_catalog(&config, &catalog, 2).holding(dir);
    let answer = proxy.call_tool(1, "raise", json!({"x": 1}));
    assert_eq!(
        received(&answer),
        json!({"name": "raise", "arguments": {"x": 1}})
    );
    for plugin in [HOSTILE_PY, "fixture-js-throw"] {
        let logged = format!(
            "plugin failed: {TRAPPED} plugin=\"{plugin}\" method=\"tools/call\" kind=\"request\" session=\"stdio\" policy=\"skip\""
        );
        assert!(
            proxy.wait_for_log(&logged, Duration::from_secs(5)),
            "{}",
            proxy.log()
        );
    }
}

#[test]
fn repeated_python_failures_open_the_sessions_breaker() {
    let mut proxy = start(HOSTILE_PY, GUEST_LIMITS);
    for id in 1..=5 {
        let answer = proxy.call_tool(id, "raise", json!({}));
        let message = error(&answer)["message"].as_str().unwrap().to_owned();
        assert!(message.contains("failed: trapped"), "{message}");
    }
    assert!(proxy.wait_for_log(
        "plugin breaker OPEN after 5 failures in a row in this client session",
        Duration::from_secs(5)
    ));
    for (id, tool) in [(6, "raise"), (7, "harmless")] {
        let answer = proxy.call_tool(id, tool, json!({}));
        assert_eq!(
            error(&answer)["message"],
            format!(
                "plugin `{HOSTILE_PY}` was not called: paused for this client session after repeated failures"
            )
        );
    }
    // Messages it never asked for still flow, through the next plugin.
    assert_next_plugin_works(&mut proxy, 8);
}

#[test]
fn python_init_that_raises_stops_the_start() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!(
            "[[plugins]]\npath = \"{{{HOSTILE_PY}}}\"\n{GUEST_LIMITS}\nconfig = {{ phase = \"init\", how = \"raise\" }}\n"
        ),
    );
    let (status, log) = support::run_to_exit(&["--config".as_ref(), config.as_os_str()]);
    assert!(!status.success());
    // The Python SDK turns an exception in `init` into a refused configuration.
    assert!(
        log.contains("): refused its configuration: init failed: Boom: raised in init on purpose"),
        "{log}"
    );
}

#[test]
fn python_init_that_never_returns_stops_the_start() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!(
            "[[plugins]]\npath = \"{{{HOSTILE_PY}}}\"\nmemory_mb = 128\nconfig = {{ phase = \"init\", how = \"loop\" }}\n"
        ),
    );
    let (status, log) = support::run_to_exit(&["--config".as_ref(), config.as_os_str()]);
    assert!(!status.success());
    assert!(
        log.contains(": cannot start the plugin: `init` failed: deadline of 2000 ms exceeded"),
        "{log}"
    );
}

/// POSTs a JSON-RPC message to the proxy's `/mcp` in `session` (none: a new one);
/// returns the session id and the body.
async fn post(base: &str, session: Option<&str>, body: impl ToString) -> (Option<String>, String) {
    let mut request = http_support::post_mcp(&reqwest::Client::new(), base, body.to_string());
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let (_, session, body) = http_support::send_for_text(request).await;
    (session, body)
}

/// The answer with id `id` in the body of a POST: JSON, or an SSE stream.
fn answer_in(body: &str, id: u64) -> Value {
    let is_it = |m: &Value| m["id"] == json!(id) && m.get("method").is_none();
    http_support::messages_in(body)
        .into_iter()
        .find(is_it)
        .unwrap_or_else(|| panic!("no answer to {id} in: {:.2000}", body))
}

/// `interpose run --listen http://127.0.0.1:PORT --config CONFIG -- python3
/// catalog_backend.py CATALOG` (a backend per session), with `plugins` plugins.
/// Compiles the components first (once, cached) with a stdio proxy, so that the
/// HTTP listener's start-up wait does not include compiling.
fn http_proxy(config: &Path, catalog: &Path, plugins: usize) -> (http_support::Proc, String) {
    drop(Proxy::start_with_catalog(config, catalog, plugins));
    let base = format!("http://127.0.0.1:{}", http_support::free_port());
    let mut command = std::process::Command::new(support::INTERPOSE);
    command
        .args(["run", "--listen", &base, "--config"])
        .arg(config)
        .args(["--", "python3"])
        .arg(support::catalog_backend())
        .arg(catalog)
        .env("INTERPOSE_CACHE_DIR", support::cache_dir());
    let proxy = http_support::Proc::start("interpose", command, "listening on");
    (proxy, base)
}

/// A `tools/call` request's text with `arguments` given as JSON text (built as text:
/// megabytes of small values would take a `Value` ten times their size); returns it
/// and the length of its params, which is what a plugin's input limit is checked on.
fn call_text(id: u64, tool: &str, arguments: &str) -> (String, usize) {
    let params = format!(r#"{{"name":"{tool}","arguments":{arguments}}}"#);
    let len = params.len();
    (
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#),
        len,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_python_plugin_in_one_session_does_not_hold_up_another() {
    const DEADLINE_MS: u64 = 3000;
    let dir = scratch();
    let settings = format!("timeout_ms = {DEADLINE_MS}\nmemory_mb = 128");
    let (config, catalog) = chain_files(dir.path(), HOSTILE_PY, &settings);
    let (_proxy, base) = http_proxy(&config, &catalog, 2);
    let (looping, other) = (
        http_support::open_session(&reqwest::Client::new(), &base).await,
        http_support::open_session(&reqwest::Client::new(), &base).await,
    );

    let call = |id: u64, tool: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": tool, "arguments": {}}})
    };
    let started = Instant::now();
    let stuck = {
        let (base, body) = (base.clone(), call(1, "loop"));
        tokio::spawn(async move { post(&base, Some(&looping), body).await.1 })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = post(&base, Some(&other), call(2, "harmless")).await;
    assert!(body.contains(r#"\"name\":\"harmless\""#), "{body}");
    assert!(
        !stuck.is_finished() && started.elapsed() < Duration::from_millis(DEADLINE_MS),
        "the other session was answered while the plugin looped"
    );
    let body = stuck.await.expect("the looping call");
    assert!(
        body.contains(&format!(
            "plugin `{HOSTILE_PY}` failed: deadline of {DEADLINE_MS} ms exceeded"
        )),
        "{body}"
    );
    let (_, body) = post(&base, Some(&other), call(3, "harmless")).await;
    assert!(body.contains(r#"\"name\":\"harmless\""#), "{body}");
}

/// The attack of issue #12: five `tools/call` with 10 MB arguments ran `tool-policy`
/// into its memory cap, which disabled it for every session. Now an oversized call
/// is refused before the plugin is entered, with an error naming the plugin and the
/// limit; calls under the limit that still break the memory cap open only the
/// sending session's breaker; another session is served throughout.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_calls_in_one_session_leave_tool_policy_serving_another() {
    let dir = scratch();
    // A pin makes the plugin parse every call's arguments. Default memory cap (and so
    // input limit); a deadline long enough that the memory cap is what stops it.
    let config = config_file(
        dir.path(),
        &format!(
            "[[plugins]]\npath = \"{}\"\ntimeout_ms = 5000\n\
             config = {{ pin_arguments = {{ \"*\" = {{ pinned = true }} }} }}\n",
            support::fixture("tool-policy").display()
        ),
    );
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, CATALOG).expect("write the catalog");
    let (_proxy, base) = http_proxy(&config, &catalog, 1);
    let (attacker, other) = (
        http_support::open_session(&reqwest::Client::new(), &base).await,
        http_support::open_session(&reqwest::Client::new(), &base).await,
    );
    let mut next_id = 100;
    let mut call_other = async || {
        next_id += 1;
        let (text, _) = call_text(next_id, "harmless", r#"{"x":1}"#);
        let (_, body) = post(&base, Some(&other), text).await;
        let answer = answer_in(&body, next_id);
        assert_eq!(
            received(&answer),
            json!({"name": "harmless", "arguments": {"x": 1, "pinned": true}}),
            "the other session is served by the plugin"
        );
    };
    call_other().await;

    let blob = format!(r#"{{"blob":"{}"}}"#, "x".repeat(10_000_000));
    for id in 1..=6 {
        let (text, len) = call_text(id, "harmless", &blob);
        let (_, body) = post(&base, Some(&attacker), text).await;
        let err = error(&answer_in(&body, id)).clone();
        assert_eq!(err["code"], PLUGIN_ERROR);
        assert_eq!(
            err["message"],
            format!(
                "plugin `tool-policy` was not called: a message of {len} bytes is over the input limit of 8388608 bytes (`max_input_bytes`)"
            )
        );
        call_other().await;
    }

    // Under the limit, but parsing 3.75 million array elements needs more than 64 MiB.
    let bomb = format!(r#"{{"a":[{}1]}}"#, "1,".repeat(3_750_000));
    for id in 11..=15 {
        let (text, len) = call_text(id, "harmless", &bomb);
        assert!(len < 8 << 20);
        let (_, body) = post(&base, Some(&attacker), text).await;
        assert_eq!(
            error(&answer_in(&body, id))["message"],
            "plugin `tool-policy` failed: memory limit of 64 MiB exceeded"
        );
        call_other().await;
    }
    // The attacker's session is paused...
    let (text, _) = call_text(16, "harmless", r#"{"x":1}"#);
    let (_, body) = post(&base, Some(&attacker), text).await;
    assert_eq!(
        error(&answer_in(&body, 16))["message"],
        "plugin `tool-policy` was not called: paused for this client session after repeated failures"
    );
    // ...the other is not.
    for _ in 0..3 {
        call_other().await;
    }
}

/// Clients without a session (2026-07-28) share one backend session, so a breaker
/// per session would let one of them pause a plugin for all: there, every failure is
/// the one message's, and the plugin keeps serving the others.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_a_session_cannot_pause_a_plugin_for_the_others() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!(
            "[[plugins]]\npath = \"{}\"\ntimeout_ms = 5000\n\
             config = {{ pin_arguments = {{ \"*\" = {{ pinned = true }} }} }}\n",
            support::fixture("tool-policy").display()
        ),
    );
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, CATALOG).expect("write the catalog");
    let (_proxy, base) = http_proxy(&config, &catalog, 1);
    // Under the input limit, but parsing 3.75 million array elements needs more than
    // the 64 MiB memory cap: each call fails in the plugin.
    let bomb = format!(r#"{{"a":[{}1]}}"#, "1,".repeat(3_750_000));
    for id in 1..=6 {
        let body = post_without_session(&base, id, "harmless", &bomb).await;
        assert_eq!(
            error(&answer_in(&body, id))["message"],
            "plugin `tool-policy` failed: memory limit of 64 MiB exceeded",
            "every failing call is the plugin's failure, none is refused as paused"
        );
    }
    let body = post_without_session(&base, 7, "harmless", r#"{"x":1}"#).await;
    assert_eq!(
        received(&answer_in(&body, 7))["arguments"],
        json!({"x": 1, "pinned": true}),
        "another client without a session is served by the plugin"
    );
}

/// A complete 2026-07-28 `tools/call` without a session (its `_meta` envelope and
/// protocol headers), with `arguments` given as JSON text; returns the response body.
async fn post_without_session(base: &str, id: u64, tool: &str, arguments: &str) -> String {
    let meta = r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
    let text = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments},"_meta":{meta}}}}}"#
    );
    http_support::post_mcp(&reqwest::Client::new(), base, text)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .send()
        .await
        .expect("POST")
        .text()
        .await
        .expect("body")
}

/// The attack of issue #12: five 14 MB tool results made `redact` (under `skip`) miss
/// its deadline, which disabled it: secrets then passed unredacted in every session.
/// Now an oversized result is refused before the plugin is entered and, by the
/// default `unchecked_policy`, replaced by an error (not passed unchecked), and it
/// does not count towards any breaker: every session's secrets stay redacted.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_results_in_one_session_never_let_secrets_through_redact() {
    const SECRET: &str = "AKIAIOSFODNN7EXAMPLE";
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!(
            "[[plugins]]\npath = \"{}\"\nfailure_policy = \"skip\"\n",
            support::fixture("redact").display()
        ),
    );
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, CATALOG).expect("write the catalog");
    let (_proxy, base) = http_proxy(&config, &catalog, 1);
    let (attacker, other) = (
        http_support::open_session(&reqwest::Client::new(), &base).await,
        http_support::open_session(&reqwest::Client::new(), &base).await,
    );
    let mut next_id = 100;
    let mut secret_call = async |session: &str| {
        next_id += 1;
        let (text, _) = call_text(next_id, "lookup", &format!(r#"{{"key":"{SECRET}"}}"#));
        let (_, body) = post(&base, Some(session), text).await;
        assert!(!body.contains(SECRET), "a secret passed: {body}");
        let answer = answer_in(&body, next_id);
        let text = result(&answer)["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.contains("[REDACTED:aws-access-key]"), "{answer}");
    };
    secret_call(&other).await;

    // The backend puts the 10 MB of arguments in its result's text.
    let blob = format!(r#"{{"blob":"{}"}}"#, format!("{SECRET} ").repeat(500_000));
    for id in 1..=6 {
        let (text, _) = call_text(id, "lookup", &blob);
        let (_, body) = post(&base, Some(&attacker), text).await;
        assert!(
            !body.contains(SECRET),
            "a secret passed in the oversized result"
        );
        let message = error(&answer_in(&body, id))["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.starts_with("plugin `redact` was not called: a message of ")
                && message.ends_with(
                    " bytes is over the input limit of 8388608 bytes (`max_input_bytes`)"
                ),
            "{message}"
        );
        secret_call(&other).await;
    }
    // Oversized messages are not failures of the plugin: no breaker opened, the
    // attacker's own small results are still redacted.
    secret_call(&attacker).await;
    secret_call(&other).await;
}
