//! Python plugins (componentize-py) in the real plugin runtime: per-call cost of a
//! warm instance at 1 KiB and 100 KiB, and the cost of a fresh instance, next to
//! the Rust `redact` plugin measured in the same run.
//!
//! Needs the components: `scripts/build-python-plugin.sh` for `plugins/redact-py`,
//! `plugins/tool-policy-py` and `tests/plugins/fixture-py-pass` (written to
//! `target/wasm/python/`), and for the baselines `scripts/build-plugins.sh redact
//! fixture-pass`. `INTERPOSE_BENCH_PY_WASM_DIR`
//! overrides where the Python components are looked for.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;

use interpose::config::PluginConfig;
use interpose::intercept::{Direction, Intercepted, Interceptor};
use interpose::jsonrpc::Kind;
use interpose::plugin::{InterceptorChain, PluginRuntime, RuntimeOptions};

const SIZES: [(&str, usize); 2] = [("1KiB", 1024), ("100KiB", 100 * 1024)];

fn python_wasm(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("INTERPOSE_BENCH_PY_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm/python"));
    let path = dir.join(format!("{name}.wasm"));
    path.exists().then_some(path)
}

fn rust_wasm(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    path.exists().then_some(path)
}

/// Prose-like text of `size` bytes, as a tool result; with `secret`, an e-mail
/// address in the middle.
fn tool_result(size: usize, secret: bool) -> Box<RawValue> {
    let words = "the quick brown fox jumps over the lazy dog while 42 sleepy cats watch; ";
    let body = size.saturating_sub(60);
    let mut text: String = words.repeat(body / words.len() + 1);
    text.truncate(body);
    if secret {
        let middle = body / 2;
        text.replace_range(middle..middle + 17, " bob@example.com ");
    }
    RawValue::from_string(format!(
        r#"{{"content":[{{"type":"text","text":"{text}"}}],"isError":false}}"#
    ))
    .expect("valid JSON")
}

fn tool_call(size: usize) -> Box<RawValue> {
    let filler = "x".repeat(size.saturating_sub(40));
    RawValue::from_string(format!(
        r#"{{"name":"echo","arguments":{{"text":"{filler}"}}}}"#
    ))
    .expect("valid JSON")
}

fn message<'a>(kind: Kind, payload: &'a RawValue, id: &'a RawValue) -> Intercepted<'a> {
    Intercepted {
        direction: if kind == Kind::Request {
            Direction::ToServer
        } else {
            Direction::ToClient
        },
        kind,
        method: "tools/call",
        id: Some(id),
        payload: Some(payload),
        error: None,
        request_payload: None,
        session: "bench",
        server: "bench",
    }
}

fn plugin(path: PathBuf) -> PluginConfig {
    let mut plugin = PluginConfig::from_path(path);
    plugin.memory_mb = 128;
    plugin.timeout_ms = 1000;
    plugin
}

fn bench_python(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = PluginRuntime::new(RuntimeOptions::default()).expect("engine");
    let load = |path: PathBuf| -> Arc<InterceptorChain> {
        rt.block_on(InterceptorChain::load(
            runtime.clone(),
            vec![plugin(path)],
            16 << 20,
        ))
        .expect("plugin loads")
    };
    let Some(redact_py) = python_wasm("redact-py") else {
        eprintln!(
            "target/wasm/python/redact-py.wasm is missing: run scripts/build-python-plugin.sh plugins/redact-py"
        );
        return;
    };
    let mut redactors = vec![("redact-py", load(redact_py))];
    if let Some(rust) = rust_wasm("redact") {
        redactors.push(("redact (Rust)", load(rust)));
    }
    let id = RawValue::from_string("7".into()).expect("valid JSON");

    let mut group = c.benchmark_group("python/redact");
    for (size_name, size) in SIZES {
        for (case, secret) in [("clean", false), ("secret", true)] {
            let payload = tool_result(size, secret);
            for (name, chain) in &redactors {
                let id_text = format!("{name} {case}");
                group.bench_with_input(BenchmarkId::new(id_text, size_name), &payload, |b, p| {
                    b.to_async(&rt).iter(|| async {
                        black_box(chain.intercept(message(Kind::Response, p, &id)).await)
                    })
                });
            }
        }
    }
    group.finish();

    // Passing without reading: the SDK's own cost (fixture-py-pass), the
    // tool-policy plugin with an empty policy, and the Rust pass fixture.
    let mut passers = Vec::new();
    for name in ["fixture-py-pass", "tool-policy-py"] {
        if let Some(path) = python_wasm(name) {
            passers.push((name, load(path)));
        }
    }
    if let Some(path) = rust_wasm("fixture_pass") {
        passers.push(("fixture-pass (Rust)", load(path)));
    }
    let mut group = c.benchmark_group("python/pass");
    for (size_name, size) in SIZES {
        let payload = tool_call(size);
        for (name, chain) in &passers {
            group.bench_with_input(BenchmarkId::new(*name, size_name), &payload, |b, p| {
                b.to_async(&rt).iter(|| async {
                    black_box(chain.intercept(message(Kind::Request, p, &id)).await)
                })
            });
        }
    }
    group.finish();

    // A warm instance from the pool against a fresh one (instantiate + init + call).
    let mut group = c.benchmark_group("python/instance");
    let payload = tool_result(1024, false);
    for (name, chain) in &redactors {
        let version = chain.version(0).expect("one plugin");
        let msg = message(Kind::Response, &payload, &id);
        for (how, fresh) in [("from pool", false), ("fresh", true)] {
            group.bench_function(format!("{name} {how}"), |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(version.call_direct(&msg, fresh).await.is_ok()) })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_python);
criterion_main!(benches);
