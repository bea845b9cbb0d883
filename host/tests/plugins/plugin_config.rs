//! What a user sees for a bad `interpose.toml` or plugin: the exact error line, and
//! a non-zero exit before any backend is started; `interpose check` says the same.

use crate::support;

use support::{check_to_exit, config_file, run_to_exit, scratch};

/// The `interpose: ` line of a failed run's output.
fn error_line(status: std::process::ExitStatus, log: &str) -> String {
    assert!(!status.success(), "expected a failure, log:\n{log}");
    log.lines()
        .find(|l| l.starts_with("interpose: "))
        .unwrap_or_else(|| panic!("no error line in:\n{log}"))
        .to_owned()
}

/// Runs `interpose run --config FILE` with `text` and returns the error line, after
/// checking that `interpose check --config FILE` fails with the same line.
fn config_error(text: &str) -> (String, String) {
    let dir = scratch();
    let config = config_file(dir.path(), text);
    let args = ["--config".as_ref(), config.as_os_str()];
    let (status, log) = run_to_exit(&args);
    let line = error_line(status, &log);
    let (status, checked) = check_to_exit(&args);
    assert_eq!(
        error_line(status, &checked),
        line,
        "interpose check says the same"
    );
    (line, config.display().to_string())
}

#[test]
fn check_passes_a_good_configuration_and_counts_what_it_loaded() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        "[[plugins]]\npath = \"{fixture-pass}\"\n\n[servers.echo]\ncommand = \"python3\"\n",
    );
    let (status, out) = check_to_exit(&["--config".as_ref(), config.as_os_str()]);
    assert!(status.success(), "{out}");
    assert_eq!(
        out.trim_end(),
        "ok: 1 plugin(s), 1 server(s) with 0 plugin(s) of their own"
    );
}

#[test]
fn unknown_key_is_named() {
    let (line, file) = config_error("[[plugins]]\npath = \"{fixture-pass}\"\ntimeout = 5\n");
    assert_eq!(
        line,
        format!(
            "interpose: {file}:3:1: unknown field `timeout`, expected one of `path`, `name`, \
             `config`, `failure_policy`, `timeout_ms`, `memory_mb`, `max_output_bytes`, \
             `max_input_bytes`, `unchecked_policy`, `breaker_cooldown_ms`, `pool_size`, \
             `sha256`, `dirs`, `env`, `http`, `kv`, `require_signature`, `trusted_keys`"
        )
    );
}

#[test]
fn missing_path_is_named() {
    let (line, file) = config_error("[[plugins]]\nname = \"x\"\n");
    assert_eq!(line, format!("interpose: {file}:1:1: missing field `path`"));
}

#[test]
fn bad_failure_policy_lists_the_choices() {
    let (line, file) =
        config_error("[[plugins]]\npath = \"{fixture-pass}\"\nfailure_policy = \"ignore\"\n");
    assert_eq!(
        line,
        format!("interpose: {file}:3:18: unknown variant `ignore`, expected `reject` or `skip`")
    );
}

#[test]
fn missing_plugin_file_is_named() {
    let (line, file) = config_error("[[plugins]]\npath = \"nowhere.wasm\"\n");
    let dir = std::path::Path::new(&file)
        .parent()
        .unwrap()
        .display()
        .to_string();
    assert_eq!(
        line,
        format!(
            "interpose: plugin `nowhere` ({dir}/nowhere.wasm): cannot read the file: No such file or directory (os error 2)"
        )
    );
}

#[test]
fn missing_granted_directory_is_named() {
    let (line, file) =
        config_error("[[plugins]]\npath = \"{fixture-pass}\"\ndirs = [{ host = \"absent\" }]\n");
    let dir = std::path::Path::new(&file)
        .parent()
        .unwrap()
        .display()
        .to_string();
    assert!(
        line.ends_with(&format!(
            ": cannot grant directory {dir}/absent: No such file or directory (os error 2)"
        )),
        "{line}"
    );
}

#[test]
fn not_a_component_is_refused() {
    let dir = scratch();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, "not wasm").unwrap();
    let (status, log) = run_to_exit(&["--plugin".as_ref(), bogus.as_os_str()]);
    assert!(!status.success());
    assert!(
        log.contains(&format!(
            "interpose: plugin `bogus` ({}): the file is not a usable WebAssembly component: ",
            bogus.display()
        )),
        "{log}"
    );
}

#[test]
fn a_plugin_that_fails_in_init_is_named_as_configured_when_two_share_a_file() {
    let (line, _) = config_error(
        r#"
        [[plugins]]
        path = "{fixture-trap}"
        name = "first"
        [[plugins]]
        path = "{fixture-trap}"
        name = "second"
        config = { phase = "init" }
        "#,
    );
    let path = support::fixture("fixture-trap");
    assert_eq!(
        line,
        format!(
            "interpose: plugin `second` ({}): cannot start the plugin: `init` failed: trapped: wasm `unreachable` instruction executed",
            path.display()
        )
    );
}

#[test]
fn a_plugin_that_refuses_its_configuration_is_named_as_configured() {
    let (line, _) = config_error(
        r#"
        [[plugins]]
        path = "{fixture-verdicts}"
        name = "accepts"
        [[plugins]]
        path = "{fixture-verdicts}"
        name = "refuses"
        config = { init_error = "no\nthanks" }
        "#,
    );
    let path = support::fixture("fixture-verdicts");
    // The plugin's own text, on one line.
    assert_eq!(
        line,
        format!(
            "interpose: plugin `refuses` ({}): refused its configuration: no\\nthanks",
            path.display()
        )
    );
}
