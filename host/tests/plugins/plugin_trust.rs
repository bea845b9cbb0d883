//! Trust in third-party plugins, through the real binary: `interpose plugin
//! inspect` on shipped plugins, declared capabilities compared with the grants at
//! load (each over-declaration refused with its pinned error, over-grants warned
//! about, undeclared plugins loaded as before), and minisign signatures made with
//! real keys by `interpose plugin keygen|sign`, required at start and on reload.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use interpose::plugin::trust::capabilities::{self, Capabilities};
use serde_json::{Value, json};
use support::{Proxy, config_file, fixture, interpose_to_exit, result, run_to_exit, scratch};

const RELOAD_WAIT: Duration = Duration::from_secs(15);

/// `interpose ARGS`; fails the test unless it succeeds; its stdout.
fn interpose_ok(args: &[&std::ffi::OsStr]) -> String {
    let (status, stdout, stderr) = interpose_to_exit(args);
    assert!(status.success(), "interpose {args:?} failed:\n{stderr}");
    stdout
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A copy of fixture `name` in `dir` as `file`, declaring `declared` (JSON).
fn declaring(dir: &Path, name: &str, file: &str, declared: Value) -> PathBuf {
    let declared: Capabilities = serde_json::from_value(declared).unwrap();
    let wasm = std::fs::read(fixture(name)).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, capabilities::embed(&wasm, &declared).unwrap()).unwrap();
    path
}

/// The `interpose: ` line of a failed start.
fn start_error(config: &Path) -> String {
    let (status, log) = run_to_exit(&["--config".as_ref(), config.as_os_str()]);
    assert!(!status.success(), "expected a refusal, log:\n{log}");
    log.lines()
        .find(|l| l.starts_with("interpose: "))
        .unwrap_or_else(|| panic!("no error line in:\n{log}"))
        .to_owned()
}

/// The count `fixture-kv` answers a `count` call with.
fn count(proxy: &mut Proxy, id: u64) -> i64 {
    let answer = proxy.call_tool(id, "count", json!({}));
    result(&answer)["structuredContent"]["count"]
        .as_i64()
        .unwrap_or_else(|| panic!("no count in {answer}"))
}

#[test]
fn inspect_shows_a_shipped_plugin_as_text_and_as_json() {
    let plugin = fixture("tool-policy");
    let bytes = std::fs::read(&plugin).unwrap();
    let text = interpose_ok(&["plugin".as_ref(), "inspect".as_ref(), plugin.as_os_str()]);
    let expected = format!(
        "file          {}\nname          tool-policy\nversion       0.1.0\n\
         wit           interpose:plugin@0.1.1\ninterests     request tools/call; response tools/list\n\
         wants request no\ncapabilities  none declared (gets what its configuration grants)\n\
         size          {} bytes\nsha256        {}\nsignature     unsigned\n",
        plugin.display(),
        bytes.len(),
        sha256_hex(&bytes)
    );
    assert_eq!(text, expected);

    let json_text = interpose_ok(&[
        "plugin".as_ref(),
        "inspect".as_ref(),
        "--json".as_ref(),
        plugin.as_os_str(),
    ]);
    let report: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(
        report,
        json!({
            "path": plugin,
            "size": bytes.len(),
            "sha256": sha256_hex(&bytes),
            "wit_version": "interpose:plugin@0.1.1",
            "manifest": {
                "name": "tool-policy",
                "version": "0.1.0",
                "interests": [
                    {"kinds": ["request"], "methods": ["tools/call"]},
                    {"kinds": ["response"], "methods": ["tools/list"]},
                ],
                "wants_request": false,
            },
            "capabilities": null,
            "signature": {"status": "unsigned"},
        })
    );
}

