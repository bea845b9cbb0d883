//! The short fuzz run that `cargo test` does: each target's committed corpus replayed,
//! then a bounded number of generated inputs (proptest): seeds from the corpus mutated,
//! and inputs built from the grammar of the target (JSON-RPC messages, NDJSON streams,
//! SSE bodies, config files). A failure is shrunk to a small input and printed.
//! `INTERPOSE_FUZZ_CASES` raises the number of generated inputs per strategy.

use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestRunner};

use interpose_fuzz::{Target, corpus_dir, target};

/// Generated inputs per strategy and target unless `INTERPOSE_FUZZ_CASES` says more.
const DEFAULT_CASES: u32 = 200;

#[test]
fn jsonrpc() {
    short_run("jsonrpc", messages().boxed());
}

#[test]
fn framing() {
    short_run("framing", ndjson_streams().boxed());
}

#[test]
fn sniff_id() {
    let truncated = messages().prop_flat_map(|text| {
        let len = text.len();
        (Just(text), 0..=len).prop_map(|(text, cut)| text[..cut].to_vec())
    });
    short_run("sniff_id", prop_oneof![messages(), truncated].boxed());
}

#[test]
fn sse() {
    short_run("sse", sse_bodies().boxed());
}

#[test]
fn remap() {
    let operations = prop::collection::vec(any::<u8>(), 0..256);
    let cancel_params = (json_value(), json_value()).prop_map(|(request_id, reason)| {
        format!(r#"{{"requestId":{request_id},"reason":{reason}}}"#).into_bytes()
    });
    short_run("remap", prop_oneof![operations, cancel_params].boxed());
}

#[test]
fn config() {
    short_run("config", config_files().boxed());
}

fn short_run(name: &str, generated: BoxedStrategy<Vec<u8>>) {
    let target = target(name).expect("a known target");
    let seeds = replay_corpus(target);
    let cases = std::env::var("INTERPOSE_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    for strategy in [mutated(seeds), generated] {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let outcome = runner.run(&strategy, |input| {
            (target.run)(&input);
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("fuzz target {name}: {e}");
        }
    }
}

/// Runs every file of the target's corpus; returns their contents as seeds.
fn replay_corpus(target: &Target) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target.name);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable corpus entry").path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "corpus {} is empty", dir.display());
    paths
        .iter()
        .map(|path| {
            let input = std::fs::read(path).expect("a readable corpus file");
            let run = std::panic::catch_unwind(|| (target.run)(&input));
            assert!(run.is_ok(), "corpus file {} fails", path.display());
            input
        })
        .collect()
}

/// Fragments worth inserting into JSON-ish input.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\"id\"",
    "\"id\":",
    "null",
    "-0",
    "1e999",
    "NaN",
    "\"2.0\"",
    "\n",
    "\r\n",
    "\r",
    "data: ",
    "event: ",
    "id: ",
    "\n\n",
    "\u{feff}",
    "\u{e9}",
    "[[plugins]]\n",
    "=",
    "\"\"\"",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Insert(Index, &'static str),
    Delete(Index, usize),
    Repeat(Index, usize),
    Truncate(Index),
}

fn mutated(seeds: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    let mutation = prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<Index>(), select(TOKENS)).prop_map(|(at, t)| Mutation::Insert(at, t)),
        (any::<Index>(), 1usize..16).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<Index>(), 1usize..64).prop_map(|(at, n)| Mutation::Repeat(at, n)),
        any::<Index>().prop_map(Mutation::Truncate),
    ];
    (select(seeds), prop::collection::vec(mutation, 0..6))
        .prop_map(|(mut input, mutations)| {
            for mutation in mutations {
                apply(&mut input, mutation);
            }
            input
        })
        .boxed()
}

fn apply(input: &mut Vec<u8>, mutation: Mutation) {
    let at = |index: &Index, len: usize| if len == 0 { 0 } else { index.index(len) };
    match mutation {
        Mutation::FlipBit(i, bit) if !input.is_empty() => {
            let i = at(&i, input.len());
            input[i] ^= 1 << bit;
        }
        Mutation::FlipBit(..) => {}
        Mutation::Insert(i, token) => {
            let i = at(&i, input.len() + 1);
            input.splice(i..i, token.bytes());
        }
        Mutation::Delete(i, n) => {
            let i = at(&i, input.len() + 1);
            input.drain(i..(i + n).min(input.len()));
        }
        Mutation::Repeat(i, n) => {
            let i = at(&i, input.len() + 1);
            let piece = input[i..(i + 8).min(input.len())].to_vec();
            for _ in 0..n {
                input.splice(i..i, piece.iter().copied());
            }
        }
        Mutation::Truncate(i) => {
            let i = at(&i, input.len() + 1);
            input.truncate(i);
        }
    }
}

/// Any JSON value, small.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).expect("a string serialises")),
        select(
            &[
                "\"id\"",
                "\"\\u0069d\"",
                "\"a\\\"b\"",
                "1e400",
                "-0",
                "12345678901234567890123"
            ][..]
        )
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key(), inner), 0..4).prop_map(|members| {
                let members: Vec<String> =
                    members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "\"id\"",
                "\"method\"",
                "\"params\"",
                "\"result\"",
                "\"error\"",
                "\"jsonrpc\"",
                "\"requestId\"",
                "\"_meta\"",
                "\"progressToken\"",
                "\"x\""
            ][..]
        )
        .prop_map(str::to_owned),
        any::<String>().prop_map(|s| serde_json::to_string(&s).expect("a string serialises")),
    ]
}

