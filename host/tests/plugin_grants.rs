//! Grants from the configuration open exactly what they name: a read-only directory
//! can be read and not written, nothing outside it is reachable, a read-write one can
//! be written, and an environment grant shows that variable alone.

mod support;

use serde_json::{Value, json};
use support::{Proxy, config_file, result, scratch};

fn report(proxy: &mut Proxy, id: u64, tool: &str, arguments: Value) -> Value {
    let answer = proxy.call_tool(id, tool, arguments);
    result(&answer).clone()
}

#[test]
fn read_only_directory_reads_inside_only() {
    let dir = scratch();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("note.txt"), "granted").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
    let config = config_file(
        dir.path(),
        r#"
        [[plugins]]
        path = "{fixture-escape}"
        dirs = [{ host = "data", guest = "/data", mode = "ro" }]
        "#,
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]);

    let read = report(
        &mut proxy,
        1,
        "read-file",
        json!({"path": "/data/note.txt"}),
    );
    assert_eq!(read, json!({"ok": true, "text": "granted"}));
    let outside = report(
        &mut proxy,
        2,
        "read-file",
        json!({"path": "/data/../secret.txt"}),
    );
    assert_eq!(outside["ok"], false, "{outside}");
    let host_path = dir.path().join("secret.txt").display().to_string();
    let outside = report(&mut proxy, 3, "read-file", json!({"path": host_path}));
    assert_eq!(outside["ok"], false, "{outside}");
    let write = report(
        &mut proxy,
        4,
        "write-file",
        json!({"path": "/data/new.txt"}),
    );
    assert_eq!(write["ok"], false, "{write}");
    assert!(!data.join("new.txt").exists());
}

#[test]
fn read_write_directory_can_be_written() {
    let dir = scratch();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let config = config_file(
        dir.path(),
        r#"
        [[plugins]]
        path = "{fixture-escape}"
        dirs = [{ host = "out", guest = "/out", mode = "rw" }]
        "#,
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]);
    let write = report(&mut proxy, 1, "write-file", json!({"path": "/out/new.txt"}));
    assert_eq!(write, json!({"ok": true}));
    assert_eq!(
        std::fs::read_to_string(out.join("new.txt")).unwrap(),
        "written"
    );
}

#[test]
fn env_grant_shows_only_the_named_variable() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        r#"
        [[plugins]]
        path = "{fixture-escape}"
        env = ["INTERPOSE_TEST_GRANTED"]
        "#,
    );
    let mut proxy = Proxy::start_with_env(
        &["--config".as_ref(), config.as_os_str()],
        &[
            ("INTERPOSE_TEST_GRANTED", "yes"),
            ("INTERPOSE_TEST_SECRET", "no"),
        ],
    );
    let env = report(&mut proxy, 1, "env", json!({}));
    assert_eq!(env["vars"], json!({"INTERPOSE_TEST_GRANTED": "yes"}));
}
