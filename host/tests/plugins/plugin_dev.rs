//! `interpose plugin new` and `interpose plugin build`, through the real binary and
//! the real toolchains: for each language, the scaffolded plugin builds into a
//! component that works in the proxy (between a raw JSON-RPC client and the echo
//! backend), and its own test passes. The build leaves the compiled component in
//! the compiled-plugin cache, where the proxy then finds it instead of compiling.
//!
//! The toolchains go to the checkout's `.cache/` (as with `scripts/build-*-plugin.sh`),
//! so they are installed once per checkout; the Rust scaffold builds in
//! `target/plugin-dev`, so its dependencies are compiled once.

use crate::http_support;
use crate::support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use http_support::repo;
use interpose::config::Sha256;
use interpose::plugin::trust::capabilities;
use serde_json::json;
use support::{INTERPOSE, Proxy, compiled_entries, echoed_params, error, scratch};

/// How long the proxy may take to compile a component before it serves (a Python
/// or JavaScript component takes seconds to a minute on a loaded machine).
const COMPILE_PATIENCE: Duration = Duration::from_secs(600);

fn tools_dir() -> PathBuf {
    repo().join(".cache")
}

/// `interpose ARGS` with the test's tools directory and the compiled-plugin cache
/// `cache`; fails the test, showing what it printed, unless it succeeds.
fn interpose<S: AsRef<OsStr>>(args: &[S], cache: &Path) -> Output {
    let output = interpose_unchecked(args, &tools_dir(), cache);
    assert!(
        output.status.success(),
        "interpose {:?} failed ({}):\n{}",
        args.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn interpose_unchecked<S: AsRef<OsStr>>(args: &[S], tools: &Path, cache: &Path) -> Output {
    Command::new(INTERPOSE)
        .args(args)
        .env("INTERPOSE_TOOLS_DIR", tools)
        .env("INTERPOSE_CACHE_DIR", cache)
        .env_remove("INTERPOSE_SDK_DIR")
        .env("CARGO_TARGET_DIR", repo().join("target/plugin-dev"))
        .stdin(Stdio::null())
        .output()
        .expect("run interpose")
}

/// Runs a plugin's own test command in its directory.
fn run_in(dir: &Path, program: impl AsRef<OsStr>, args: &[&str]) -> String {
    let program = program.as_ref();
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", repo().join("target/plugin-dev"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program:?} {args:?} failed in {}:\n{text}",
        dir.display()
    );
    text
}

/// `plugin new NAME --lang LANG` in `parent`, then `plugin build`; returns the
/// project and the component.
/// The environment variable the scaffolds declare (in `capabilities.toml`) and the
/// proxy grants.
const DECLARED_ENV: &str = "DEMO_PLUGIN_TOKEN";
const CAPABILITIES: &str = "env = [\"DEMO_PLUGIN_TOKEN\"]\nkv = true\n";

/// Scaffolds and builds a plugin, with the compiled-plugin cache in `cache`, and
/// checks that the build left the compiled component there.
fn scaffold_and_build(parent: &Path, name: &str, lang: &str, cache: &Path) -> (PathBuf, PathBuf) {
    let created = interpose(
        &[
            "plugin".as_ref(),
            "new".as_ref(),
            name.as_ref(),
            "--lang".as_ref(),
            lang.as_ref(),
            "--dir".as_ref(),
            parent.as_os_str(),
        ],
        cache,
    );
    let project = parent.join(name);
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(
        stdout.starts_with("created the ") && stdout.contains(&project.display().to_string()),
        "{stdout}"
    );

    // What the plugin declares it needs, which the build embeds (every language).
    std::fs::write(project.join("capabilities.toml"), CAPABILITIES).unwrap();
    let built = interpose(
        &["plugin".as_ref(), "build".as_ref(), project.as_os_str()],
        cache,
    );
    let stdout = String::from_utf8_lossy(&built.stdout);
    let component = PathBuf::from(stdout.trim_end());
    let wasm = std::fs::read(&component)
        .unwrap_or_else(|e| panic!("interpose printed {stdout:?}, not a component ({e})"));
    // The wasm magic, then the component-model layer (version 0x0d, layer 1).
    assert_eq!(
        wasm[..8],
        *b"\0asm\x0d\x00\x01\x00",
        "{}",
        component.display()
    );
    let declared = capabilities::read_declared(&wasm).expect("a valid declaration");
    assert_eq!(
        declared,
        Some(capabilities::Capabilities {
            env: vec![DECLARED_ENV.into()],
            kv: true,
            ..Default::default()
        })
    );
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(log.contains("compiled it for interpose in"), "{log}");
    assert_eq!(
        compiled_entries(cache),
        [format!("{}.cwasm", Sha256::of(&wasm))],
        "the cache holds the compiled component, named by the file's digest"
    );
    (project, component)
}

/// The scaffolds of all three languages refuse `tools/call` by a configured rule
/// (`rm_repo` here) and pass the others: check both through the proxy.
/// The proxy runs with the compiled-plugin cache `cache` the build filled, and maps
/// the component from it rather than compiling it.
fn assert_refuses_rm_repo_in_the_proxy(component: &Path, config: &str, cache: &Path) {
    let dir = scratch();
    let config_file = dir.path().join("interpose.toml");
    std::fs::write(
        &config_file,
        format!(
            "[[plugins]]\npath = {:?}\nenv = [\"{DECLARED_ENV}\"]\n[plugins.config]\n{config}\n",
            component.display().to_string()
        ),
    )
    .unwrap();
    let cache = cache.to_str().expect("a UTF-8 scratch path");
    let mut proxy = Proxy::start_with_env(
        &["--config".as_ref(), config_file.as_os_str()],
        &[("INTERPOSE_CACHE_DIR", cache)],
    )
    .holding(dir);
    assert!(
        proxy.wait_for_log("plugin loaded from", COMPILE_PATIENCE),
        "the plugin did not load; log:\n{}",
        proxy.log()
    );
    let log = proxy.log();
    assert!(
        log.contains("loaded the compiled plugin from the cache")
            && !log.contains("compiling plugin"),
        "the first start after the build compiled again; log:\n{log}"
    );

    let refused = proxy.call_tool(1, "rm_repo", json!({}));
    assert_eq!(
        error(&refused),
        &json!({"code": -32602, "message": "tool `rm_repo` is not allowed here"})
    );
    let passed = proxy.call_tool(2, "list_repos", json!({"path": "/"}));
    assert_eq!(
        echoed_params(&passed),
        &json!({"name": "list_repos", "arguments": {"path": "/"}})
    );
}

#[test]
fn rust_scaffold_builds_works_in_the_proxy_and_passes_its_test() {
    let parent = scratch();
    let cache = parent.path().join("cache");
    let (project, component) = scaffold_and_build(parent.path(), "demo-rust", "rust", &cache);
    assert!(
        component.ends_with("wasm32-wasip2/release/demo_rust.wasm"),
        "{}",
        component.display()
    );
    assert_refuses_rm_repo_in_the_proxy(&component, r#"prefix = "rm_""#, &cache);

    let tested = run_in(&project, env!("CARGO"), &["test"]);
    assert!(tested.contains("test result: ok. 3 passed"), "{tested}");
}

#[test]
fn python_scaffold_builds_works_in_the_proxy_and_passes_its_test() {
    let parent = scratch();
    let cache = parent.path().join("cache");
    let (project, component) = scaffold_and_build(parent.path(), "demo-python", "python", &cache);
    assert_eq!(component, project.join("target/demo-python.wasm"));
    assert_refuses_rm_repo_in_the_proxy(&component, r#"deny = ["rm_repo"]"#, &cache);

    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-tests.sh",
        python.display()
    );
    let tested = run_in(
        &project,
        &python,
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
    );
    assert!(tested.contains("4 passed"), "{tested}");
}

#[test]
fn js_scaffold_builds_works_in_the_proxy_and_passes_its_test() {
    let parent = scratch();
    let cache = parent.path().join("cache");
    let (project, component) = scaffold_and_build(parent.path(), "demo-js", "js", &cache);
    assert_eq!(component, project.join("target/demo-js.wasm"));
    assert_refuses_rm_repo_in_the_proxy(&component, r#"prefix = "rm_""#, &cache);

    // Links the SDK the scaffold names (a file: dependency); downloads nothing.
    run_in(
        &project,
        "npm",
        &[
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ],
    );
    let tested = run_in(&project, "node", &["--test"]);
    assert!(
        tested.contains("# pass 3") && tested.contains("# fail 0"),
        "{tested}"
    );
}

#[test]
fn new_refuses_to_write_into_a_non_empty_directory() {
    let parent = scratch();
    let existing = parent.path().join("taken");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("notes.txt"), "mine").unwrap();

    let output = interpose_unchecked(
        &[
            "plugin".as_ref(),
            "new".as_ref(),
            "taken".as_ref(),
            "--lang".as_ref(),
            "python".as_ref(),
            "--dir".as_ref(),
            parent.path().as_os_str(),
        ],
        &parent.path().join("tools"),
        &parent.path().join("cache"),
    );
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "interpose: {} already exists and is not empty: choose another name or --dir, or \
             remove it\n",
            existing.display()
        )
    );
    let entries: Vec<_> = std::fs::read_dir(&existing).unwrap().collect();
    assert_eq!(entries.len(), 1, "nothing was written next to notes.txt");
    assert_eq!(
        std::fs::read_to_string(existing.join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn build_refuses_a_directory_that_holds_no_plugin_project() {
    let parent = scratch();
    std::fs::write(parent.path().join("notes.txt"), "not a plugin").unwrap();

    let output = interpose_unchecked(
        &[
            "plugin".as_ref(),
            "build".as_ref(),
            parent.path().as_os_str(),
        ],
        &parent.path().join("tools"),
        &parent.path().join("cache"),
    );
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "interpose: cannot tell which language the plugin in {} is written in: it has no \
             Cargo.toml (Rust), plugin.py (Python) or package.json (JavaScript). Create a plugin \
             with `interpose plugin new NAME --lang rust|python|js`, or pass --lang\n",
            parent.path().display()
        )
    );
    assert!(output.stdout.is_empty());
}
