//! The plugin chain in process, through its public API: the manifest filter keeps
//! the plugin out of messages it did not ask for, a reload swaps versions while a
//! call is in flight (that call finishes on the old version), `wants-request` is
//! reported to the relay, an answer a plugin makes walks back through the plugins
//! before it, and a message no plugin wants is decided without boxing a future.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{Value, json};

use interpose::config::{FailurePolicy, PluginConfig};
use interpose::plugin::{InterceptorChain, PluginRuntime, RuntimeOptions};
use interpose::session::intercept::{Direction, Intercepted, Interceptor, Verdict, VerdictFuture};
use interpose::wire::jsonrpc::{Kind, Payload};
use support::{cache_dir, fixture, scratch};

fn runtime() -> Arc<PluginRuntime> {
    PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache_dir()),
        ..RuntimeOptions::default()
    })
    .expect("runtime")
}

fn plugin(name: &str, config: Value) -> PluginConfig {
    let mut plugin = PluginConfig::from_path(fixture(name));
    plugin.config = serde_json::from_value(config).expect("a TOML-compatible table");
    plugin
}

fn raw(json: Value) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("valid JSON")
}

fn payload(json: Value) -> Payload {
    raw(json).into()
}

fn request<'a>(method: &'a str, params: &'a Payload, id: &'a RawValue) -> Intercepted<'a> {
    Intercepted {
        direction: Direction::ToServer,
        kind: Kind::Request,
        method,
        id: Some(id),
        payload: Some(params),
        error: None,
        request_payload: None,
        elapsed: None,
        session: "test",
        shared_session: false,
        server: "test",
        trace: None,
        principal: None,
    }
}

fn payload_of(verdict: &Verdict) -> Value {
    match verdict {
        Verdict::Rewrite(p) | Verdict::Respond(p) => serde_json::from_str(p.get()).unwrap(),
        other => panic!("expected a payload, got {other:?}"),
    }
}

#[tokio::test]
async fn filtered_out_messages_never_enter_the_plugin() {
    let spy = plugin(
        "fixture-verdicts",
        json!({"methods": ["tools/*"], "kinds": ["request"],
               "rules": [{"verdict": "respond", "echo": true}]}),
    );
    let chain = InterceptorChain::load(runtime(), vec![spy], 1 << 20)
        .await
        .expect("loads");
    let id = raw(json!(1));
    let params = payload(json!({"name": "t"}));
    let verdict = chain.intercept(request("tools/call", &params, &id)).await;
    assert_eq!(payload_of(&verdict)["seen"]["method"], "tools/call");
    let verdict = chain
        .intercept(request("resources/read", &params, &id))
        .await;
    assert!(matches!(verdict, Verdict::Pass), "{verdict:?}");
    assert!(!chain.wants_request_payload());
}

