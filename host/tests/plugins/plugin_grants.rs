//! Grants from the configuration open exactly what they name: a read-only directory
//! can be read and not written, nothing outside it is reachable, a read-write one can
//! be written, and an environment grant shows that variable alone.
//!
//! `fixture-escape` tries what its configuration lists on `tools/call` of `escape`
//! and reports each outcome in `structuredContent`.

use crate::support;

use std::path::Path;

use serde_json::{Value, json};
use support::{Proxy, config_file, result, scratch};

/// Runs `fixture-escape` with `grants` and `attempts` (TOML lines) in the proxy's
/// environment plus `env`, and returns its report. The deadline is one a loaded
/// machine does not hit (these tests check grants, not time; the default 50 ms was
/// missed while other tests in this binary compiled plugins).
fn escape(dir: &Path, grants: &str, attempts: &str, env: &[(&str, &str)]) -> Value {
    let config = config_file(
        dir,
        &format!(
            "[[plugins]]\npath = \"{{fixture-escape}}\"\ntimeout_ms = 5000\n{grants}\n[plugins.config]\n{attempts}\n"
        ),
    );
    let mut proxy = Proxy::start_with_env(&["--config".as_ref(), config.as_os_str()], env);
    let answer = proxy.call_tool(1, "escape", json!({}));
    result(&answer)["structuredContent"].clone()
}

fn ok(report: &Value, section: &str, item: &str) -> bool {
    report[section][item]["ok"]
        .as_bool()
        .unwrap_or_else(|| panic!("no {section} {item} in {report}"))
}

#[test]
fn read_only_directory_reads_inside_only() {
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("note.txt"), "granted").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
    let host_secret = dir.path().join("secret.txt").display().to_string();
    let report = escape(
        dir.path(),
        r#"dirs = [{ host = "data", guest = "/data", mode = "ro" }]"#,
        &format!(
            r#"read = ["/data/note.txt", "/data/../secret.txt", "{host_secret}"]
               list = ["/data"]
               write = ["/data/new.txt"]"#
        ),
        &[],
    );
    assert_eq!(
        report["read"]["/data/note.txt"],
        json!({"ok": true, "value": "granted"})
    );
    assert_eq!(
        report["list"]["/data"],
        json!({"ok": true, "value": ["note.txt"]})
    );
    assert!(!ok(&report, "read", "/data/../secret.txt"), "{report}");
    assert!(!ok(&report, "read", &host_secret), "{report}");
    assert!(!ok(&report, "write", "/data/new.txt"), "{report}");
    assert!(!data.join("new.txt").exists());
}

#[test]
fn read_write_directory_can_be_written() {
    let dir = scratch();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let report = escape(
        dir.path(),
        r#"dirs = [{ host = "out", guest = "/out", mode = "rw" }]"#,
        r#"write = ["/out/new.txt"]"#,
        &[],
    );
    assert!(ok(&report, "write", "/out/new.txt"), "{report}");
    assert_eq!(
        std::fs::read_to_string(out.join("new.txt")).unwrap(),
        "fixture-escape was here"
    );
}

#[test]
fn env_grant_shows_only_the_named_variable() {
    let dir = scratch();
    let report = escape(
        dir.path(),
        r#"env = ["INTERPOSE_TEST_GRANTED"]"#,
        r#"env = ["INTERPOSE_TEST_GRANTED", "INTERPOSE_TEST_SECRET", "PATH"]"#,
        &[
            ("INTERPOSE_TEST_GRANTED", "yes"),
            ("INTERPOSE_TEST_SECRET", "no"),
        ],
    );
    assert_eq!(
        report["env"]["INTERPOSE_TEST_GRANTED"],
        json!({"ok": true, "value": "yes"})
    );
    assert!(!ok(&report, "env", "INTERPOSE_TEST_SECRET"));
    assert!(!ok(&report, "env", "PATH"));
    assert_eq!(report["env_count"], 1);
}
