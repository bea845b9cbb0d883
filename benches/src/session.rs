//! One benchmark target: a child process spoken to as an MCP client over its stdio,
//! with the timed calls proxy-bench and gateway-bench make through it.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::Target;

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

/// How long one request took, both from just before it was written.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    /// To its answer's last byte (the newline) read from the pipe: what the target
    /// took, with no JSON read on the client's side.
    pub last_byte: Duration,
    /// To its answer read as a client reads it: the line checked as UTF-8 and scanned
    /// as JSON for its id (the whole line: the id may come last).
    pub read: Duration,
}

/// A started target that has completed the MCP handshake.
pub struct Session {
    pub name: String,
    child: Child,
    to: Option<BufWriter<ChildStdin>>,
    from: BufReader<ChildStdout>,
    line: String,
    /// A timed answer's bytes, read before they are checked as UTF-8.
    answer: Vec<u8>,
    next_id: u64,
    log: PathBuf,
    /// The `echo` tool's name as this target lists it (`a_echo` behind a gateway).
    tool: String,
}

/// The parts of an incoming message the driver looks at. Deserializing into this
/// skips the payload without building it, so the driver's own cost stays small.
#[derive(Deserialize)]
struct Incoming {
    id: Option<Value>,
    method: Option<IgnoredAny>,
    error: Option<Value>,
}

/// The `tools/call` line for the echo tool named `tool`, with this id and argument text.
pub fn echo_request(id: u64, tool: &str, text: &str) -> String {
    let params = json!({ "name": tool, "arguments": { "text": text } });
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{params}}}\n")
}

impl Session {
    /// Starts the target, performs `initialize` + `notifications/initialized` and
    /// checks that it lists the echo tool as `tool`.
    pub fn start(target: &Target, tool: &str) -> anyhow::Result<Self> {
        let mut session = Session::spawn(target)?;
        session.handshake(tool).with_context(|| {
            format!(
                "{}: handshake failed; its stderr is in {}",
                target.name,
                session.log.display()
            )
        })?;
        Ok(session)
    }

    /// Starts the target without a word to it. Its stderr goes to a log file in the
    /// temp dir (named after this benchmark and the target), named in errors.
    pub fn spawn(target: &Target) -> anyhow::Result<Self> {
        let file = format!("{}-{}.log", program_name(), target.name.replace(' ', "-"));
        let log = std::env::temp_dir().join(file);
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
        Ok(Session {
            name: target.name.clone(),
            child,
            to,
            from,
            line: String::new(),
            answer: Vec::new(),
            next_id: 0,
            log,
            tool: "echo".into(),
        })
    }