#[tokio::test]
async fn wants_request_is_reported_to_the_relay() {
    let spy = plugin("fixture-verdicts", json!({"wants_request": true}));
    let chain = InterceptorChain::load(runtime(), vec![spy], 1 << 20)
        .await
        .expect("loads");
    assert!(chain.wants_request_payload());
    assert_eq!(chain.plugin_names(), ["fixture-verdicts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_in_flight_finishes_on_the_old_version_after_a_reload() {
    let runtime = runtime();
    // Compile the new version once, so the reload below is quick.
    InterceptorChain::load(
        runtime.clone(),
        vec![plugin("fixture-verdicts", json!({}))],
        1 << 20,
    )
    .await
    .expect("warm the cache");

    let dir = scratch();
    let path = dir.path().join("plugin.wasm");
    std::fs::copy(fixture("fixture-loop"), &path).unwrap();
    let mut config = PluginConfig::from_path(&path);
    config.failure_policy = FailurePolicy::Skip;
    config.timeout_ms = 1500;
    let chain = InterceptorChain::load(runtime, vec![config], 1 << 20)
        .await
        .expect("loads");
    chain.watch(Duration::from_millis(20));
    let old = chain.version(0).unwrap();

    let in_flight = {
        let chain = chain.clone();
        tokio::spawn(async move {
            let id = raw(json!(1));
            let params = payload(json!({"name": "loop"}));
            let started = Instant::now();
            let verdict = chain.intercept(request("tools/call", &params, &id)).await;
            (verdict, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let staging = dir.path().join("plugin.tmp");
    std::fs::copy(fixture("fixture-verdicts"), &staging).unwrap();
    std::fs::rename(&staging, &path).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::ptr_eq(&chain.version(0).unwrap(), &old) {
        assert!(Instant::now() < deadline, "the new version was not loaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The new version (no rules: passes at once) serves the same request...
    let id = raw(json!(2));
    let params = payload(json!({"name": "loop"}));
    let started = Instant::now();
    let verdict = chain.intercept(request("tools/call", &params, &id)).await;
    assert!(matches!(verdict, Verdict::Pass), "{verdict:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    // ...while the old version still runs the first one.
    assert!(!in_flight.is_finished(), "the old call is still running");

    // The old version's call runs to its own deadline and its policy (skip): passes.
    let (verdict, elapsed) = in_flight.await.unwrap();
    assert!(matches!(verdict, Verdict::Pass), "{verdict:?}");
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    drop(old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_reuses_instances_and_replaces_a_trapped_one() {
    let mut trap = plugin("fixture-trap", json!({}));
    trap.failure_policy = FailurePolicy::Skip;
    trap.pool_size = 2;
    let chain = InterceptorChain::load(runtime(), vec![trap], 1 << 20)
        .await
        .expect("loads");
    let version = chain.version(0).unwrap();
    // The load made one instance; the pool makes the second in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    while version.idle_instances() < 2 {
        assert!(Instant::now() < deadline, "the pool was not filled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!((version.live_instances(), version.idle_instances()), (2, 2));

    let id = raw(json!(1));
    let harmless = payload(json!({"name": "harmless"}));
    for _ in 0..50 {
        let verdict = chain.intercept(request("tools/call", &harmless, &id)).await;
        assert!(matches!(verdict, Verdict::Pass));
    }
    // Steady state: the same two instances, nothing made or thrown away.
    assert_eq!((version.live_instances(), version.idle_instances()), (2, 2));

    let trap = payload(json!({"name": "trap"}));
    let verdict = chain.intercept(request("tools/call", &trap, &id)).await;
    assert!(matches!(verdict, Verdict::Pass), "skip policy: {verdict:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while version.idle_instances() < 2 {
        assert!(
            Instant::now() < deadline,
            "the trapped instance was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(version.live_instances(), 2);
}

#[tokio::test]
async fn an_answer_made_in_the_chain_walks_back_through_the_plugins_before() {
    // "first" rewrites one request and echoes every answer it sees; "second" answers
    // requests itself and rejects responses.
    let first = plugin(
        "fixture-verdicts",
        json!({"name": "first", "wants_request": true, "rules": [
            {"kind": "request", "tool": "deny", "verdict": "rewrite",
             "payload": {"name": "deny", "by": "first"}},
            {"kind": "response", "verdict": "rewrite", "echo": true},
            {"kind": "error", "verdict": "rewrite", "echo": true},
        ]}),
    );
    let second = plugin(
        "fixture-verdicts",
        json!({"name": "second", "rules": [
            {"kind": "request", "tool": "deny", "verdict": "reject", "code": -32001,
             "message": "denied by second"},
            {"kind": "request", "tool": "answer", "verdict": "respond",
             "payload": {"by": "second"}},
            {"kind": "response", "verdict": "reject", "code": -32002, "message": "withheld"},
        ]}),
    );
    let chain = InterceptorChain::load(runtime(), vec![first, second], 1 << 20)
        .await
        .expect("loads");
    let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = steps.clone();
    chain.observe_steps(move |step| {
        let step = format!("{} {:?}", step.plugin, step.outcome);
        record.lock().unwrap().push(step);
    });
    let take_steps = || std::mem::take(&mut *steps.lock().unwrap());
    let id = raw(json!(7));

    // A rejection: "first" sees the error on its way back, with the request as
    // "second" got it, and has the last word.
    let params = payload(json!({"name": "deny"}));
    let verdict = chain.intercept(request("tools/call", &params, &id)).await;
    assert!(matches!(verdict, Verdict::Respond(_)), "{verdict:?}");
    let seen = &payload_of(&verdict)["seen"];
    assert_eq!(
        (
            &seen["direction"],
            &seen["kind"],
            &seen["method"],
            &seen["id"]
        ),
        (
            &json!("to-client"),
            &json!("error"),
            &json!("tools/call"),
            &json!("7")
        )
    );
    assert_eq!(
        seen["error"],
        json!({"code": -32001, "message": "denied by second", "data": null})
    );
    let request_payload = seen["request_payload"]
        .as_str()
        .expect("the request came along");
    assert_eq!(
        serde_json::from_str::<Value>(request_payload).unwrap(),
        json!({"name": "deny", "by": "first"})
    );
    assert_eq!(seen["payload"], Value::Null);
    assert_eq!(
        take_steps(),
        ["first Rewrite", "second Reject", "first Rewrite"]
    );

    // A `respond`: "first" sees the result.
    let params = payload(json!({"name": "answer"}));
    let verdict = chain.intercept(request("tools/call", &params, &id)).await;
    let seen = &payload_of(&verdict)["seen"];
    assert_eq!(seen["kind"], "response");
    assert_eq!(seen["payload"], r#"{"by":"second"}"#);
    assert_eq!(seen["request_payload"], r#"{"name":"answer"}"#);
    assert_eq!(
        take_steps(),
        ["first Pass", "second Respond", "first Rewrite"]
    );

    // A response "second" rejects goes on to "first" as that error.
    let result = payload(json!({"content": []}));
    let response = Intercepted {
        direction: Direction::ToClient,
        kind: Kind::Response,
        payload: Some(&result),
        request_payload: Some(&params),
        elapsed: Some(Duration::from_millis(1)),
        ..request("tools/call", &params, &id)
    };
    let verdict = chain.intercept(response).await;
    let seen = &payload_of(&verdict)["seen"];
    assert_eq!(seen["kind"], "error");
    assert_eq!(seen["error"]["message"], "withheld");
    assert_eq!(seen["payload"], Value::Null);
    assert_eq!(take_steps(), ["second Reject", "first Rewrite"]);
}

#[tokio::test]
async fn a_message_no_plugin_wants_is_decided_without_an_allocation() {
    let policy = plugin(
        "fixture-verdicts",
        json!({"methods": ["tools/call"], "kinds": ["request"]}),
    );
    let chain = InterceptorChain::load(runtime(), vec![policy], 1 << 20)
        .await
        .expect("loads");
    let (id, params) = (raw(json!(1)), payload(json!({"name": "t"})));
    // `Ready` holds the verdict in place: no future is boxed for these.
    for method in ["resources/read", "notifications/progress", "tools/list"] {
        let verdict = chain.intercept(request(method, &params, &id));
        assert!(matches!(verdict, VerdictFuture::Ready(_)), "{method}");
        assert!(matches!(verdict.await, Verdict::Pass), "{method}");
    }
    let response = Intercepted {
        direction: Direction::ToClient,
        kind: Kind::Response,
        ..request("tools/call", &params, &id)
    };
    assert!(matches!(chain.intercept(response), VerdictFuture::Ready(_)));
    let wanted = chain.intercept(request("tools/call", &params, &id));
    assert!(matches!(wanted, VerdictFuture::Boxed(_)));
    assert!(matches!(wanted.await, Verdict::Pass));
}
