//! Plugin state in a real Valkey/Redis server (`[store] url`), through the real
//! binary: two proxies ("replicas") sharing one server share the response cache (its
//! JavaScript and Rust builds, each test run against both) and the rate limits; each plugin's keys are its own; and when the server is killed
//! mid-run the plugins see errors, their failure policies decide, every request is
//! answered, and once the server is back the proxies use it again.
//!
//! Each test starts its own server (see `support::valkey`) and its proxies in front
//! of the catalog backend, which counts the `tools/call` requests that reach it.

use crate::plugin_guard_and_cache::{RESPONSE_CACHE_JS, RESPONSE_CACHE_RUST};
use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::valkey::Valkey;
use support::{GUEST_LIMITS, Proxy, fixture, guest_plugin, plugin_path, result, scratch};

/// The JSON-RPC error code of the rate-limit plugin.
const RATE_LIMITED: i64 = -32029;

/// The error code of a plugin failure under the `reject` policy.
const PLUGIN_ERROR: i64 = -32001;

/// A window no test run crosses: the counters of one run share one window.
const LONG_WINDOW_S: u64 = 1_000_000_000;

/// Writes `plugins` (the `[[plugins]]` tables) with a `[store]` for `valkey` to
/// `dir/NAME.toml`, and an empty catalog beside it.
fn config(dir: &Path, name: &str, valkey: &Valkey, plugins: &str) -> (PathBuf, PathBuf) {
    let catalog = dir.join("catalog.json");
    std::fs::write(&catalog, "{}").expect("write the catalog");
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[store]\nurl = \"{}\"\ntimeout_ms = 1000\n\n{plugins}",
        valkey.url()
    );
    std::fs::write(&path, text).expect("write config");
    (path, catalog)
}

fn start(config: &(PathBuf, PathBuf), plugins: usize) -> Proxy {
    Proxy::start_with_catalog(&config.0, &config.1, plugins)
}

/// `plugin`, one of the two builds of `response-cache`, caching `lookup*`.
fn response_cache(plugin: &str) -> String {
    let path = plugin_path(plugin);
    format!(
        "[[plugins]]\npath = {path:?}\nfailure_policy = \"skip\"\nunchecked_policy = \"skip\"\n{GUEST_LIMITS}\n[plugins.config]\ntools = [\"lookup*\"]\n\n"
    )
}

fn rate_limit(policy: &str, per: &str, max: u64) -> String {
    let path = fixture("rate-limit");
    format!(
        "[[plugins]]\npath = {path:?}\nname = \"rate-limit\"\ntimeout_ms = 5000\nfailure_policy = \"{policy}\"\nunchecked_policy = \"{policy}\"\nbreaker_cooldown_ms = 100\n\
         [[plugins.config.limits]]\ntools = [\"lookup*\"]\nper = \"{per}\"\nmax = {max}\nwindow_s = {LONG_WINDOW_S}\n\n"
    )
}

/// How many `tools/call` requests the proxy's backend has received, this one
/// included (`count` is not cached).
fn backend_calls(proxy: &mut Proxy, id: u64) -> u64 {
    let answer = proxy.call_tool(id, "count", json!({}));
    result(&answer)["structuredContent"]["call"]
        .as_u64()
        .unwrap_or_else(|| panic!("no call count in {answer}"))
}

#[test]
fn a_result_cached_by_one_replica_is_a_hit_on_the_other_js() {
    a_result_cached_by_one_replica_is_a_hit_on_the_other(RESPONSE_CACHE_JS);
}

#[test]
fn a_result_cached_by_one_replica_is_a_hit_on_the_other_rust() {
    a_result_cached_by_one_replica_is_a_hit_on_the_other(RESPONSE_CACHE_RUST);
}

