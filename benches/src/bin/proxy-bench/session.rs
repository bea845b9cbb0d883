//! One benchmark target: a child process spoken to as an MCP client over its stdio.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use interpose_bench::Target;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

/// A pipelined run with no answer for this long is taken as stalled (deadlocked).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How a pipelined run ended.
#[derive(Clone, Copy)]
pub enum Pipelined {
    Done {
        count: usize,
        elapsed: Duration,
    },
    /// No answer came for [`STALL_TIMEOUT`]; the target was killed.
    Stalled {
        answered: usize,
        count: usize,
    },
}

/// A started target that has completed the MCP handshake.
pub struct Session {
    pub name: String,
    child: Child,
    to: Option<BufWriter<ChildStdin>>,
    from: BufReader<ChildStdout>,
    line: String,
    next_id: u64,
    log: PathBuf,
}

/// The parts of an incoming message the driver looks at. Deserializing into this
/// skips the payload without building it, so the driver's own cost stays small.
#[derive(Deserialize)]
struct Incoming {
    id: Option<Value>,
    method: Option<IgnoredAny>,
    error: Option<Value>,
}

/// The `tools/call` line for `echo` with this id and argument text.
pub fn echo_request(id: u64, text: &str) -> String {
    let params = json!({ "name": "echo", "arguments": { "text": text } });
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{params}}}\n")
}

impl Session {
    /// Starts the target and performs `initialize` + `notifications/initialized`.
    /// Its stderr goes to a log file in the temp dir, named in errors.
    pub fn start(target: &Target) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join(format!("proxy-bench-{}.log", target.name));
        let (program, args) = target.command.split_first().context("empty command")?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", program.to_string_lossy()))?;
        let to = child.stdin.take().map(BufWriter::new);
        let from = BufReader::new(child.stdout.take().context("child stdout")?);
        let mut session = Session {
            name: target.name.clone(),
            child,
            to,
            from,
            line: String::new(),
            next_id: 0,
            log,
        };
        session.handshake().with_context(|| {
            format!(
                "{}: handshake failed; its stderr is in {}",
                target.name,
                session.log.display()
            )
        })?;
        Ok(session)
    }

    fn handshake(&mut self) -> anyhow::Result<()> {
        self.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "proxy-bench", "version": env!("CARGO_PKG_VERSION") },
            }),
        )?;
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)?;
        let tools = self.request("tools/list", json!({}))?;
        ensure!(
            tools["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == "echo")),
            "no `echo` tool in {tools}"
        );
        Ok(())
    }

    /// Sends one request and waits for its result; for set-up, not for timing.
    pub fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.take_ids(1);
        let line = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.send(&line.to_string())?;
        loop {
            let mut reply: Value = serde_json::from_str(self.read_line()?)?;
            if reply.get("method").is_some() {
                continue;
            }
            ensure!(
                reply["id"] == id,
                "expected the answer to {id}, got {reply}"
            );
            if let Some(error) = reply.get("error") {
                bail!("{method} failed: {error}");
            }
            return Ok(reply["result"].take());
        }
    }

    /// One `tools/call` of `echo`, timed from just before the write to just after
    /// the answer is read.
    pub fn timed_echo(&mut self, text: &str) -> anyhow::Result<Duration> {
        let id = self.take_ids(1);
        let line = echo_request(id, text);
        let start = Instant::now();
        let to = self.to.as_mut().context("stdin closed")?;
        to.write_all(line.as_bytes())?;
        to.flush()?;
        loop {
            let reply: Incoming = serde_json::from_str(self.read_line()?)?;
            if reply.method.is_some() {
                continue;
            }
            let elapsed = start.elapsed();
            ensure!(
                reply.id == Some(Value::from(id)),
                "{}: answer to another request",
                self.name
            );
            ensure!(reply.error.is_none(), "{}: {:?}", self.name, reply.error);
            return Ok(elapsed);
        }
    }

    /// Sends `count` `tools/call`s from a writer thread without waiting for answers,
    /// while this thread reads them; returns the time until the last answer. A target
    /// that stops answering for [`STALL_TIMEOUT`] is killed and reported as stalled.
    pub fn pipelined(&mut self, count: usize, text: &str) -> anyhow::Result<Pipelined> {
        let first_id = self.take_ids(count as u64);
        let Session {
            name,
            child,
            to,
            from,
            line,
            log,
            ..
        } = self;
        let to = to.as_mut().context("stdin closed")?;
        let answered = AtomicUsize::new(0);
        let finished = AtomicBool::new(false);
        let stalled = AtomicBool::new(false);
        let start = Instant::now();
        thread::scope(|scope| {
            let writer = scope.spawn(move || -> std::io::Result<()> {
                for id in first_id..first_id + count as u64 {
                    to.write_all(echo_request(id, text).as_bytes())?;
                    // Each request leaves as its own write, as from a real client.
                    to.flush()?;
                }
                Ok(())
            });
            // Without this a deadlocked target would hang the whole benchmark: a
            // blocking pipe read has no timeout of its own.
            scope.spawn(|| {
                let (mut seen, mut since) = (0, Instant::now());
                while !finished.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(50));
                    let now = answered.load(Ordering::Relaxed);
                    if now != seen {
                        (seen, since) = (now, Instant::now());
                    } else if since.elapsed() > STALL_TIMEOUT {
                        stalled.store(true, Ordering::Relaxed);
                        let _ = child.kill();
                        return;
                    }
                }
            });
            let result = (|| {
                while answered.load(Ordering::Relaxed) < count {
                    let reply: Incoming = serde_json::from_str(read_line(from, line, name, log)?)?;
                    if reply.method.is_some() {
                        continue;
                    }
                    ensure!(reply.error.is_none(), "{name}: {:?}", reply.error);
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(start.elapsed())
            })();
            finished.store(true, Ordering::Relaxed);
            let written = writer
                .join()
                .map_err(|_| anyhow!("writer thread panicked"))?;
            if stalled.load(Ordering::Relaxed) {
                let answered = answered.load(Ordering::Relaxed);
                return Ok(Pipelined::Stalled { answered, count });
            }
            let elapsed = result?;
            written?;
            Ok(Pipelined::Done { count, elapsed })
        })
    }

    fn take_ids(&mut self, count: u64) -> u64 {
        let first = self.next_id;
        self.next_id += count;
        first
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let to = self.to.as_mut().context("stdin closed")?;
        to.write_all(line.as_bytes())?;
        to.write_all(b"\n")?;
        to.flush()?;
        Ok(())
    }

    fn read_line(&mut self) -> anyhow::Result<&str> {
        read_line(&mut self.from, &mut self.line, &self.name, &self.log)
    }
}

/// A free function so `pipelined` can read while its writer thread holds stdin.
fn read_line<'a>(
    from: &mut BufReader<ChildStdout>,
    line: &'a mut String,
    name: &str,
    log: &Path,
) -> anyhow::Result<&'a str> {
    line.clear();
    if from.read_line(line)? == 0 {
        bail!(
            "{name} closed its stdout; its stderr is in {}",
            log.display()
        );
    }
    Ok(line)
}

impl Drop for Session {
    /// Closes the target's stdin, as a client leaving would, and kills it if it
    /// has not exited within the grace period.
    fn drop(&mut self) {
        drop(self.to.take());
        interpose_bench::stop(&mut self.child);
    }
}
