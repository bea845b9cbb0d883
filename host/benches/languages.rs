//! The same plugins in Rust, Python and JavaScript, in the real plugin runtime: the
//! cost per message of a pass plugin and of `redact` on a warm instance at 1 KiB and
//! 100 KiB, next to the same `redact` code run natively; the cost of a fresh
//! instance (instantiate + `init` + one call) against one from the pool; and, printed
//! before the measurements, the memory each live instance adds.
//!
//! Needs the components, built from source:
//! `scripts/build-plugins.sh redact fixture-pass` (Rust),
//! `scripts/build-python-plugin.sh plugins/redact-py` and
//! `tests/plugins/fixture-py-pass` (Python), `scripts/build-js-plugin.sh
//! plugins/redact-js` and `tests/plugins/fixture-js-pass` (JavaScript). A missing
//! component is reported and its rows skipped.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use interpose_plugin::Plugin as _;
use serde_json::value::RawValue;

use interpose::config::PluginConfig;
use interpose::plugin::{InterceptorChain, PluginRuntime, RuntimeOptions};
use interpose::session::intercept::Interceptor;
use interpose::wire::jsonrpc::Kind;

mod support;
use support::{SIZES, message, tool_call, tool_result};

/// Live instances made to measure the memory one adds.
const MEMORY_SAMPLE: usize = 16;

#[derive(Clone, Copy)]
enum Language {
    Rust,
    Python,
    JavaScript,
}

impl Language {
    const ALL: [Language; 3] = [Language::Rust, Language::Python, Language::JavaScript];

    fn label(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "js",
        }
    }

    /// The component built from `plugins/<name>` or `tests/plugins/<name>` in this
    /// language (`redact`, `fixture-pass`), when it has been built.
    fn component(self, name: &str) -> Option<PathBuf> {
        let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm");
        let path = match self {
            Language::Rust => target
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", name.replace('-', "_"))),
            Language::Python => target.join("python").join(guest_name(name, "py")),
            Language::JavaScript => target.join("js").join(guest_name(name, "js")),
        };
        if path.exists() {
            Some(path)
        } else {
            eprintln!("skipped: {} is not built", path.display());
            None
        }
    }
}

/// The file name of the Python or JavaScript twin of a Rust plugin or fixture:
/// `redact-py.wasm`, `fixture-py-pass.wasm`.
fn guest_name(name: &str, suffix: &str) -> String {
    match name.strip_prefix("fixture-") {
        Some(rest) => format!("fixture-{suffix}-{rest}.wasm"),
        None => format!("{name}-{suffix}.wasm"),
    }
}

/// Limits that fit every language (Python and JavaScript runtimes need more
/// memory and, at 100 KiB, more time than the defaults).
fn plugin(path: PathBuf) -> PluginConfig {
    let mut plugin = PluginConfig::from_path(path);
    plugin.memory_mb = 128;
    plugin.timeout_ms = 1000;
    plugin
}

struct Bench {
    rt: tokio::runtime::Runtime,
    runtime: Arc<PluginRuntime>,
}

impl Bench {
    fn new() -> Self {
        Bench {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime"),
            runtime: PluginRuntime::new(RuntimeOptions::default()).expect("engine"),
        }
    }

    /// A chain of the plugin `name` in each language that has it built.
    fn chains(&self, name: &str) -> Vec<(Language, Arc<InterceptorChain>)> {
        Language::ALL
            .into_iter()
            .filter_map(|language| {
                let path = language.component(name)?;
                let loaded = self.rt.block_on(InterceptorChain::load(
                    self.runtime.clone(),
                    vec![plugin(path)],
                    16 << 20,
                ));
                match loaded {
                    Ok(chain) => Some((language, chain)),
                    Err(e) => {
                        eprintln!("skipped: {name} in {}: {e}", language.label());
                        None
                    }
                }
            })
            .collect()
    }
}

fn bench_languages(c: &mut Criterion) {
    let bench = Bench::new();
    let passers = bench.chains("fixture-pass");
    let redactors = bench.chains("redact");
    let id = RawValue::from_string("7".into()).expect("valid JSON");

    report_memory(&bench, &passers, "pass");
    report_memory(&bench, &redactors, "redact");

    let mut group = c.benchmark_group("languages/pass");
    for (size_name, size) in SIZES {
        let payload = tool_call(size);
        for (language, chain) in &passers {
            group.bench_with_input(
                BenchmarkId::new(language.label(), size_name),
                &payload,
                |b, p| {
                    b.to_async(&bench.rt).iter(|| async {
                        black_box(chain.intercept(message(Kind::Request, p, &id)).await)
                    })
                },
            );
        }
    }
    group.finish();

    let native = native_redact();
    let mut group = c.benchmark_group("languages/redact");
    for (size_name, size) in SIZES {
        for (case, secret) in [("clean", false), ("secret", true)] {
            let payload = tool_result(size, secret);
            group.bench_with_input(
                BenchmarkId::new(format!("native {case}"), size_name),
                &payload,
                |b, p| {
                    b.iter(|| {
                        let msg = interpose_plugin::Message::response("tools/call", p.get());
                        black_box(native.intercept(&msg))
                    })
                },
            );
            for (language, chain) in &redactors {
                group.bench_with_input(
                    BenchmarkId::new(format!("{} {case}", language.label()), size_name),
                    &payload,
                    |b, p| {
                        b.to_async(&bench.rt).iter(|| async {
                            black_box(chain.intercept(message(Kind::Response, p, &id)).await)
                        })
                    },
                );
            }
        }
    }
    group.finish();

    // A warm instance from the pool against a fresh one (instantiate + init + call).
    let mut group = c.benchmark_group("languages/instance");
    let payload = tool_result(1024, false);
    for (language, chain) in &redactors {
        let version = chain.version(0).expect("one plugin");
        let msg = message(Kind::Response, &payload, &id);
        for (how, fresh) in [("from pool", false), ("fresh", true)] {
            group.bench_function(format!("redact {} {how}", language.label()), |b| {
                b.to_async(&bench.rt)
                    .iter(|| async { black_box(version.call_direct(&msg, fresh).await.is_ok()) })
            });
        }
    }
    group.finish();
}

/// The Rust `redact` plugin's code, called natively with the same default rules.
fn native_redact() -> redact::Redact {
    let (plugin, _) = redact::Redact::init("{}").expect("default config");
    plugin
}

/// Prints the resident memory each live instance adds, from the growth of the
/// process's resident set while `MEMORY_SAMPLE` instances are kept alive.
fn report_memory(bench: &Bench, chains: &[(Language, Arc<InterceptorChain>)], plugin: &str) {
    for (language, chain) in chains {
        let version = chain.version(0).expect("one plugin");
        let before = resident_bytes();
        let spare = bench
            .rt
            .block_on(version.spare_instances(MEMORY_SAMPLE))
            .expect("instances start");
        let per_instance = resident_bytes().saturating_sub(before) / MEMORY_SAMPLE as u64;
        drop(spare);
        println!(
            "memory per instance: {plugin} {}: {:.2} MiB",
            language.label(),
            per_instance as f64 / (1 << 20) as f64
        );
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages");
    pages * 4096
}

criterion_group!(benches, bench_languages);
criterion_main!(benches);
