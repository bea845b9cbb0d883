//! Upstream to a backend spawned as a child process, speaking MCP over its stdin and
//! stdout. Its stderr goes to our log, line by line.
//!
//! The child runs in a process group of its own, so that stopping it stops whatever it
//! started too, and its exit ends the backend even when a process it started still
//! holds its stdout open.

use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncRead, BufReader, ReadBuf};
use tokio::process::{ChildStdout, Command};
use tokio::sync::watch;

use crate::wire::framing::{BoundedLine, BoundedLineReader};
use crate::wire::link::{Link, line_link};

/// How long to wait for an exit status once the child has closed its stdout.
const EXIT_STATUS_WAIT: Duration = Duration::from_millis(500);

/// Once the child has exited, how long its stdout is still read for what it wrote
/// before exiting; after that the backend is over, even if a process it started keeps
/// the pipe open.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

/// How long processes left in the backend's group get between SIGTERM and SIGKILL.
const GROUP_TERM_WAIT: Duration = Duration::from_secs(1);

/// The longest stderr line logged whole; longer ones are cut (and say so).
const STDERR_LINE_BYTES: usize = 8 * 1024;

/// What to run as the backend.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Added to (or overriding) the environment the child inherits.
    pub env: Vec<(String, String)>,
    /// The child's working directory; ours when `None`.
    pub cwd: Option<std::path::PathBuf>,
}

impl CommandSpec {
    /// A short name for logs and errors: the program's file name.
    pub fn name(&self) -> String {
        std::path::Path::new(&self.program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.clone())
    }
}

/// A running backend process.
pub struct ChildBackend {
    name: String,
    /// The child's process group (its own pid), holding everything it started.
    group: Option<Pid>,
    exit: watch::Receiver<Option<ExitStatus>>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ChildBackend {
    /// Spawns the backend and links the relay to its stdin and stdout.
    pub fn spawn(spec: &CommandSpec, max_message_bytes: usize) -> anyhow::Result<(Link, Self)> {
        let name = spec.name();
        let mut command = Command::new(&spec.program);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let mut child = command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start backend `{}`", spec.program))?;
        let pid = child.id();
        let group = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
        let stdin = child.stdin.take().context("child stdin is piped")?;
        let stdout = child.stdout.take().context("child stdout is piped")?;
        let stderr = child.stderr.take().context("child stderr is piped")?;
        tokio::spawn(log_stderr(
            name.clone(),
            BufReader::with_capacity(64 * 1024, stderr),
        ));

        let (exit_tx, exit) = watch::channel(None);
        let (kill, kill_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    signal_group(group, Signal::SIGKILL);
                    child.start_kill().ok();
                    child.wait().await
                }
            };
            if let Ok(status) = status {
                exit_tx.send(Some(status)).ok();
            }
        });

        let closed = describe_exit(name.clone(), exit.clone());
        let stdout = StdoutUntilExit::new(stdout, exit.clone());
        let link = line_link(
            BufReader::with_capacity(64 * 1024, stdout),
            stdin,
            max_message_bytes,
            "backend",
            closed,
        );
        tracing::info!(backend = %name, pid, "started backend `{}`", spec.program);
        Ok((
            link,
            ChildBackend {
                name,
                group,
                exit,
                kill: Some(kill),
            },
        ))
    }

    /// Stops the backend once its stdin is closed: waits `grace` for it to exit on its
    /// own, then sends SIGTERM to its process group, then kills the group. Processes
    /// the backend started and left behind are stopped the same way.
    pub async fn shutdown(mut self, grace: Duration) -> Option<ExitStatus> {
        let status = self.stop(grace).await;
        self.stop_leftovers().await;
        status
    }

    async fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = wait_exit(&mut self.exit, grace).await {
            return Some(status);
        }
        tracing::info!(backend = %self.name, "backend still running after {grace:?}; sending SIGTERM to its process group");
        signal_group(self.group, Signal::SIGTERM);
        if let Some(status) = wait_exit(&mut self.exit, GROUP_TERM_WAIT).await {
            return Some(status);
        }
        tracing::warn!(backend = %self.name, "backend ignored SIGTERM; killing its process group");
        if let Some(kill) = self.kill.take() {
            kill.send(()).ok();
        }
        wait_exit(&mut self.exit, Duration::from_secs(2)).await
    }

    /// The child is gone, but processes it started may remain in its group (holding
    /// its pipes, say): SIGTERM, then SIGKILL for those that stay.
    async fn stop_leftovers(&self) {
        if !group_exists(self.group) {
            return;
        }
        tracing::info!(backend = %self.name, "processes started by the backend are still running; sending SIGTERM to its process group");
        signal_group(self.group, Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + GROUP_TERM_WAIT;
        while group_exists(self.group) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if group_exists(self.group) {
            tracing::warn!(backend = %self.name, "processes started by the backend ignored SIGTERM; killing them");
            signal_group(self.group, Signal::SIGKILL);
        }
    }
}

