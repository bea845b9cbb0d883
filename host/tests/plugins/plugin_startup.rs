//! Start-up with plugins: `interpose check` leaves each compiled plugin in the
//! compiled-plugin cache, where `interpose run` then maps it instead of compiling;
//! the first start after a change says that it compiles, and answers no message
//! before its chain is ready.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use interpose::config::Sha256;
use serde_json::json;
use support::{INTERPOSE, PATIENCE, Proxy, compiled_entries, config_file, fixture, scratch};

/// The cache entry `interpose` writes for the plugin file `path`.
fn entry_name(path: &Path) -> String {
    let wasm = std::fs::read(path).expect("the fixture is built");
    format!("{}.cwasm", Sha256::of(&wasm))
}

/// `interpose run ARGS` (echo backend) with the compiled-plugin cache in `cache`.
fn start_with_cache(args: &[&std::ffi::OsStr], cache: &Path) -> Proxy {
    let cache = cache.to_str().expect("a UTF-8 scratch path");
    Proxy::start_with_env(args, &[("INTERPOSE_CACHE_DIR", cache)])
}

#[test]
fn check_leaves_each_compiled_plugin_where_run_maps_it() {
    let dir = scratch();
    let cache = dir.path().join("cache");
    let plugins: [PathBuf; 2] = [fixture("fixture-pass"), fixture("fixture-verdicts")];
    let args = [
        "--plugin".as_ref(),
        plugins[0].as_os_str(),
        "--plugin".as_ref(),
        plugins[1].as_os_str(),
    ];

    let checked = Command::new(INTERPOSE)
        .arg("check")
        .args(args)
        .env("INTERPOSE_CACHE_DIR", &cache)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run interpose check");
    assert!(checked.status.success(), "{checked:?}");
    assert_eq!(
        String::from_utf8_lossy(&checked.stdout),
        "ok: 2 plugin(s), 0 server(s) with 0 plugin(s) of their own\n"
    );
    let mut expected: Vec<String> = plugins.iter().map(|p| entry_name(p)).collect();
    expected.sort();
    assert_eq!(compiled_entries(&cache), expected);

    let mut proxy = start_with_cache(&args, &cache);
    let answer = proxy.call_tool(1, "echo", json!({"text": "hi"}));
    assert_eq!(
        support::echoed_params(&answer),
        &json!({"name": "echo", "arguments": {"text": "hi"}})
    );
    let log = proxy.log();
    assert_eq!(
        log.matches("loaded the compiled plugin from the cache")
            .count(),
        2,
        "both plugins were mapped from the cache; log:\n{log}"
    );
    assert!(!log.contains("compiling plugin"), "{log}");
    assert_eq!(compiled_entries(&cache), expected, "nothing new was stored");
}

#[test]
fn the_first_start_says_it_compiles_and_answers_nothing_before_its_chain_is_ready() {
    let dir = scratch();
    let cache = dir.path().join("cache");
    // The plugin answers `initialize` itself: an answer from the backend would mean
    // the message went by before the chain was ready.
    let config = config_file(
        dir.path(),
        "[[plugins]]\npath = \"{fixture-verdicts}\"\n[plugins.config]\n\
         rules = [{ method = \"initialize\", verdict = \"respond\", payload = { by = \"plugin\" } }]\n",
    );
    let mut proxy = start_with_cache(&["--config".as_ref(), config.as_os_str()], &cache);
    // Sent at once, while the proxy is still compiling the plugin.
    let answer = proxy.request(1, "initialize", json!({"protocolVersion": "2025-06-18"}));
    assert_eq!(answer["result"], json!({"by": "plugin"}), "{answer}");

    assert!(proxy.wait_for_log("plugin loaded from", PATIENCE));
    let log = proxy.log();
    let position = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in the log:\n{log}"))
    };
    let compiling = position(
        "compiling plugin fixture_verdicts (first start after a change; later starts use the \
         cache)",
    );
    let compiled = position("compiled plugin fixture_verdicts in ");
    let loaded = position("plugin loaded from");
    assert!(compiling < compiled && compiled < loaded, "{log}");
    assert!(!log.contains("from the cache"), "{log}");
    assert_eq!(
        compiled_entries(&cache),
        [entry_name(&fixture("fixture-verdicts"))]
    );
}