    fn handshake(&mut self, tool: &str) -> anyhow::Result<()> {
        self.initialize()?;
        self.initialized()?;
        let tools = self.request("tools/list", json!({}))?;
        ensure!(
            tools["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == tool)),
            "no `{tool}` tool in {tools}"
        );
        self.tool = tool.to_owned();
        Ok(())
    }

    /// Sends `initialize` and returns its result.
    pub fn initialize(&mut self) -> anyhow::Result<Value> {
        let id = self.send_initialize()?;
        self.result_of(id, "initialize")
    }

    /// Sends `initialize` without waiting; [`Session::result_of`] its id waits.
    pub fn send_initialize(&mut self) -> anyhow::Result<u64> {
        self.send_request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": program_name(), "version": env!("CARGO_PKG_VERSION") },
            }),
        )
    }

    /// Sends `notifications/initialized`, which ends the handshake.
    pub fn initialized(&mut self) -> anyhow::Result<()> {
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
    }

    /// The target's process id (the process started, not its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the target's stderr goes.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Sends one request and waits for its result; for set-up, not for timing.
    pub fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.send_request(method, params)?;
        self.result_of(id, method)
    }

    /// Sends one request and returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> anyhow::Result<u64> {
        let id = self.take_ids(1);
        let line = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.send(&line.to_string())?;
        Ok(id)
    }

    /// Waits for the answer to request `id` (of `method`, for the error), the next
    /// one to come, and returns its result.
    pub fn result_of(&mut self, id: u64, method: &str) -> anyhow::Result<Value> {
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

    /// One `tools/call` of the echo tool, timed from just before the write to just
    /// after the answer is read ([`Timed::read`]).
    pub fn timed_echo(&mut self, text: &str) -> anyhow::Result<Duration> {
        let id = self.take_ids(1);
        let line = echo_request(id, &self.tool, text);
        Ok(self.timed(id, &line)?.read)
    }

    /// One `tools/list` (first page), timed both ways ([`Timed`]).
    pub fn timed_list(&mut self) -> anyhow::Result<Timed> {
        let id = self.take_ids(1);
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/list\",\"params\":{{}}}}\n"
        );
        self.timed(id, &line)
    }

    /// Sends `line`, a request with id `id`, and times it to its answer.
    fn timed(&mut self, id: u64, line: &str) -> anyhow::Result<Timed> {
        let start = Instant::now();
        let to = self.to.as_mut().context("stdin closed")?;
        to.write_all(line.as_bytes())?;
        to.flush()?;
        loop {
            self.answer.clear();
            if self.from.read_until(b'\n', &mut self.answer)? == 0 {
                bail!(
                    "{} closed its stdout; its stderr is in {}",
                    self.name,
                    self.log.display()
                );
            }
            let last_byte = start.elapsed();
            let reply: Incoming = serde_json::from_str(std::str::from_utf8(&self.answer)?)?;
            if reply.method.is_some() {
                continue;
            }
            let read = start.elapsed();
            ensure!(
                reply.id == Some(Value::from(id)),
                "{}: answer to another request",
                self.name
            );
            ensure!(reply.error.is_none(), "{}: {:?}", self.name, reply.error);
            return Ok(Timed { last_byte, read });
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
            tool,
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
                    to.write_all(echo_request(id, tool, text).as_bytes())?;
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

/// Runs `measure` on every session once per round, `rounds` times, so that a noisy
/// moment hits every session alike; returns each session's samples, in session order.
/// Each round takes the sessions in a new order ([`RoundOrder`]).
pub fn interleaved<T: Clone>(
    sessions: &mut [Session],
    rounds: usize,
    mut measure: impl FnMut(&mut Session) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<Vec<T>>> {
    let mut samples = vec![Vec::with_capacity(rounds); sessions.len()];
    let mut order = RoundOrder::new(sessions.len());
    for _ in 0..rounds {
        for &i in order.next_round() {
            samples[i].push(measure(&mut sessions[i])?);
        }
    }
    Ok(samples)
}

/// The order of the targets in each interleaved round: shuffled anew every round.
/// On an idle machine a call is faster when the one just before left the cores awake
/// (a FastMCP call, say): in a fixed order one target would always follow the same
/// other and inherit its effect. Seeded, so a run repeats its orders.
pub struct RoundOrder {
    order: Vec<usize>,
    rng: fastrand::Rng,
}

impl RoundOrder {
    pub fn new(targets: usize) -> Self {
        RoundOrder {
            order: (0..targets).collect(),
            rng: fastrand::Rng::with_seed(0x1_2026_1205),
        }
    }

    /// The next round's order: every target once.
    pub fn next_round(&mut self) -> &[usize] {
        self.rng.shuffle(&mut self.order);
        &self.order
    }
}

/// This benchmark's name (its binary's), for log files and `clientInfo`.
fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.file_stem()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "interpose-bench".into())
}

impl Drop for Session {
    /// Closes the target's stdin, as a client leaving would, and kills it if it
    /// has not exited within the grace period.
    fn drop(&mut self) {
        drop(self.to.take());
        crate::stop(&mut self.child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_is_one_json_object_with_the_tool_and_text() {
        let line = echo_request(7, "a_echo", "a\"b");
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["params"]["name"], "a_echo");
        assert_eq!(v["params"]["arguments"]["text"], "a\"b");
    }

    #[test]
    fn every_round_takes_every_target_once_and_each_follows_each_other() {
        let mut order = RoundOrder::new(4);
        let mut followed = [[0; 4]; 4];
        for _ in 0..400 {
            let round = order.next_round().to_vec();
            let mut sorted = round.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3]);
            for pair in round.windows(2) {
                followed[pair[1]][pair[0]] += 1;
            }
        }
        for (target, before) in followed.iter().enumerate() {
            for (other, &count) in before.iter().enumerate() {
                assert!(
                    target == other || count > 50,
                    "{target} after {other}: {count}"
                );
            }
        }
    }
}
