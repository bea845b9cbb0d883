//! Fuzz targets for the code of interpose that reads untrusted input: the JSON-RPC
//! envelope parser, the line framer, the id sniffer, the SSE reader, the id remapping
//! and the config loader.
//!
//! A target takes arbitrary bytes and panics when a property fails; a panic inside
//! interpose is a finding too. The same functions run under two drivers:
//! - `cargo test -p interpose-fuzz`: the corpus in `fuzz/corpus/TARGET/` replayed, plus
//!   a bounded number of generated inputs (proptest), a few seconds in all;
//! - `scripts/fuzz.sh TARGET [MINUTES]`: AFL++, coverage-guided, for as long as asked
//!   (the `fuzz-afl` binary, built with the `afl` feature).
//!
//! See `docs/fuzzing.md`.

pub mod chunks;
pub mod targets;

/// One fuzz target: a name (also its corpus directory) and the function to feed.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the docs list them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "jsonrpc",
        run: targets::jsonrpc,
    },
    Target {
        name: "framing",
        run: targets::framing,
    },
    Target {
        name: "sniff_id",
        run: targets::sniff_id,
    },
    Target {
        name: "sse",
        run: targets::sse,
    },
    Target {
        name: "remap",
        run: targets::remap,
    },
    Target {
        name: "config",
        run: targets::config,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Where the committed corpus of `target` lives.
pub fn corpus_dir(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}