fn a_result_cached_by_one_replica_is_a_hit_on_the_other(plugin: &str) {
    let dir = scratch();
    let valkey = Valkey::start();
    let config = config(dir.path(), "replica", &valkey, &response_cache(plugin));
    let mut a = start(&config, 1);
    let mut b = start(&config, 1);

    let first = a.call_tool_raw_result(1, "lookup", r#"{"q":"rust"}"#);
    assert!(
        first.contains(r#""structuredContent":{"call":1}"#),
        "{first}"
    );
    // B's backend never saw the call: the answer, byte for byte, came from the
    // entry A stored in Valkey.
    let from_b = b.call_tool_raw_result(1, "lookup", r#"{"q":"rust"}"#);
    assert_eq!(from_b, first);
    assert_eq!(
        backend_calls(&mut b, 2),
        1,
        "only this count reached B's backend"
    );

    let keys = valkey.keys("*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    // Namespaced by the plugin's name, here its file's.
    let stem = plugin_path(plugin);
    let stem = stem.file_stem().unwrap().to_string_lossy();
    assert!(
        keys[0].starts_with(&format!("interpose:{stem}:tools/call:")),
        "{keys:?}"
    );
}

#[test]
fn each_plugin_has_its_own_keys() {
    let dir = scratch();
    let valkey = Valkey::start();
    let counter = |name: &str, tool: &str| {
        let path = fixture("fixture-kv");
        format!(
            "[[plugins]]\npath = {path:?}\nname = \"{name}\"\ntimeout_ms = 5000\n[plugins.config]\ntool = \"{tool}\"\nreset_tool = \"reset_{tool}\"\nkey = \"calls\"\n\n"
        )
    };
    let plugins = counter("counter-a", "count_a") + &counter("counter-b", "count_b");
    let config = config(dir.path(), "counters", &valkey, &plugins);
    let mut a = start(&config, 2);
    let count = |proxy: &mut Proxy, id: u64, tool: &str| {
        let answer = proxy.call_tool(id, tool, json!({}));
        result(&answer)["structuredContent"]["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count in {answer}"))
    };
    // The same key, `calls`, counted apart by the two plugins.
    assert_eq!(count(&mut a, 1, "count_a"), 1);
    assert_eq!(count(&mut a, 2, "count_a"), 2);
    assert_eq!(count(&mut a, 3, "count_b"), 1);
    assert_eq!(
        valkey.keys("*"),
        ["interpose:counter-a:calls", "interpose:counter-b:calls"]
    );
    let stored = |key: &str| u64::from_le_bytes(valkey.get(key).unwrap().try_into().unwrap());
    assert_eq!(
        (
            stored("interpose:counter-a:calls"),
            stored("interpose:counter-b:calls")
        ),
        (2, 1)
    );
    // A second replica counts on from the shared values.
    let mut b = start(&config, 2);
    assert_eq!(count(&mut b, 1, "count_a"), 3);
    assert_eq!(count(&mut a, 4, "count_b"), 2);
}

/// Sends `count` calls to `lookup` on `proxy` at once, ids from `first_id`.
fn send_calls(proxy: &mut Proxy, first_id: u64, count: u64) {
    for id in first_id..first_id + count {
        proxy.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "lookup", "arguments": {"n": id}}}));
    }
}

/// Each answer to ids `first_id..first_id + count`, in id order.
fn answers(proxy: &mut Proxy, first_id: u64, count: u64) -> Vec<Value> {
    (first_id..first_id + count)
        .map(|id| proxy.answer(id))
        .collect()
}

#[test]
fn rate_limit_admits_exactly_max_calls_across_two_replicas() {
    let dir = scratch();
    let valkey = Valkey::start();
    let config = config(
        dir.path(),
        "limited",
        &valkey,
        &rate_limit("reject", "all", 5),
    );
    let mut a = start(&config, 1);
    let mut b = start(&config, 1);

    // Twenty calls at once, ten on each replica, all in flight together.
    send_calls(&mut a, 1, 10);
    send_calls(&mut b, 1, 10);
    let mut all = answers(&mut a, 1, 10);
    all.extend(answers(&mut b, 1, 10));

    let admitted = all
        .iter()
        .filter(|answer| answer.get("result").is_some())
        .count();
    assert_eq!(admitted, 5, "{all:#?}");
    for refused in all.iter().filter(|answer| answer.get("result").is_none()) {
        let error = &refused["error"];
        assert_eq!(error["code"], RATE_LIMITED, "{refused}");
        assert_eq!(error["data"]["limit"], 5, "{refused}");
        assert_eq!(error["data"]["per"], "all", "{refused}");
        assert!(
            error["data"]["retryAfterMs"].as_u64().is_some(),
            "{refused}"
        );
    }
    let counters = valkey.keys("interpose:rate-limit:*");
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert_eq!(valkey.get(&counters[0]).as_deref(), Some(&b"20"[..]));
}

#[test]
fn a_store_that_goes_away_costs_errors_not_requests_and_comes_back_js() {
    a_store_that_goes_away_costs_errors_not_requests_and_comes_back(RESPONSE_CACHE_JS);
}

#[test]
fn a_store_that_goes_away_costs_errors_not_requests_and_comes_back_rust() {
    a_store_that_goes_away_costs_errors_not_requests_and_comes_back(RESPONSE_CACHE_RUST);
}