#[test]
fn inspect_shows_declared_capabilities_and_checks_the_signature_with_the_given_key() {
    let dir = scratch();
    let plugin = declaring(
        dir.path(),
        "fixture-kv",
        "counter.wasm",
        json!({"dirs": [{"guest": "/data", "mode": "rw"}], "env": ["API_TOKEN"],
               "http": ["https://api.example.com/v1/"], "kv": true}),
    );
    let key = dir.path().join("acme");
    interpose_ok(&["plugin".as_ref(), "keygen".as_ref(), key.as_os_str()]);
    let secret = dir.path().join("acme.key");
    let public = dir.path().join("acme.pub");
    interpose_ok(&[
        "plugin".as_ref(),
        "sign".as_ref(),
        plugin.as_os_str(),
        "--key".as_ref(),
        secret.as_os_str(),
    ]);
    let key_id = std::fs::read_to_string(&public).unwrap();
    let key_id = key_id
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let inspect = |keys: &[&Path]| -> Value {
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["plugin".as_ref(), "inspect".as_ref(), "--json".as_ref()];
        for key in keys {
            args.extend(["--key".as_ref(), key.as_os_str()]);
        }
        args.push(plugin.as_os_str());
        serde_json::from_str(&interpose_ok(&args)).unwrap()
    };
    let report = inspect(&[&public]);
    assert_eq!(
        report["capabilities"],
        json!({"dirs": [{"guest": "/data", "mode": "rw"}], "env": ["API_TOKEN"],
               "http": ["https://api.example.com/v1/"], "kv": true})
    );
    assert_eq!(report["manifest"]["name"], "fixture-kv");
    assert_eq!(
        report["signature"],
        json!({"status": "signed", "key_id": key_id, "trusted": true, "valid": true})
    );
    // Without the key, the signer is named but nothing is checked.
    assert_eq!(
        inspect(&[])["signature"],
        json!({"status": "signed", "key_id": key_id, "trusted": false, "valid": null})
    );
    // Changed after signing: a wider declaration.
    let wider: Capabilities =
        serde_json::from_value(json!({"env": ["API_TOKEN", "HOME"]})).unwrap();
    let bytes = capabilities::embed(&std::fs::read(&plugin).unwrap(), &wider).unwrap();
    std::fs::write(&plugin, bytes).unwrap();
    assert_eq!(inspect(&[&public])["signature"]["valid"], false);
    let text = interpose_ok(&[
        "plugin".as_ref(),
        "inspect".as_ref(),
        "--key".as_ref(),
        public.as_os_str(),
        plugin.as_os_str(),
    ]);
    assert!(
        text.contains("capabilities\n  env         API_TOKEN\n  env         HOME\n"),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(
            "signature     signed by key {key_id}, trusted, INVALID: the file changed after signing\n"
        )),
        "{text}"
    );
}

#[test]
fn each_capability_declared_and_not_granted_is_refused_with_its_pinned_error() {
    let cases = [
        (
            json!({"dirs": [{"guest": "/data"}]}),
            "",
            "directory `/data` (ro)",
        ),
        (
            json!({"dirs": [{"guest": "/data", "mode": "rw"}]}),
            r#"dirs = [{ host = ".", guest = "/data", mode = "ro" }]"#,
            "directory `/data` (rw)",
        ),
        (
            json!({"env": ["API_TOKEN"]}),
            r#"env = ["OTHER"]"#,
            "environment variable `API_TOKEN`",
        ),
        (
            json!({"http": ["https://api.example.com/v1/"]}),
            r#"http = ["https://api.example.com.evil.net/"]"#,
            "outbound HTTP `https://api.example.com/v1/`",
        ),
        (json!({"kv": true}), "kv = false", "the key-value store"),
    ];
    for (declared, grants, missing) in cases {
        let dir = scratch();
        let plugin = declaring(dir.path(), "fixture-kv", "counter.wasm", declared);
        let config = config_file(
            dir.path(),
            &format!("[[plugins]]\npath = \"counter.wasm\"\n{grants}\n"),
        );
        assert_eq!(
            start_error(&config),
            format!(
                "interpose: plugin `counter` ({}): declares capabilities its configuration does \
                 not grant: {missing}; grant them in its plugin entry (`dirs`, `env`, `http`, \
                 `kv`) or do not load it",
                plugin.display()
            )
        );
    }
    // All of them at once, listed in one error.
    let dir = scratch();
    let plugin = declaring(
        dir.path(),
        "fixture-kv",
        "counter.wasm",
        json!({"dirs": [{"guest": "/data"}], "env": ["A", "B"], "kv": true}),
    );
    let config = config_file(
        dir.path(),
        "[[plugins]]\npath = \"counter.wasm\"\nenv = [\"A\"]\nkv = false\n",
    );
    assert_eq!(
        start_error(&config),
        format!(
            "interpose: plugin `counter` ({}): declares capabilities its configuration does not \
             grant: directory `/data` (ro), environment variable `B`, the key-value store; grant \
             them in its plugin entry (`dirs`, `env`, `http`, `kv`) or do not load it",
            plugin.display()
        )
    );
}

#[test]
fn a_plugin_granted_what_it_declares_loads_and_over_grants_are_warned_about() {
    let dir = scratch();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    declaring(
        dir.path(),
        "fixture-kv",
        "counter.wasm",
        json!({"dirs": [{"guest": "/data"}], "env": ["API_TOKEN"], "kv": true}),
    );
    let config = config_file(
        dir.path(),
        "[[plugins]]\npath = \"counter.wasm\"\n\
         dirs = [{ host = \"data\", guest = \"/data\", mode = \"rw\" }]\n\
         env = [\"API_TOKEN\", \"HOME\"]\nhttp = [\"https://api.example.com/*\"]\n",
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir);
    assert_eq!(count(&mut proxy, 1), 1);
    assert_eq!(count(&mut proxy, 2), 2, "the store it declared is there");
    assert!(
        proxy.wait_for_log(
            "plugin `counter` is granted what it does not declare: directory `/data` (rw), \
             environment variable `HOME`, outbound HTTP `https://api.example.com/*`; remove \
             these grants",
            Duration::from_secs(10)
        ),
        "{}",
        proxy.log()
    );
}

