//! The added latency of an outbound HTTP call made by a plugin (`wasi:http`,
//! checked against its grant, through the proxy's client) over the same GET made
//! natively with reqwest, both to a loopback server in this process. Beside them, a
//! plugin call that makes no request (`fixture-pass`), the floor of any plugin call.
//!
//! Needs `scripts/build-plugins.sh fixture-http fixture-pass`. Run by hand:
//! `cargo bench -p interpose --bench outbound_http`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;

use interpose::config::PluginConfig;
use interpose::plugin::{InterceptorChain, PluginRuntime, RuntimeOptions};
use interpose::session::intercept::Interceptor;
use interpose::wire::jsonrpc::{Kind, Payload};

mod support;
use support::message;

fn component(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

fn bench_outbound_http(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The loopback server: `GET /v1/hello` answers 21 bytes.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let app = axum::Router::new().route(
        "/v1/hello",
        axum::routing::get(|| async { "hello from the target" }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/v1/hello");

    let runtime = PluginRuntime::new(RuntimeOptions::default()).expect("engine");
    let load = |name: &str, http: Vec<String>| {
        let mut config = PluginConfig::from_path(component(name));
        config.timeout_ms = 5000;
        config.http = http;
        rt.block_on(InterceptorChain::load(
            runtime.clone(),
            vec![config],
            16 << 20,
        ))
        .unwrap_or_else(|e| panic!("{name}: {e} (scripts/build-plugins.sh {name})"))
    };
    let fetcher = load("fixture-http", vec![format!("http://{addr}/v1/*")]);
    let passer = load("fixture-pass", Vec::new());
    let native = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    let id = RawValue::from_string("7".into()).expect("valid JSON");
    let fetch: Payload = RawValue::from_string(format!(
        r#"{{"name":"fetch","arguments":{{"url":"{url}"}}}}"#
    ))
    .expect("valid JSON")
    .into();

    // Checked once, outside the measurement: the plugin really fetched.
    let outcome = rt.block_on(fetcher.intercept(message(Kind::Request, &fetch, &id)));
    let shown = format!("{outcome:?}");
    assert!(shown.contains("hello from the target"), "{shown}");

    let mut group = c.benchmark_group("outbound_http");
    group.bench_function("native reqwest GET", |b| {
        b.to_async(&rt).iter(|| async {
            let response = native.get(&url).send().await.expect("GET");
            black_box(response.bytes().await.expect("body"))
        })
    });
    group.bench_function("plugin GET (wasi:http)", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(fetcher.intercept(message(Kind::Request, &fetch, &id)).await)
        })
    });
    group.bench_function("plugin call, no request", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(passer.intercept(message(Kind::Request, &fetch, &id)).await)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_outbound_http);
criterion_main!(benches);
