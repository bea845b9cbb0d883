//! Runs the real `interpose` binary between a raw JSON-RPC client (this test) and the
//! stdlib Python backend `echo_backend.py`, and builds the fixture plugins.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const INTERPOSE: &str = env!("CARGO_BIN_EXE_interpose");

/// How long any single expected message may take.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

pub fn echo_backend() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/echo_backend.py")
}

/// Where compiled plugins are cached for tests: shared by all tests, so each fixture
/// compiles once.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("interpose-plugin-cache")
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
        let root = repo_root();
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

/// A config file in `dir` holding `text`, with `{fixture-NAME}` replaced by the
/// fixture's path.
pub fn config_file(dir: &Path, text: &str) -> PathBuf {
    let mut text = text.to_owned();
    while let Some(start) = text.find("{fixture-") {
        let end = start + text[start..].find('}').expect("closing brace");
        let name = &text[start + 1..end];
        let path = fixture(name).display().to_string();
        text.replace_range(start..=end, &path);
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
        let mut child = command(args, env)
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

    /// Keeps `dir` (config files, plugin copies) until the proxy is gone.
    pub fn holding(mut self, dir: tempfile::TempDir) -> Self {
        self.held.push(dir);
        self
    }

    pub fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").expect("write to interpose");
        stdin.flush().expect("flush");
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
        match self.lines.recv_timeout(wait) {
            Ok(line) => Some(serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("interpose wrote a line that is not JSON ({e}): {line}")
            })),
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

fn command<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(INTERPOSE);
    cmd.arg("run")
        .args(args)
        .arg("--")
        .arg("python3")
        .arg(echo_backend())
        .env("INTERPOSE_CACHE_DIR", cache_dir())
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
    let out = command(args, &[])
        .stdin(Stdio::null())
        .output()
        .expect("run interpose");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