impl Drop for ChildBackend {
    /// Not shut down (the proxy is going away some other way): nothing it started may
    /// outlive it. After [`ChildBackend::shutdown`] the group is empty and this does nothing.
    fn drop(&mut self) {
        if group_exists(self.group) {
            signal_group(self.group, Signal::SIGKILL);
        }
    }
}

/// Sends `signal` to every process in `group` (none left is not an error).
fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group {
        killpg(group, signal).ok();
    }
}

/// Whether any process (a zombie included) is left in `group`.
fn group_exists(group: Option<Pid>) -> bool {
    group.is_some_and(|group| killpg(group, None).is_ok())
}

/// The child's stdout, ending [`EXIT_DRAIN`] after the child has exited even when a
/// process it started still holds the pipe open: the backend lives as long as the child.
struct StdoutUntilExit {
    stdout: ChildStdout,
    /// Completes once the child has exited and the drain window has passed; `None` after.
    over: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl StdoutUntilExit {
    fn new(stdout: ChildStdout, mut exit: watch::Receiver<Option<ExitStatus>>) -> Self {
        let over = async move {
            // An error means the status will never come: the waiter task is gone.
            exit.wait_for(Option::is_some).await.ok();
            tokio::time::sleep(EXIT_DRAIN).await;
        };
        StdoutUntilExit {
            stdout,
            over: Some(Box::pin(over)),
        }
    }
}

impl AsyncRead for StdoutUntilExit {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let Some(over) = this.over.as_mut() else {
            return Poll::Ready(Ok(())); // end of stream
        };
        if over.as_mut().poll(cx).is_ready() {
            this.over = None;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stdout).poll_read(cx, buf)
    }
}

async fn wait_exit(
    exit: &mut watch::Receiver<Option<ExitStatus>>,
    limit: Duration,
) -> Option<ExitStatus> {
    let waited = tokio::time::timeout(limit, exit.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(status)) => *status,
        _ => None,
    }
}

/// Says how the backend ended, once its stdout has closed.
async fn describe_exit(name: String, mut exit: watch::Receiver<Option<ExitStatus>>) -> String {
    match wait_exit(&mut exit, EXIT_STATUS_WAIT).await {
        Some(status) => format!("backend `{name}` {}", describe_status(status)),
        None => format!("backend `{name}` closed its stdout"),
    }
}

/// "exited with status 3", "was killed by signal 9 (SIGKILL)".
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map(|s| s.as_str())
                .unwrap_or("unknown");
            format!("was killed by signal {signal} ({name})")
        }
        None => format!("ended ({status})"),
    }
}

/// Logs the backend's stderr line by line until it closes. Read as bytes through a
/// bounded reader, so neither a line without end nor bytes that are not UTF-8 can grow
/// our memory or stop the reading: a pipe nobody reads would block the backend, and a
/// closed one would kill it with SIGPIPE.
async fn log_stderr(name: String, stderr: impl AsyncBufRead + Unpin) {
    let mut lines = BoundedLineReader::new(stderr, STDERR_LINE_BYTES, STDERR_LINE_BYTES);
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => log_stderr_line(&name, &line),
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(backend = %name, "reading the backend's stderr failed: {e}");
                break;
            }
        }
    }
}

fn log_stderr_line(name: &str, line: &BoundedLine<'_>) {
    let text = String::from_utf8_lossy(line.kept);
    let text = text.trim_end_matches('\r');
    if line.is_cut() {
        tracing::info!(
            target: "interpose::backend",
            backend = %name,
            "{text}... [stderr line of {} bytes cut to its first {}]",
            line.len,
            line.kept.len()
        );
    } else {
        tracing::info!(target: "interpose::backend", backend = %name, "{text}");
    }
}
