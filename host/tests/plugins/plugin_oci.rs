//! Plugins through a real OCI registry (the `docker-registry` distribution server,
//! installed by scripts/setup-tests.sh): pushed with `interpose plugin push`, pulled
//! by tag and by digest, loaded from `path = "oci://..."`, started again offline from
//! the cache, and refused when a registry or the cache hands over other bytes than
//! the digests say.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

const REGISTRY: &str = "docker-registry";

/// A registry on a free loopback port, storing under a scratch directory; stopped
/// when dropped.
struct Registry {
    child: Child,
    addr: String,
    storage: PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let storage = dir.join("registry-data");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{REGISTRY}` ({e}): run scripts/setup-tests.sh to install it")
            });
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            addr,
            storage,
        }
    }

    /// The registry's copy of a blob.
    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `interpose plugin ARGS` with its own cache; exit status, stdout, stderr.
fn plugin_command(cache: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(INTERPOSE)
        .arg("plugin")
        .args(args)
        .env("INTERPOSE_CACHE_DIR", cache)
        .stdin(Stdio::null())
        .output()
        .expect("run interpose");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config answering `tools/call` of `echo` itself, from a plugin at `path`.
fn answering_config(dir: &Path, path: &str) -> PathBuf {
    answering_config_after(dir, "", path)
}

/// [`answering_config`] with `preamble` (top-level tables) before the plugin.
fn answering_config_after(dir: &Path, preamble: &str, path: &str) -> PathBuf {
    let text = format!(
        "{preamble}[[plugins]]\npath = \"{path}\"\nconfig = {{ rules = [{{ method = \"tools/call\", tool = \"echo\", verdict = \"respond\", payload = {{ content = [], from = \"registry\" }} }}] }}\n"
    );
    let config = dir.join("interpose.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// Starts the proxy with `config` and `cache`, and calls `echo`; the proxy's log if
/// it did not start.
fn call_through(config: &Path, cache: &Path) -> Result<serde_json::Value, String> {
    let mut proxy = Proxy::start_with_env(
        &["--config".as_ref(), config.as_os_str()],
        &[("INTERPOSE_CACHE_DIR", cache.to_str().unwrap())],
    );
    if !wait_loaded(&mut proxy) {
        return Err(proxy.finish().1);
    }
    let answer = proxy.call_tool(1, "echo", json!({"text": "hi"}));
    let (status, log) = proxy.finish();
    assert!(status.success(), "{log}");
    Ok(result(&answer).clone())
}

fn wait_loaded(proxy: &mut Proxy) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !proxy.log().contains("plugin loaded from") {
        if !proxy.is_running() || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn a_plugin_pushed_to_a_registry_is_pulled_by_tag_and_digest_and_starts_offline() {
    let dir = scratch();
    let registry = Registry::start(dir.path());
    let wasm = fixture("fixture-verdicts");
    let tagged = format!("{}/plugins/verdicts:1.0", registry.addr);

    let pusher = dir.path().join("pusher-cache");
    let (ok, manifest, err) = plugin_command(&pusher, &["push", wasm.to_str().unwrap(), &tagged]);
    assert!(ok, "push failed: {err}");
    let manifest = manifest.trim().to_owned();
    assert!(
        manifest.starts_with("sha256:") && manifest.len() == 71,
        "{manifest}"
    );

    // By tag: the reference pinned to the manifest, and the very bytes pushed.
    let cache = dir.path().join("cache");
    let (ok, out, err) = plugin_command(&cache, &["pull", &tagged]);
    assert!(ok, "pull failed: {err}");
    let mut lines = out.lines();
    let pinned = lines.next().unwrap().to_owned();
    assert_eq!(
        pinned,
        format!("{}/plugins/verdicts@{manifest}", registry.addr)
    );
    let cached = PathBuf::from(lines.next().unwrap());
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        std::fs::read(&wasm).unwrap()
    );

    // By digest, into another cache.
    let other = dir.path().join("other-cache");
    let (ok, out, err) = plugin_command(&other, &["pull", &pinned]);
    assert!(ok, "pull by digest failed: {err}");
    assert!(out.starts_with(&pinned), "{out}");

    // The proxy loads it by reference (pulled on first use, here into a new cache) ...
    let fresh = dir.path().join("proxy-cache");
    let config = answering_config(dir.path(), &format!("oci://{tagged}"));
    let answer = call_through(&config, &fresh).expect("the plugin loads by reference");
    assert_eq!(answer["from"], "registry");

    // ... and, the registry gone, starts again from the cache, by tag and by digest.
    drop(registry);
    let answer = call_through(&config, &fresh).expect("an offline start by tag");
    assert_eq!(answer["from"], "registry");
    let by_digest = dir.path().join("by-digest");
    std::fs::create_dir_all(&by_digest).unwrap();
    let config = answering_config(&by_digest, &format!("oci://{pinned}"));
    let answer = call_through(&config, &fresh).expect("an offline start by digest");
    assert_eq!(answer["from"], "registry");
}

#[test]
fn bytes_other_than_the_digests_say_are_refused_from_the_registry_and_from_the_cache() {
    let dir = scratch();
    let registry = Registry::start(dir.path());
    let wasm = fixture("fixture-verdicts");
    let tagged = format!("{}/plugins/tampered:1.0", registry.addr);
    let (ok, _, err) = plugin_command(
        &dir.path().join("pusher"),
        &["push", wasm.to_str().unwrap(), &tagged],
    );
    assert!(ok, "push failed: {err}");

    // A cache changed after the pull: the proxy does not start.
    let cache = dir.path().join("cache");
    let (ok, out, err) = plugin_command(&cache, &["pull", &tagged]);
    assert!(ok, "pull failed: {err}");
    let cached = PathBuf::from(out.lines().nth(1).unwrap());
    let mut bytes = std::fs::read(&cached).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&cached, &bytes).unwrap();
    let config = answering_config(dir.path(), &format!("oci://{tagged}"));
    let log = call_through(&config, &cache).expect_err("a changed cache is refused");
    assert!(
        log.contains("the cached plugin does not match its digest")
            && log.contains("the cache was changed"),
        "{log}"
    );

    // A registry serving other bytes under the layer's digest: the pull is refused and
    // nothing is cached.
    let layer = format!("sha256:{}", cached.file_stem().unwrap().to_str().unwrap());
    std::fs::write(registry.blob(&layer), &bytes).unwrap();
    let fresh = dir.path().join("fresh");
    let (ok, _, err) = plugin_command(&fresh, &["pull", &tagged]);
    assert!(!ok, "a tampered layer was accepted");
    assert!(err.contains("refused") || err.contains("digest"), "{err}");
    assert!(
        !fresh.join("oci/blobs").exists()
            || std::fs::read_dir(fresh.join("oci/blobs/sha256"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn a_signature_travels_with_its_plugin_through_the_registry_and_is_checked_at_load() {
    let dir = scratch();
    let registry = Registry::start(dir.path());
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for name in ["acme", "other"] {
        let (ok, _, err) =
            plugin_command(dir.path(), &["keygen", keys.join(name).to_str().unwrap()]);
        assert!(ok, "keygen failed: {err}");
    }
    // The same component three times: signed by the trusted key, by another, unsigned.
    let pushed = |tag: &str, key: Option<&str>| {
        let copy = dir.path().join(format!("{tag}.wasm"));
        std::fs::copy(fixture("fixture-verdicts"), &copy).unwrap();
        if let Some(key) = key {
            let secret = keys.join(format!("{key}.key"));
            let (ok, _, err) = plugin_command(
                dir.path(),
                &[
                    "sign",
                    copy.to_str().unwrap(),
                    "--key",
                    secret.to_str().unwrap(),
                ],
            );
            assert!(ok, "sign failed: {err}");
        }
        let reference = format!("{}/plugins/signed:{tag}", registry.addr);
        let (ok, _, err) =
            plugin_command(dir.path(), &["push", copy.to_str().unwrap(), &reference]);
        assert!(ok, "push failed: {err}");
        (reference, err)
    };
    let (trusted, push_log) = pushed("acme", Some("acme"));
    let (untrusted, _) = pushed("other", Some("other"));
    let (unsigned, unsigned_log) = pushed("none", None);
    assert!(
        push_log.contains("pushing its signature by key"),
        "{push_log}"
    );
    assert!(unsigned_log.contains("unsigned"), "{unsigned_log}");

    // `pull` says which key signed what it pulled.
    let (ok, _, err) = plugin_command(&dir.path().join("look"), &["pull", &trusted]);
    assert!(ok, "pull failed: {err}");
    let key_id = push_log.trim().rsplit(' ').next().unwrap();
    assert_eq!(err.trim(), format!("signed by key {key_id}"));
    // `inspect` takes the reference, and checks what came with it.
    let public = keys.join("acme.pub");
    let (ok, out, err) = plugin_command(
        &dir.path().join("look"),
        &[
            "inspect",
            &format!("oci://{trusted}"),
            "--key",
            public.to_str().unwrap(),
        ],
    );
    assert!(ok, "inspect failed: {err}");
    assert!(
        out.contains(&format!(
            "signature     signed by key {key_id}, trusted, valid"
        )),
        "{out}"
    );

    let preamble = format!(
        "[trust]\nrequire_signature = true\ntrusted_keys = [\"{}\"]\n\n",
        keys.join("acme.pub").display()
    );
    let cache = dir.path().join("proxy-cache");
    let config = answering_config_after(dir.path(), &preamble, &format!("oci://{trusted}"));
    let answer = call_through(&config, &cache).expect("a plugin signed by a trusted key loads");
    assert_eq!(answer["from"], "registry");

    let config = answering_config_after(dir.path(), &preamble, &format!("oci://{untrusted}"));
    let log = call_through(&config, &cache).expect_err("another key's signature is refused");
    assert!(
        log.contains("which is not one of the trusted keys"),
        "{log}"
    );

    let config = answering_config_after(dir.path(), &preamble, &format!("oci://{unsigned}"));
    let log = call_through(&config, &cache).expect_err("an unsigned artifact is refused");
    assert!(
        log.contains(&format!(
            "(oci://{unsigned}): a signature is required and the plugin was pushed to its registry without one"
        )),
        "{log}"
    );

    // The signature is cached with the plugin: an offline start verifies it again.
    drop(registry);
    let config = answering_config_after(dir.path(), &preamble, &format!("oci://{trusted}"));
    let answer = call_through(&config, &cache).expect("an offline start of a signed plugin");
    assert_eq!(answer["from"], "registry");
}

#[test]
fn a_reference_without_a_registry_or_a_core_module_is_refused_with_what_to_do() {
    let dir = scratch();
    let (ok, _, err) = plugin_command(dir.path(), &["pull", "redact:1.0"]);
    assert!(!ok);
    assert!(err.contains("expected REGISTRY/NAME:TAG"), "{err}");
    let module = dir.path().join("core.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let (ok, _, err) = plugin_command(
        dir.path(),
        &["push", module.to_str().unwrap(), "127.0.0.1:9/p/x:1"],
    );
    assert!(!ok);
    assert!(err.contains("not a WebAssembly component"), "{err}");
}

/// The README's walk-through (`scripts/demo-registry.sh`) as a new user runs it:
/// sign, inspect, push, pull, load by reference under `require_signature`, a call
/// the pulled plugin denies, and an unsigned push refused.
#[test]
fn the_registry_walk_through_runs_as_the_readme_shows() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo-registry.sh");
    let out = Command::new(&script)
        .env("INTERPOSE_BIN", INTERPOSE)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/demo-registry.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        ", trusted, valid",
        ": pushing its signature by key ",
        "(exit 0: the plugin loaded, its signature verified)",
        r#"< {"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"tool `demo_add` is denied by tool-policy"#,
        "a signature is required and the plugin was pushed to its registry without one",
        "(exit 1: refused)",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` is missing from:\n{text}"
        );
    }
}
