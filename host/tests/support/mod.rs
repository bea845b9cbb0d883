//! Runs the real `interpose` binary between a raw JSON-RPC client (this test) and the
//! stdlib Python backend `echo_backend.py`, and builds the fixture plugins.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest;

use crate::http_support::repo;

pub mod valkey;

pub const INTERPOSE: &str = env!("CARGO_BIN_EXE_interpose");

/// How long any single expected message may take.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The JSON-RPC error code of a plugin's failure, spelled out so that a change to the
/// proxy's code shows here.
pub const PLUGIN_ERROR: i64 = -32001;

/// Plugin settings for the guests' normal work: more than the default limits (the
/// Python and JavaScript runtimes start at tens of MiB), and a deadline a busy machine
/// does not hit.
pub const GUEST_LIMITS: &str = "timeout_ms = 5000\nmemory_mb = 128";

pub fn echo_backend() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/echo_backend.py")
}

/// A stdlib MCP server answering from a catalog file (see the script).
pub fn catalog_backend() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/catalog_backend.py")
}

/// Where compiled plugins are cached for tests: shared by all tests, so each fixture
/// compiles once.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("interpose-plugin-cache")
}

/// The file names in the compiled-plugin cache `cache` (of every engine): one
/// `SHA256.cwasm` per compiled component.
pub fn compiled_entries(cache: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(engines) = std::fs::read_dir(cache.join("compiled")) else {
        return names;
    };
    for engine in engines {
        for entry in std::fs::read_dir(engine.unwrap().path()).unwrap() {
            names.push(entry.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

/// The built fixture or plugin `name` (e.g. `fixture-pass`), building all of them
/// with `scripts/build-plugins.sh` the first time (once per test binary; a file lock
/// keeps concurrent test binaries from building at once). `INTERPOSE_FIXTURE_DIR`
/// points at already built `.wasm` files instead.
pub fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        if let Some(dir) = std::env::var_os("INTERPOSE_FIXTURE_DIR") {
            return PathBuf::from(dir);
        }
        let root = repo();
        std::fs::create_dir_all(root.join("target")).expect("target dir");
        let lock =
            std::fs::File::create(root.join("target/.build-plugins.lock")).expect("lock file");
        // Released when `lock` is dropped, at the end of this closure.
        lock.lock().expect("lock the plugin build");
        let status = Command::new("bash")
            .arg(root.join("scripts/build-plugins.sh"))
            .current_dir(&root)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/build-plugins.sh");
        assert!(status.success(), "scripts/build-plugins.sh failed");
        root.join("target/wasm/wasm32-wasip2/release")
    });
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The built Python or JavaScript plugin `name`, a folder in `plugins/` or
/// `tests/plugins/` whose name ends in `-py` / `-js` or starts with `fixture-py-` /
/// `fixture-js-`, built from source with `scripts/build-python-plugin.sh` or
/// `scripts/build-js-plugin.sh` into `target/wasm/{python,js}/NAME.wasm`, once per test
/// binary (by this test binary's `interpose plugin build`). A file lock keeps
/// concurrent test binaries from building at once, and a component whose inputs did
/// not change since it was built is not built again (the JavaScript build checks that
/// itself; for Python, a hash of the plugin folder, the SDK, `wit/`, the script and
/// the build code in `host/src/plugin_dev` is kept next to the output).
pub fn guest_plugin(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let root = repo();
    let python = name.ends_with("-py") || name.starts_with("fixture-py-");
    let source = ["plugins", "tests/plugins"]
        .iter()
        .map(|dir| root.join(dir).join(name))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no plugin folder `{name}` in plugins/ or tests/plugins/"));
    let out = root
        .join("target/wasm")
        .join(if python { "python" } else { "js" })
        .join(format!("{name}.wasm"));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.iter().any(|done| done == name) {
        return out;
    }
    std::fs::create_dir_all(root.join("target")).expect("target dir");
    let lock =
        std::fs::File::create(root.join("target/.build-guest-plugins.lock")).expect("lock file");
    // Released when `lock` is dropped, at the end of this function.
    lock.lock().expect("lock the guest plugin build");
    if python {
        build_python_plugin(&root, &source, &out);
    } else {
        let status = Command::new("bash")
            .arg(root.join("scripts/build-js-plugin.sh"))
            .arg(&source)
            .arg(&out)
            .current_dir(&root)
            .env("INTERPOSE_BIN", INTERPOSE)
            .env("INTERPOSE_CACHE_DIR", cache_dir())
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/build-js-plugin.sh");
        assert!(status.success(), "scripts/build-js-plugin.sh {name} failed");
    }
    assert!(out.exists(), "{} was not built", out.display());
    built.push(name.to_owned());
    out
}

fn build_python_plugin(root: &Path, source: &Path, out: &Path) {
    let script = root.join("scripts/build-python-plugin.sh");
    let inputs = [
        source.to_path_buf(),
        root.join("sdk/python/interpose_plugin"),
        root.join("wit"),
        script.clone(),
        root.join("host/src/plugin_dev"),
    ];
    let mut hasher = sha2::Sha256::new();
    for input in inputs.iter().filter(|input| input.exists()) {
        hash_tree(input, &mut hasher);
    }
    let want = hex::encode(hasher.finalize());
    let stamp = out.with_extension("wasm.inputs-sha256");
    if out.exists() && std::fs::read_to_string(&stamp).is_ok_and(|had| had.trim() == want) {
        return;
    }
    let status = Command::new("bash")
        .arg(&script)
        .arg(source)
        .arg(out)
        .current_dir(root)
        .env("INTERPOSE_BIN", INTERPOSE)
        // The build compiles the component into the cache the tests' proxies use.
        .env("INTERPOSE_CACHE_DIR", cache_dir())
        .stdout(Stdio::null())
        .status()
        .expect("run scripts/build-python-plugin.sh");
    assert!(
        status.success(),
        "scripts/build-python-plugin.sh {} failed",
        source.display()
    );
    std::fs::write(&stamp, want).expect("write the build stamp");
}

/// Feeds the paths and contents of the files under `path` (sorted; no `__pycache__`)
/// to `hasher`.
fn hash_tree(path: &Path, hasher: &mut sha2::Sha256) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("read a plugin input folder")
            .map(|entry| entry.expect("folder entry").path())
            .filter(|p| p.file_name().is_some_and(|n| n != "__pycache__"))
            .collect();
        entries.sort();
        for entry in entries {
            hash_tree(&entry, hasher);
        }
    } else {
        hasher.update(path.display().to_string().as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(path).expect("read a plugin input file"));
        hasher.update([0]);
    }
}