#[test]
fn a_plugin_without_a_declaration_loads_with_its_grants_as_before() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        "[[plugins]]\npath = \"{fixture-kv}\"\nenv = [\"HOME\"]\nhttp = [\"https://api.example.com/\"]\n",
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir);
    assert_eq!(count(&mut proxy, 1), 1);
    assert_eq!(count(&mut proxy, 2), 2);
    let log = proxy.log();
    assert!(!log.contains("does not declare"), "{log}");
}

#[test]
fn kv_false_takes_the_store_away_from_a_plugin_that_declares_nothing() {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        "[[plugins]]\npath = \"{fixture-kv}\"\nkv = false\n",
    );
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir);
    assert_eq!(count(&mut proxy, 1), 1);
    assert_eq!(count(&mut proxy, 2), 1, "nothing was stored");
    assert!(
        proxy.wait_for_log(
            "kv-set ignored: the key-value store is not granted (`kv = false`)",
            Duration::from_secs(5)
        ),
        "{}",
        proxy.log()
    );
}

/// Keys made by `interpose plugin keygen` in `dir`: (secret, public).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    interpose_ok(&["plugin".as_ref(), "keygen".as_ref(), prefix.as_os_str()]);
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

fn sign(plugin: &Path, secret: &Path) {
    interpose_ok(&[
        "plugin".as_ref(),
        "sign".as_ref(),
        plugin.as_os_str(),
        "--key".as_ref(),
        secret.as_os_str(),
    ]);
}

fn key_id(public: &Path) -> String {
    let text = std::fs::read_to_string(public).unwrap();
    let first = text.lines().next().unwrap();
    first.rsplit(' ').next().unwrap().to_owned()
}

#[test]
fn verify_accepts_the_signed_file_and_refuses_another_key_or_changed_bytes() {
    let dir = scratch();
    let plugin = dir.path().join("p.wasm");
    std::fs::copy(fixture("fixture-pass"), &plugin).unwrap();
    let (secret, public) = keygen(dir.path(), "acme");
    let (_, other) = keygen(dir.path(), "other");
    sign(&plugin, &secret);
    assert!(plugin.with_extension("wasm.minisig").is_file());
    let verify = |key: &Path| {
        interpose_to_exit(&[
            "plugin".as_ref(),
            "verify".as_ref(),
            plugin.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ])
    };
    let (status, stdout, _) = verify(&public);
    assert!(status.success());
    let id = key_id(&public);
    assert!(
        stdout.starts_with(&format!(
            "{}: signature by trusted key {id} verified; capabilities not declared (",
            plugin.display()
        )),
        "{stdout}"
    );
    let (status, _, stderr) = verify(&other);
    assert!(!status.success());
    assert_eq!(
        stderr.trim_end(),
        format!(
            "interpose: {}: signed by key {id}, which is not one of the trusted keys",
            plugin.display()
        )
    );
    let mut bytes = std::fs::read(&plugin).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&plugin, bytes).unwrap();
    let (status, _, stderr) = verify(&public);
    assert!(!status.success());
    assert_eq!(
        stderr.trim_end(),
        format!(
            "interpose: {}: the signature by key {id} does not match the file (changed after \
             signing?)",
            plugin.display()
        )
    );
}

/// A config requiring signatures by `acme.pub` for `plugin.wasm`, with rules that
/// `fixture-verdicts` follows (`fixture-pass` ignores them).
fn signed_config(dir: &Path, extra: &str) -> PathBuf {
    config_file(
        dir,
        &format!(
            "[trust]\nrequire_signature = true\ntrusted_keys = [\"acme.pub\"]\n\
             [[plugins]]\npath = \"plugin.wasm\"\n{extra}\n\
             config = {{ rules = [{{ tool = \"respond\", verdict = \"respond\", payload = {{ by = \"plugin\" }} }}] }}\n"
        ),
    )
}

