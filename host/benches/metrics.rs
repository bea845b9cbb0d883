//! What the metrics add per message, without pipes or processes around them: the
//! calls the relay makes for one client `tools/call` and its answer (the request and
//! the answer counted, the operation timed on both sides), at 1 KiB and 100 KiB.
//! The end-to-end check of the 2 µs budget is proxy-bench with the build before the
//! metrics as an `--extra` target (benches/README.md).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use interpose::session::intercept::Direction;
use interpose::telemetry::metrics::{self, ErrorType, Name};
use interpose::wire::jsonrpc::{Kind, Message, raw};

mod support;
use support::{SIZES, tool_call, tool_result};

fn request_and_answer(c: &mut Criterion) {
    let metrics = metrics::metrics();
    let server = Name::new("bench");
    metrics.learn_tools(&raw(r#"{"tools":[{"name":"echo"}]}"#));
    let mut group = c.benchmark_group("metrics per tools/call and its answer");
    for (label, size) in SIZES {
        let params = tool_call(size);
        let answer = Message::Response {
            id: raw("1"),
            result: tool_result(size, false),
        };
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                metrics.message(Direction::ToServer, Kind::Request, params.get().len());
                let operation = metrics.operation("tools/call", Some(&params));
                metrics.message(Direction::ToClient, Kind::Response, size);
                let error = ErrorType::of_answer("tools/call", &answer);
                metrics.upstream_done(&server, "tools/call", Duration::from_micros(50), error);
                metrics.operation_done(&operation, "tools/call", error);
                black_box(operation)
            })
        });
    }
    group.finish();
    c.bench_function("metrics per notification", |b| {
        b.iter(|| metrics.message(Direction::ToClient, Kind::Notification, black_box(64)))
    });
}

criterion_group!(benches, request_and_answer);
criterion_main!(benches);