/// A JSON-RPC envelope (valid or nearly), its members in any order, spaced any way;
/// sometimes a batch of them.
fn messages() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        select(
            &[
                "\"abc\"", "null", "-1", "1.5", "\"id\"", "true", "{}", "[1]"
            ][..]
        )
        .prop_map(str::to_owned),
    ];
    let method = select(
        &[
            "\"tools/call\"",
            "\"initialize\"",
            "\"notifications/cancelled\"",
            "\"id\"",
            "\"\\u0069d\"",
            "\"\"",
            "1",
        ][..],
    );
    let member = prop_oneof![
        Just(r#""jsonrpc":"2.0""#.to_owned()),
        Just(r#""jsonrpc":"2.0""#.to_owned()),
        Just(r#""jsonrpc":"1.0""#.to_owned()),
        id.prop_map(|id| format!(r#""id":{id}"#)),
        method.prop_map(|m| format!(r#""method":{m}"#)),
        json_value().prop_map(|v| format!(r#""params":{v}"#)),
        json_value().prop_map(|v| format!(r#""result":{v}"#)),
        json_value().prop_map(|v| format!(r#""error":{v}"#)),
        (key(), json_value()).prop_map(|(k, v)| format!("{k}:{v}")),
    ];
    let space = select(&["", "", " ", "\n", "\r", "\t", "\r\n"][..]);
    let object = (prop::collection::vec((member, space.clone()), 0..6), space).prop_map(
        |(members, space)| {
            let members: Vec<String> = members.iter().map(|(m, s)| format!("{s}{m}{s}")).collect();
            format!("{space}{{{}}}{space}", members.join(","))
        },
    );
    prop_oneof![
        4 => object.clone(),
        1 => prop::collection::vec(object, 0..4).prop_map(|v| format!("[{}]", v.join(","))),
    ]
    .prop_map(String::into_bytes)
}

/// Newline-delimited messages, with blank, CRLF, invalid UTF-8 and over-long lines.
fn ndjson_streams() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        4 => messages(),
        1 => Just(Vec::new()),
        1 => Just(vec![0xff, 0xfe, b'{']),
        1 => (messages(), 1usize..200).prop_map(|(m, n)| m.repeat(n)),
    ];
    const ENDS: &[&[u8]] = &[b"\n", b"\r\n", b"\n\n", b""];
    let end = select(ENDS);
    prop::collection::vec((line, end), 0..8).prop_map(|lines| {
        lines
            .into_iter()
            .flat_map(|(l, e)| [l, e.to_vec()])
            .flatten()
            .collect()
    })
}

/// Server-Sent Event bodies: known and unknown fields, comments, every line ending,
/// multi-line data, events split by blank lines or not.
fn sse_bodies() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        messages().prop_map(|m| String::from_utf8_lossy(&m).into_owned()),
        any::<String>(),
        Just(String::new()),
        Just(" leading space".to_owned()),
    ];
    let field = select(&["data", "data", "event", "id", "retry", "", "other", "data:"][..]);
    let line = prop_oneof![
        (field, select(&[":", ": ", ""][..]), value).prop_map(|(f, sep, v)| format!("{f}{sep}{v}")),
        Just(":keep-alive".to_owned()),
        Just("retry: 100".to_owned()),
        Just(String::new()),
    ];
    let end = select(&["\n", "\r\n", "\r", "\n\n", "\r\n\r\n"][..]);
    prop::collection::vec((line, end), 0..10).prop_map(|lines| {
        lines
            .into_iter()
            .flat_map(|(l, e)| [l, e.to_owned()])
            .collect::<String>()
            .into_bytes()
    })
}

/// Config files: `[[plugins]]` tables with every key, right or wrong values.
fn config_files() -> impl Strategy<Value = Vec<u8>> {
    let key = select(
        &[
            "path",
            "name",
            "failure_policy",
            "timeout_ms",
            "memory_mb",
            "max_output_bytes",
            "pool_size",
            "sha256",
            "dirs",
            "env",
            "config",
            "unknown",
        ][..],
    );
    let value = prop_oneof![
        select(
            &[
                "\"a.wasm\"",
                "\"/abs/b.wasm\"",
                "\"../c.wasm\"",
                "\"\"",
                "\"reject\"",
                "\"skip\"",
                "0",
                "1",
                "4097",
                "-1",
                "18446744073709551616",
                "true",
                "[]",
                "[\"A\", \"B=C\"]",
                "[{ host = \"d\", guest = \"\" }]",
                "[{ host = \"d\", mode = \"rw\" }]",
                "{ a = 1, b = [1, 2] }",
                "\"é\"",
                "1979-05-27",
                "\"\"\"x\ny\"\"\""
            ][..]
        )
        .prop_map(str::to_owned),
        any::<String>().prop_map(|s| format!("{s:?}")),
    ];
    let entry = prop::collection::vec((key, value), 0..8).prop_map(|pairs| {
        let lines: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("[[plugins]]\n{}\n", lines.join("\n"))
    });
    prop::collection::vec(entry, 0..4).prop_map(|entries| entries.concat().into_bytes())
}
