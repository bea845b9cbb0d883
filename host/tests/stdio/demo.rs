//! `interpose demo` as a new user runs it: the scripted session through the demo's
//! plugins, with a secret redacted and a denied tool rejected.

use crate::support;

use std::process::Command;

use support::{INTERPOSE, cache_dir, fixture};

fn demo(args: &[&str]) -> (bool, String) {
    let redact = fixture("redact");
    let plugin_dir = redact.parent().expect("plugins live in a directory");
    let out = Command::new(INTERPOSE)
        .arg("demo")
        .args(args)
        .env("INTERPOSE_PLUGIN_DIR", plugin_dir)
        .env("INTERPOSE_CACHE_DIR", cache_dir())
        .output()
        .expect("run interpose demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty(),
        "the demo logs nothing on success: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), stdout)
}

#[test]
fn demo_redacts_secrets_and_rejects_the_denied_tool() {
    let (ok, out) = demo(&[]);
    assert!(ok, "demo failed:\n{out}");
    assert!(
        out.contains("tools/call fetch_config            0 of 6 fake secrets visible"),
        "{out}"
    );
    assert!(
        out.contains("[REDACTED:email]"),
        "the template resource's email is redacted:\n{out}"
    );
    assert!(
        out.contains("rejected: tool `delete_everything` is denied by tool-policy")
            && out.contains("[audit-log pass, tool-policy reject]"),
        "each plugin's verdict is shown:\n{out}"
    );
    assert!(
        out.contains("[redact rewrite, audit-log pass]"),
        "answers walk back, past tool-policy, which does not ask for call results:\n{out}"
    );
    assert!(
        out.contains("Notifications received: 3 progress, 3 log"),
        "{out}"
    );
}

#[test]
fn demo_without_plugins_relays_everything_unchanged() {
    let (ok, out) = demo(&["--no-plugins"]);
    assert!(ok, "demo failed:\n{out}");
    assert!(out.contains("6 of 6 fake secrets visible"), "{out}");
    assert!(out.contains("0 were changed, answered or dropped"), "{out}");
}

/// `interpose demo --gateway`: two built-in servers behind one endpoint, a call to
/// each, one brought down mid-call (its call fails naming it, the other still
/// answers), then restarted by the gateway and called again.
#[test]
fn gateway_demo_calls_each_server_and_one_comes_back_after_failing() {
    let out = Command::new(INTERPOSE)
        .args(["demo", "--gateway"])
        .output()
        .expect("run interpose demo --gateway");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for step in [
        "ok     tools/call demo_echo         hello through the gateway",
        "ok     tools/call notes_add_note    1 note(s) stored",
        "ok     tools/call notes_crash       failed, as it should: Mcp error: -32000: server `notes`",
        "ok     tools/call notes_list_notes  failed, as it should: Mcp error: -32000: server `notes` is not available",
        "ok     tools/call demo_add          5",
        "ok     notes comes back             listed again after",
        "ok     tools/call notes_list_notes  no notes",
    ] {
        assert!(stdout.contains(step), "missing `{step}` in:\n{stdout}");
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(
        stderr.contains("restart 1 in 500ms"),
        "the restart is logged:\n{stderr}"
    );
}
