//! The plugin store's cost: `increment` on a real Valkey/Redis over loopback (the
//! store call alone, and the `rate-limit` plugin's `tools/call` with its counter
//! there), and what a `rate-limit` + `response-cache` chain on the memory store
//! adds to one `tools/call` (a cache hit; and a miss, request then response), with
//! the cache's Rust build and its JavaScript one (`response-cache-js`).
//!
//! Starts its own `valkey-server` or `redis-server` (scripts/setup-tests.sh installs
//! one) on a free loopback port. Needs `scripts/build-plugins.sh rate-limit
//! response-cache` and `scripts/build-js-plugin.sh plugins/response-cache-js`.

use std::hint::black_box;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;

use interpose::config::{FailurePolicy, PluginConfig};
use interpose::plugin::store::{StoreConfig, Stores};
use interpose::plugin::{InterceptorChain, PluginRuntime, RuntimeOptions};
use interpose::session::intercept::{Interceptor, PassAll, Verdict};
use interpose::wire::jsonrpc::{Kind, Payload};

mod support;
use support::{message, response, tool_result};

fn built(path: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm")
        .join(path);
    assert!(
        path.exists(),
        "{} is missing: build it first",
        path.display()
    );
    path
}

/// A rate limit no benchmark reaches.
fn rate_limit() -> PluginConfig {
    let mut plugin = PluginConfig::from_path(built("wasm32-wasip2/release/rate_limit.wasm"));
    plugin.name = Some("rate-limit".into());
    let limit: toml::Table = toml::from_str(
        "tools = [\"*\"]\nper = \"session\"\nmax = 1000000000000\nwindow_s = 1000000000",
    )
    .expect("a limit");
    plugin.config.insert(
        "limits".into(),
        toml::Value::Array(vec![toml::Value::Table(limit)]),
    );
    plugin
}

/// The response cache built from `path` (under target/wasm), caching every tool.
fn response_cache(path: &str) -> PluginConfig {
    let mut plugin = PluginConfig::from_path(built(path));
    plugin.memory_mb = 128;
    plugin.timeout_ms = 1000;
    plugin.failure_policy = FailurePolicy::Skip;
    plugin
}

/// A Valkey/Redis server on a free loopback port, killed when dropped.
struct Server(Child, u16);

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let binary = ["valkey-server", "redis-server"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").output().is_ok())
            .expect("valkey-server or redis-server: run scripts/setup-tests.sh");
        let child = Command::new(binary)
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--port",
            ])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{binary} did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server(child, port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tools/call` params for the tool `lookup`, its argument numbered `n`.
fn call(n: u64) -> Payload {
    RawValue::from_string(format!(r#"{{"name":"lookup","arguments":{{"n":{n}}}}}"#))
        .expect("valid JSON")
        .into()
}

fn bench_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let server = Server::start();
    let config = StoreConfig {
        url: Some(format!("redis://127.0.0.1:{}", server.1)),
        ..StoreConfig::default()
    };
    let valkey = rt.block_on(async { Stores::new(&config) }).expect("stores");
    let memory = Stores::default();
    let id = RawValue::from_string("7".into()).expect("valid JSON");

    let mut group = c.benchmark_group("store");
    for (name, stores) in [("valkey", &valkey), ("memory", &memory)] {
        let store = stores.open("bench");
        group.bench_function(format!("{name}: increment"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(store.increment("n", 1, None).await) })
        });
        group.bench_function(format!("{name}: increment with a TTL"), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(store.increment("w", 1, Some(Duration::from_secs(60))).await)
            })
        });
    }
    group.finish();

    let runtime_with = |stores: &Stores| {
        PluginRuntime::new(RuntimeOptions {
            stores: stores.clone(),
            ..RuntimeOptions::default()
        })
        .expect("engine")
    };
    let load = |stores: &Stores, plugins: Vec<PluginConfig>| -> Arc<InterceptorChain> {
        rt.block_on(InterceptorChain::load(
            runtime_with(stores),
            plugins,
            16 << 20,
        ))
        .expect("plugins load")
    };
    let params = call(0);
    let result = tool_result(1024, false);

    // One `tools/call` request through rate-limit, its counter in Valkey or in memory.
    let mut group = c.benchmark_group("rate-limit request");
    let chains: Vec<(&str, Arc<dyn Interceptor>)> = vec![
        ("no plugins", Arc::new(PassAll)),
        ("memory", load(&memory, vec![rate_limit()])),
        ("valkey", load(&valkey, vec![rate_limit()])),
    ];
    for (name, chain) in &chains {
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async {
                black_box(chain.intercept(message(Kind::Request, &params, &id)).await)
            })
        });
    }
    group.finish();

    // rate-limit + response-cache on the memory store, each build of the cache: a
    // hit (the request is answered from the cache), and a miss (a new argument each
    // time: the request goes on, the response is stored).
    let fresh = AtomicU64::new(1);
    for (cache, path) in [
        (
            "response-cache",
            "wasm32-wasip2/release/response_cache.wasm",
        ),
        ("response-cache-js", "js/response-cache-js.wasm"),
    ] {
        let both = load(&memory, vec![rate_limit(), response_cache(path)]);
        let mut group = c.benchmark_group(format!("rate-limit + {cache}, memory"));
        rt.block_on(async {
            both.intercept(message(Kind::Request, &params, &id)).await;
            both.intercept(response(&params, &result, &id)).await;
        });
        let hit = both.intercept(message(Kind::Request, &params, &id));
        assert!(
            matches!(rt.block_on(hit), Verdict::Respond(_)),
            "{cache}: the request is answered from the cache"
        );
        group.bench_function("hit: request", |b| {
            b.to_async(&rt).iter(|| async {
                black_box(both.intercept(message(Kind::Request, &params, &id)).await)
            })
        });
        group.bench_function("no plugins: request", |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    PassAll
                        .intercept(message(Kind::Request, &params, &id))
                        .await,
                )
            })
        });
        for (name, chain) in [
            (
                "miss: request + response",
                both.clone() as Arc<dyn Interceptor>,
            ),
            ("no plugins: request + response", Arc::new(PassAll)),
        ] {
            group.bench_function(name, |b| {
                b.to_async(&rt).iter_batched(
                    || call(fresh.fetch_add(1, Ordering::Relaxed)),
                    |params| {
                        let (chain, result, id) = (chain.clone(), &result, &id);
                        async move {
                            black_box(chain.intercept(message(Kind::Request, &params, id)).await);
                            black_box(chain.intercept(response(&params, result, id)).await)
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
    drop(server);
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