/// The built plugin `name`: a Python or JavaScript one ([`guest_plugin`]), or a Rust
/// one ([`fixture`]).
pub fn plugin_path(name: &str) -> PathBuf {
    let guest = ["-py", "-js"].iter().any(|s| name.ends_with(s))
        || ["fixture-py-", "fixture-js-"]
            .iter()
            .any(|p| name.starts_with(p));
    if guest {
        guest_plugin(name)
    } else {
        fixture(name)
    }
}

/// A config file in `dir` holding `text`, with `{fixture-NAME}` (and `{NAME-py}`,
/// `{NAME-js}`) replaced by the built plugin's path.
pub fn config_file(dir: &Path, text: &str) -> PathBuf {
    let mut text = text.to_owned();
    while let Some(start) = text.find("{fixture-") {
        let end = start + text[start..].find('}').expect("closing brace");
        let name = &text[start + 1..end];
        let path = plugin_path(name).display().to_string();
        text.replace_range(start..=end, &path);
    }
    for suffix in ["-py}", "-js}"] {
        while let Some(end) = text.find(suffix) {
            let start = text[..end].rfind('{').expect("opening brace");
            let name = &text[start + 1..end + 3];
            let path = plugin_path(name).display().to_string();
            text.replace_range(start..end + suffix.len(), &path);
        }
    }
    let path = dir.join("interpose.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A scratch directory for one test (config files, plugin copies).
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("interpose-test-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch dir")
}

/// `interpose run ARGS -- python3 echo_backend.py`, with a client on its stdio.
pub struct Proxy {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// Messages received while waiting for something else.
    backlog: VecDeque<Value>,
    /// Scratch directories to keep while the proxy runs.
    held: Vec<tempfile::TempDir>,
}

impl Proxy {
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Proxy {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Proxy {
        let script = echo_backend();
        Self::start_with_backend(args, &[OsStr::new("python3"), script.as_os_str()], env)
    }

    /// `interpose run ARGS -- BACKEND...`, with a client on its stdio.
    pub fn start_with_backend<S: AsRef<OsStr>, B: AsRef<OsStr>>(
        args: &[S],
        backend: &[B],
        env: &[(&str, &str)],
    ) -> Proxy {
        let mut child = command(args, backend, env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start interpose");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Proxy {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            backlog: VecDeque::new(),
            held: Vec::new(),
        }
    }

    /// [`Proxy::start_with_backend`], returning once the log says `plugins` plugins
    /// were loaded. The first load of a Python or JavaScript component compiles it
    /// (seconds, then it is cached): starts are taken one at a time, so that tests
    /// running at once do not compile the same component side by side.
    pub fn start_loaded<S: AsRef<OsStr>, B: AsRef<OsStr>>(
        args: &[S],
        backend: &[B],
        plugins: usize,
    ) -> Proxy {
        static LOADING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = LOADING.lock().unwrap_or_else(|e| e.into_inner());
        let mut proxy = Self::start_with_backend(args, backend, &[]);
        let deadline = Instant::now() + Duration::from_secs(300);
        while proxy.log().matches("plugin loaded from").count() < plugins {
            assert!(
                Instant::now() < deadline && proxy.is_running(),
                "the plugins did not load; log:\n{}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    /// `interpose run --config CONFIG -- python3 catalog_backend.py CATALOG` with
    /// `plugins` plugins loaded, after the MCP handshake (request id 0).
    pub fn start_with_catalog(config: &Path, catalog: &Path, plugins: usize) -> Proxy {
        let script = catalog_backend();
        let backend = [
            OsStr::new("python3"),
            script.as_os_str(),
            catalog.as_os_str(),
        ];
        let mut proxy = Self::start_loaded(
            &["--config".as_ref(), config.as_os_str()],
            &backend,
            plugins,
        );
        let answer = proxy.request(
            0,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "interpose-tests", "version": "1.0.0"}}),
        );
        assert_eq!(
            answer["result"]["serverInfo"]["name"], "catalog-backend",
            "{answer}"
        );
        proxy.notify("notifications/initialized", json!({}));
        proxy
    }

    /// Keeps `dir` (config files, plugin copies) until the proxy is gone.
    pub fn holding(mut self, dir: tempfile::TempDir) -> Self {
        self.held.push(dir);
        self
    }

    pub fn send(&mut self, message: Value) {
        self.send_raw(&message.to_string());
    }

    /// Sends `line` exactly as given (a newline is added).
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to interpose");
        stdin.flush().expect("flush");
    }

    /// Calls `tool` with `arguments` (JSON text) and returns the answer's `result`
    /// exactly as the proxy wrote it (a cache answers byte for byte).
    pub fn call_tool_raw_result(&mut self, id: u64, tool: &str, arguments: &str) -> String {
        let line = self.request_raw(
            id,
            &format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments}}}}}"#
            ),
        );
        let value: Value = serde_json::from_str(&line).expect("JSON");
        assert!(value.get("result").is_some(), "{line}");
        let start = line.find(r#""result":"#).expect("a result") + r#""result":"#.len();
        line[start..line.len() - 1].to_owned()
    }

    /// Sends the request `line` (with id `id`) and returns the answer's line exactly as
    /// the proxy wrote it; other messages are kept for later.
    pub fn request_raw(&mut self, id: u64, line: &str) -> String {
        self.send_raw(line);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.recv_line(left) else {
                panic!(
                    "no answer to request {id} within {PATIENCE:?}; log:\n{}",
                    self.log()
                )
            };
            let message = parse_line(&line);
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return line;
            }
            self.backlog.push_back(message);
        }
    }

    /// The next message from the proxy (the backlog first).
    pub fn recv(&mut self) -> Value {
        if let Some(message) = self.backlog.pop_front() {
            return message;
        }
        self.recv_fresh(PATIENCE)
            .unwrap_or_else(|| panic!("no message within {PATIENCE:?}; log:\n{}", self.log()))
    }

    fn recv_fresh(&mut self, wait: Duration) -> Option<Value> {
        self.recv_line(wait).map(|line| parse_line(&line))
    }

    fn recv_line(&mut self, wait: Duration) -> Option<String> {
        match self.lines.recv_timeout(wait) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                panic!("interpose closed its stdout; log:\n{}", self.log())
            }
        }
    }

    /// Waits for a message matching `pred`; others are kept for later.
    pub fn recv_matching(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i).expect("index is valid");
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_fresh(left) {
                Some(message) if pred(&message) => return message,
                Some(other) => self.backlog.push_back(other),
                None => panic!(
                    "no {what} within {PATIENCE:?}; other messages: {:?}; log:\n{}",
                    self.backlog,
                    self.log()
                ),
            }
        }
    }

    /// Sends a request and returns the answer with its id.
    pub fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.answer(id)
    }

    pub fn answer(&mut self, id: u64) -> Value {
        self.recv_matching(&format!("answer to request {id}"), |m| {
            m.get("id") == Some(&json!(id)) && m.get("method").is_none()
        })
    }

    /// A `tools/call` for `tool` with `arguments`.
    pub fn call_tool(&mut self, id: u64, tool: &str, arguments: Value) -> Value {
        self.request(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Everything the proxy logged so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The address of the admin listener (`--admin`), from the line the proxy prints
    /// on stderr.
    pub fn admin_addr(&self) -> String {
        const LISTENING: &str = "admin listening on http://";
        assert!(
            self.wait_for_log(LISTENING, PATIENCE),
            "no admin address on stderr; log:\n{}",
            self.log()
        );
        let log = self.log();
        let (_, rest) = log.split_once(LISTENING).expect("seen");
        rest.split_whitespace()
            .next()
            .expect("an address")
            .to_owned()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log().contains(needle)
    }

    /// Closes the client side and waits for the proxy to exit.
    pub fn finish(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the stderr reader catch up.
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "interpose did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the proxy process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_line(line: &str) -> Value {
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("interpose wrote a line that is not JSON ({e}): {line}"))
}

fn command<S: AsRef<OsStr>, B: AsRef<OsStr>>(
    args: &[S],
    backend: &[B],
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(INTERPOSE);
    cmd.arg("run").args(args);
    // No backend: the servers come from --servers or --config.
    if !backend.is_empty() {
        cmd.arg("--").args(backend);
    }
    cmd.env("INTERPOSE_CACHE_DIR", cache_dir())
        .env("RUST_LOG", "interpose=debug,warn")
        .env_remove("RUST_BACKTRACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the proxy with no client input and returns how it exited and what it logged
/// (for start-up errors).
pub fn run_to_exit<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (ExitStatus, String) {
    let script = echo_backend();
    let out = command(args, &[OsStr::new("python3"), script.as_os_str()], &[])
        .stdin(Stdio::null())
        .output()
        .expect("run interpose");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `interpose ARGS` with no client and no `RUST_LOG`; its exit status, and what
/// it wrote on stdout and on stderr.
pub fn interpose_to_exit<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (ExitStatus, String, String) {
    let out = Command::new(INTERPOSE)
        .args(args)
        .env_remove("RUST_LOG")
        // `check` compiles plugins: into the tests' cache, not the user's.
        .env("INTERPOSE_CACHE_DIR", cache_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run interpose");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `interpose check ARGS`; its exit status and what it wrote (stdout, then stderr).
pub fn check_to_exit<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (ExitStatus, String) {
    let mut all: Vec<&std::ffi::OsStr> = vec!["check".as_ref()];
    all.extend(args.iter().map(AsRef::as_ref));
    let (status, stdout, stderr) = interpose_to_exit(&all);
    (status, stdout + &stderr)
}

/// The `result` of an answer, or a panic showing the error.
pub fn result(answer: &Value) -> &Value {
    answer
        .get("result")
        .unwrap_or_else(|| panic!("expected a result, got {answer}"))
}

/// The `error` of an answer, or a panic showing the result.
pub fn error(answer: &Value) -> &Value {
    answer
        .get("error")
        .unwrap_or_else(|| panic!("expected an error, got {answer}"))
}

/// What the echo backend saw: the params of an echoed request.
pub fn echoed_params(answer: &Value) -> &Value {
    &result(answer)["echo"]["params"]
}
