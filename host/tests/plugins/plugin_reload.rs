//! Hot reload and sha256 pins, through the real binary: replacing a plugin file
//! while a session runs switches new messages to the new version without dropping
//! the session; a version that fails to load (pin mismatch, not a component) leaves
//! the old one serving.

use crate::http_support::{http_get, prometheus_samples, sample_value};
use crate::support;

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use support::{Proxy, config_file, echoed_params, fixture, result, run_to_exit, scratch};

const RELOAD_WAIT: Duration = Duration::from_secs(15);

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Replaces `target` with `source` the way a build does: write aside, then rename.
fn replace(target: &Path, source: &Path) {
    let staging = target.with_extension("tmp");
    std::fs::copy(source, &staging).unwrap();
    std::fs::rename(&staging, target).unwrap();
}

fn answered_by_plugin(proxy: &mut Proxy, id: u64) -> bool {
    let answer = proxy.call_tool(id, "respond", json!({}));
    result(&answer).get("by").is_some()
}

/// A config for `plugin.wasm` in `dir` with rules that `fixture-verdicts` follows
/// (`fixture-pass` ignores them), and `extra` settings.
fn start(dir: tempfile::TempDir, extra: &str) -> Proxy {
    let rules = r#"config = { rules = [{ tool = "respond", verdict = "respond", payload = { by = "plugin" } }] }"#;
    let config = config_file(
        dir.path(),
        &format!("[[plugins]]\npath = \"plugin.wasm\"\n{extra}\n{rules}\n"),
    );
    let args = [
        "--config".as_ref(),
        config.as_os_str(),
        "--admin".as_ref(),
        "127.0.0.1:0".as_ref(),
    ];
    Proxy::start(&args).holding(dir)
}

#[test]
fn replaced_plugin_serves_new_messages_in_the_same_session() {
    let dir = scratch();
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(fixture("fixture-pass"), &plugin).unwrap();
    let mut proxy = start(dir, "");
    assert!(
        !answered_by_plugin(&mut proxy, 1),
        "the pass plugin forwards"
    );

    proxy.notify("notifications/before-reload", json!({}));

    replace(&plugin, &fixture("fixture-verdicts"));
    assert!(
        proxy.wait_for_log("plugin reloaded", RELOAD_WAIT),
        "log:\n{}",
        proxy.log()
    );
    assert!(answered_by_plugin(&mut proxy, 2), "the new version answers");
    // In the metrics, the plugin keeps the name it was first loaded with.
    let (_, text) = http_get(&proxy.admin_addr(), "/metrics", None);
    let samples = prometheus_samples(&text);
    let plugin = ("plugin", "fixture-pass");
    let reloads = sample_value(&samples, "interpose_plugin_reloads_total", &[plugin]);
    assert_eq!(reloads, Some(1.0), "{text}");
    let responds = [plugin, ("verdict", "respond")];
    let responds = sample_value(&samples, "interpose_plugin_verdicts_total", &responds);
    assert_eq!(responds, Some(1.0), "{text}");
    // Same session, same backend process: it still remembers earlier traffic.
    proxy.notify("notifications/after-reload", json!({}));
    let seen = proxy.request(3, "debug/seen", json!({}));
    assert_eq!(
        result(&seen),
        &json!({"seen": ["notifications/before-reload", "notifications/after-reload"]})
    );
}

#[test]
fn pinned_plugin_refuses_a_replacement_with_another_hash() {
    let dir = scratch();
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(fixture("fixture-pass"), &plugin).unwrap();
    let pin = format!("sha256 = \"{}\"", sha256_hex(&plugin));
    let mut proxy = start(dir, &pin);
    assert!(!answered_by_plugin(&mut proxy, 1));

    replace(&plugin, &fixture("fixture-verdicts"));
    assert!(
        proxy.wait_for_log(
            "new version not loaded, the old one stays in use",
            RELOAD_WAIT
        ),
        "log:\n{}",
        proxy.log()
    );
    assert!(proxy.log().contains("but the configuration pins"));
    assert!(
        !answered_by_plugin(&mut proxy, 2),
        "the pinned version still serves"
    );
}

#[test]
fn broken_replacement_keeps_the_old_version() {
    let dir = scratch();
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(fixture("fixture-verdicts"), &plugin).unwrap();
    let garbage = dir.path().join("garbage.wasm");
    let mut proxy = start(dir, "");
    assert!(answered_by_plugin(&mut proxy, 1));

    std::fs::write(&garbage, b"\0asm not really").unwrap();
    replace(&plugin, &garbage);
    assert!(
        proxy.wait_for_log("is not a usable WebAssembly component", RELOAD_WAIT),
        "log:\n{}",
        proxy.log()
    );
    assert!(
        answered_by_plugin(&mut proxy, 2),
        "the old version still serves"
    );
    let answer = proxy.call_tool(3, "plain", json!({}));
    assert_eq!(echoed_params(&answer)["name"], "plain");
}

#[test]
fn pin_mismatch_at_start_is_refused_with_a_clear_error() {
    let dir = scratch();
    let wrong = "0".repeat(64);
    let config = config_file(
        dir.path(),
        &format!("[[plugins]]\npath = \"{{fixture-pass}}\"\nsha256 = \"{wrong}\"\n"),
    );
    let (status, log) = run_to_exit(&["--config".as_ref(), config.as_os_str()]);
    drop(dir);
    assert!(!status.success());
    let path = fixture("fixture-pass");
    let expected = format!(
        "interpose: plugin `fixture_pass` ({}): the file has sha256 {}, but the configuration pins {wrong}",
        path.display(),
        sha256_hex(&path)
    );
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
}