#[test]
fn a_signed_plugin_is_accepted_when_signatures_are_required() {
    let dir = scratch();
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(fixture("fixture-verdicts"), &plugin).unwrap();
    let (secret, public) = keygen(dir.path(), "acme");
    sign(&plugin, &secret);
    let config = signed_config(dir.path(), "");
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]).holding(dir);
    let answer = proxy.call_tool(1, "respond", json!({}));
    assert_eq!(result(&answer)["by"], "plugin");
    // The log is read by another thread: wait for the line rather than race it.
    let verified = format!(
        "signature by trusted key {} verified for {}",
        key_id(&public),
        plugin.display()
    );
    assert!(
        proxy.wait_for_log(&verified, Duration::from_secs(10)),
        "{}",
        proxy.log()
    );
}

#[test]
fn unsigned_changed_or_untrusted_plugins_are_refused_when_signatures_are_required() {
    let dir = scratch();
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(fixture("fixture-verdicts"), &plugin).unwrap();
    let (secret, public) = keygen(dir.path(), "acme");
    let (stranger, _) = keygen(dir.path(), "stranger");
    let config = signed_config(dir.path(), "");
    let refused = |problem: &str| {
        format!(
            "interpose: plugin `plugin` ({}): {problem}",
            plugin.display()
        )
    };

    assert_eq!(
        start_error(&config),
        refused(&format!(
            "a signature is required and the plugin is unsigned: there is no {}.minisig",
            plugin.display()
        ))
    );

    sign(&plugin, &secret);
    let mut bytes = std::fs::read(&plugin).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&plugin, &bytes).unwrap();
    assert_eq!(
        start_error(&config),
        refused(&format!(
            "the signature by key {} does not match the file (changed after signing?)",
            key_id(&public)
        ))
    );

    std::fs::copy(fixture("fixture-verdicts"), &plugin).unwrap();
    sign(&plugin, &stranger);
    assert_eq!(
        start_error(&config),
        refused(&format!(
            "signed by key {}, which is not one of the trusted keys",
            key_id(&dir.path().join("stranger.pub"))
        ))
    );

    // A plugin's own `require_signature = false` overrides `[trust]`.
    let exempt = signed_config(dir.path(), "require_signature = false");
    let mut proxy = Proxy::start(&["--config".as_ref(), exempt.as_os_str()]);
    let answer = proxy.call_tool(1, "respond", json!({}));
    assert_eq!(result(&answer)["by"], "plugin");
}

/// Puts `source`, signed by `secret`, in place as `plugin` and its signature, each
/// written aside and renamed over, as a deployment does.
fn deploy(plugin: &Path, source: &Path, secret: Option<&Path>) {
    let staging = plugin.with_file_name("staging.wasm");
    std::fs::copy(source, &staging).unwrap();
    if let Some(secret) = secret {
        sign(&staging, secret);
    }
    std::fs::rename(&staging, plugin).unwrap();
    if secret.is_some() {
        std::fs::rename(
            staging.with_extension("wasm.minisig"),
            plugin.with_extension("wasm.minisig"),
        )
        .unwrap();
    }
}

#[test]
fn reload_accepts_a_resigned_plugin_and_refuses_a_tampered_one_keeping_the_old() {
    let dir = scratch();
    let plugin = dir.path().join("plugin.wasm");
    let (secret, _) = keygen(dir.path(), "acme");
    deploy(&plugin, &fixture("fixture-pass"), Some(&secret));
    let config = signed_config(dir.path(), "");
    let mut proxy = Proxy::start(&["--config".as_ref(), config.as_os_str()]);
    let by_plugin = |proxy: &mut Proxy, id| {
        let answer = proxy.call_tool(id, "respond", json!({}));
        result(&answer).get("by").is_some()
    };
    assert!(!by_plugin(&mut proxy, 1), "the pass plugin forwards");

    deploy(&plugin, &fixture("fixture-verdicts"), Some(&secret));
    assert!(
        proxy.wait_for_log("plugin reloaded", RELOAD_WAIT),
        "log:\n{}",
        proxy.log()
    );
    assert!(by_plugin(&mut proxy, 2), "the re-signed version answers");

    // Other bytes under the old signature.
    let mismatches = |proxy: &Proxy| proxy.log().matches("does not match the file").count();
    let before = mismatches(&proxy);
    let tampered = dir.path().join("tampered.wasm");
    let mut bytes = std::fs::read(fixture("fixture-verdicts")).unwrap();
    bytes.extend_from_slice(b"\0\x03junk");
    std::fs::write(&tampered, bytes).unwrap();
    deploy(&plugin, &tampered, None);
    let deadline = std::time::Instant::now() + RELOAD_WAIT;
    while mismatches(&proxy) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the tampered file was not refused; log:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        proxy
            .log()
            .contains("new version not loaded, the old one stays in use"),
        "{}",
        proxy.log()
    );
    assert!(by_plugin(&mut proxy, 3), "the signed version still serves");
    assert_eq!(proxy.log().matches("plugin reloaded").count(), 1);
}