fn a_store_that_goes_away_costs_errors_not_requests_and_comes_back(cache: &str) {
    let dir = scratch();
    let mut valkey = Valkey::start();
    // Fails open: a rate limit that lets calls through while the store is down,
    // then the cache (a failed read is a miss, a failed write is dropped).
    let open = config(
        dir.path(),
        "open",
        &valkey,
        &(rate_limit("skip", "session", 1000) + &response_cache(cache)),
    );
    // Fails closed: the same rate limit, refusing calls it cannot count.
    let closed = config(
        dir.path(),
        "closed",
        &valkey,
        &rate_limit("reject", "session", 1000),
    );
    let mut open = start(&open, 2);
    let mut closed = start(&closed, 1);

    let first = open.call_tool_raw_result(1, "lookup", r#"{"q":"before"}"#);
    assert_eq!(
        open.call_tool_raw_result(2, "lookup", r#"{"q":"before"}"#),
        first,
        "a hit"
    );
    assert!(
        closed
            .call_tool(1, "lookup", json!({}))
            .get("result")
            .is_some()
    );

    // Killed with calls in flight: those may have been counted or not, and each
    // is answered once all the same.
    send_calls(&mut open, 10, 10);
    send_calls(&mut closed, 10, 10);
    valkey.kill();
    let began = Instant::now();
    send_calls(&mut open, 20, 10);
    send_calls(&mut closed, 20, 10);
    for answer in answers(&mut open, 10, 20) {
        assert!(answer.get("result").is_some(), "the call passes: {answer}");
    }
    let refused = |answer: &Value| {
        answer["error"]["code"] == PLUGIN_ERROR && answer["error"]["data"]["plugin"] == "rate-limit"
    };
    let in_flight = answers(&mut closed, 10, 10);
    assert!(
        in_flight
            .iter()
            .all(|a| a.get("result").is_some() || refused(a)),
        "{in_flight:#?}"
    );
    for answer in answers(&mut closed, 20, 10) {
        assert!(refused(&answer), "{answer}");
    }
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "forty calls took {:?} with the store down",
        began.elapsed()
    );
    // One call, alone: within the store timeout (1 s), with slack, not stuck
    // waiting for the store.
    let began = Instant::now();
    assert!(refused(&closed.call_tool(40, "lookup", json!({}))));
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    // The cache missed while the store was down: the backend answered.
    let during = open.call_tool_raw_result(30, "lookup", r#"{"q":"before"}"#);
    assert_ne!(during, first);
    assert!(open.wait_for_log("cannot count the call to `lookup`", Duration::from_secs(5)));

    valkey.resume();
    // The connections come back by themselves; a call may still find one
    // reconnecting (and fail as above), so poll, within bounds.
    let mut id = 100;
    eventually("the cache works again", || {
        id += 2;
        let stored = open.call_tool_raw_result(id, "lookup", r#"{"q":"after"}"#);
        open.call_tool_raw_result(id + 1, "lookup", r#"{"q":"after"}"#) == stored
    });
    eventually("the closed rate limit counts again", || {
        id += 1;
        closed
            .call_tool(id, "lookup", json!({}))
            .get("result")
            .is_some()
    });
    assert!(!valkey.keys("interpose:rate-limit:*").is_empty());
}

/// Polls `done` every 200 ms until it holds, for at most 20 s.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn python_and_javascript_plugins_count_and_see_store_errors() {
    let dir = scratch();
    let mut valkey = Valkey::start();
    let plugin = |name: &str| {
        let path = guest_plugin(name);
        format!("[[plugins]]\npath = {path:?}\n{GUEST_LIMITS}\n\n")
    };
    let plugins = plugin("fixture-js-store") + &plugin("fixture-py-store");
    let config = config(dir.path(), "guests", &valkey, &plugins);
    let mut proxy = start(&config, 2);
    let mut id = 0;
    let mut answer = |tool: &str| {
        id += 1;
        let answer = proxy.call_tool(id, tool, json!({}));
        result(&answer)["structuredContent"].clone()
    };
    assert_eq!(answer("incr_js"), json!({"count": 1, "last": "1"}));
    assert_eq!(answer("incr_js"), json!({"count": 2, "last": "2"}));
    assert_eq!(answer("incr_py"), json!({"count": 1, "last": "1"}));
    assert_eq!(
        valkey.get("interpose:fixture-js-store:n").as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        valkey.get("interpose:fixture-py-store:n").as_deref(),
        Some(&b"1"[..])
    );

    valkey.kill();
    for tool in ["incr_js", "incr_py"] {
        let failed = answer(tool);
        let kind = failed["error"].as_str().unwrap_or_default();
        assert!(
            ["unavailable", "timeout"].contains(&kind),
            "{tool}: {failed}"
        );
        if kind == "unavailable" {
            assert!(
                failed["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{failed}"
            );
        }
    }
}
