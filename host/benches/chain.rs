//! The plugin chain's cost per message, at 1 KiB and 100 KiB payloads: no plugins;
//! one Rust pass plugin; one plugin its manifest filters out; three pass plugins; and
//! an instance from the pool against a fresh instance per call.
//!
//! Needs the fixture plugins: `scripts/build-plugins.sh` (or set
//! `INTERPOSE_BENCH_WASM_DIR` to a directory holding `fixture_pass.wasm` and
//! `fixture_verdicts.wasm`).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;

use interpose::config::PluginConfig;
use interpose::plugin::{InterceptorChain, PluginRuntime, RuntimeOptions};
use interpose::session::intercept::{Intercepted, Interceptor, PassAll};
use interpose::wire::jsonrpc::{Kind, Payload};

mod support;
use support::{SIZES, message, response, tool_call, tool_result};

fn wasm(name: &str) -> PathBuf {
    let dir = std::env::var_os("INTERPOSE_BENCH_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm/wasm32-wasip2/release")
        });
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh first",
        path.display()
    );
    path
}

/// A `tools/call` request carrying `payload`.
fn request<'a>(payload: &'a Payload, id: &'a RawValue) -> Intercepted<'a> {
    message(Kind::Request, payload, id)
}

/// The plugins `interpose demo` runs, with the same policy.
fn demo_chain() -> Vec<PluginConfig> {
    let mut policy = PluginConfig::from_path(wasm("tool-policy"));
    policy
        .config
        .insert("deny".into(), toml::Value::Array(vec!["delete_*".into()]));
    vec![
        PluginConfig::from_path(wasm("audit-log")),
        policy,
        PluginConfig::from_path(wasm("redact")),
    ]
}

/// Logs as the proxy does by default (`interpose=info`, plugins' lines batched and
/// formatted by the flusher thread), into /dev/null.
fn log_to_dev_null() {
    let sink = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let log = interpose::log_output::BatchedLog::for_process(Box::new(sink)).expect("log");
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("interpose=info,warn"))
        .fmt_fields(interpose::log_output::Fields)
        .with_timer(interpose::log_output::Timestamps)
        .with_writer(log)
        .with_ansi(false)
        .finish();
    // Global: the flusher thread formats the plugins' lines with it.
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
}

fn pass() -> PluginConfig {
    PluginConfig::from_path(wasm("fixture-pass"))
}

/// A plugin whose manifest asks only for a method the benchmark never sends.
fn filtered_out() -> PluginConfig {
    let mut plugin = PluginConfig::from_path(wasm("fixture-verdicts"));
    plugin.config.insert(
        "methods".into(),
        toml::Value::Array(vec!["resources/read".into()]),
    );
    plugin
}

fn bench_chain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = PluginRuntime::new(RuntimeOptions::default()).expect("engine");
    let load = |plugins: Vec<PluginConfig>| -> Arc<InterceptorChain> {
        rt.block_on(InterceptorChain::load(runtime.clone(), plugins, 16 << 20))
            .expect("plugins load")
    };
    let chains: Vec<(&str, Arc<dyn Interceptor>)> = vec![
        ("no plugins", Arc::new(PassAll)),
        ("empty chain", load(vec![])),
        ("filtered out", load(vec![filtered_out()])),
        ("one pass", load(vec![pass()])),
        ("three pass", load(vec![pass(), pass(), pass()])),
    ];
    let id = RawValue::from_string("7".into()).expect("valid JSON");
    let mut group = c.benchmark_group("chain");
    for (size_name, size) in SIZES {
        let payload = tool_call(size);
        for (name, chain) in &chains {
            group.bench_with_input(BenchmarkId::new(*name, size_name), &payload, |b, p| {
                b.to_async(&rt)
                    .iter(|| async { black_box(chain.intercept(request(p, &id)).await) })
            });
        }
    }
    group.finish();

    // One `tools/call` round trip (request, then response) through the demo's chain:
    // audit-log, tool-policy and redact. Plugin log lines take the proxy's way (kept
    // in the batch, formatted by the flusher thread) and end in /dev/null.
    log_to_dev_null();
    let demo = load(demo_chain());
    let mut group = c.benchmark_group("round trip");
    for (size_name, size) in SIZES {
        let params = tool_call(size);
        let result = tool_result(size, false);
        group.bench_function(
            BenchmarkId::new("audit-log + tool-policy + redact", size_name),
            |b| {
                b.to_async(&rt).iter(|| async {
                    black_box(demo.intercept(request(&params, &id)).await);
                    black_box(demo.intercept(response(&params, &result, &id)).await)
                })
            },
        );
        group.bench_function(BenchmarkId::new("no plugins", size_name), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(PassAll.intercept(request(&params, &id)).await);
                black_box(PassAll.intercept(response(&params, &result, &id)).await)
            })
        });
    }
    group.finish();

    // The same round trip with the caches cold, as in the live proxy: between two
    // calls the client, the backend and the kernel run and evict the plugins' code
    // and memory. Each timed round trip follows a write over more memory than the L2
    // cache holds (not timed).
    let mut group = c.benchmark_group("round trip, cold caches");
    group.sample_size(30);
    let params = tool_call(1024);
    let result = tool_result(1024, false);
    let mut policy = demo_chain();
    let redact = policy.pop().expect("redact");
    let policy_only = policy.pop().expect("tool-policy");
    let audit = policy.pop().expect("audit-log");
    let cold_chains: Vec<(&str, Arc<dyn Interceptor>)> = vec![
        ("no plugins", Arc::new(PassAll)),
        ("pass", load(vec![pass()])),
        ("audit-log", load(vec![audit.clone()])),
        ("tool-policy", load(vec![policy_only.clone()])),
        ("redact", load(vec![redact.clone()])),
        ("audit-log + tool-policy + redact", demo.clone()),
    ];
    for (name, chain) in &cold_chains {
        group.bench_function(BenchmarkId::new(*name, "1KiB"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (chain, params, result, id) = (chain.clone(), &params, &result, &id);
                async move {
                    let mut evict = vec![0u8; 8 << 20];
                    let mut total = std::time::Duration::ZERO;
                    for round in 0..iters {
                        evict
                            .iter_mut()
                            .step_by(64)
                            .for_each(|b| *b = b.wrapping_add(round as u8));
                        black_box(&evict);
                        let started = std::time::Instant::now();
                        black_box(chain.intercept(request(params, id)).await);
                        black_box(chain.intercept(response(params, result, id)).await);
                        total += started.elapsed();
                    }
                    total
                }
            })
        });
    }
    group.finish();

    // One call into the pass plugin: an instance from the pool, or a new one each time.
    let single = load(vec![pass()]);
    let version = single.version(0).expect("one plugin");
    let mut group = c.benchmark_group("instance");
    let payload = tool_call(1024);
    let msg = request(&payload, &id);
    for (name, fresh) in [("from pool", false), ("fresh", true)] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(version.call_direct(&msg, fresh).await.is_ok()) })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_chain);
criterion_main!(benches);
