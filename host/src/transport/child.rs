//! Upstream to a backend spawned as a child process, speaking MCP over its stdin and
//! stdout. Its stderr goes to our log, line by line.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use super::{Link, line_link};
use crate::framing::{BoundedLine, BoundedLineReader};

/// How long to wait for an exit status once the child has closed its stdout.
const EXIT_STATUS_WAIT: Duration = Duration::from_millis(500);

/// The longest stderr line logged whole; longer ones are cut (and say so).
const STDERR_LINE_BYTES: usize = 8 * 1024;

/// What to run as the backend.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Added to (or overriding) the environment the child inherits.
    pub env: Vec<(String, String)>,
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
    pid: Option<u32>,
    exit: watch::Receiver<Option<ExitStatus>>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ChildBackend {
    /// Spawns the backend and links the relay to its stdin and stdout.
    pub fn spawn(spec: &CommandSpec, max_message_bytes: usize) -> anyhow::Result<(Link, Self)> {
        let name = spec.name();
        let mut child = Command::new(&spec.program)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start backend `{}`", spec.program))?;
        let pid = child.id();
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
                    child.start_kill().ok();
                    child.wait().await
                }
            };
            if let Ok(status) = status {
                exit_tx.send(Some(status)).ok();
            }
        });

        let closed = describe_exit(name.clone(), exit.clone());
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
                pid,
                exit,
                kill: Some(kill),
            },
        ))
    }

    /// Stops the backend once its stdin is closed: waits `grace` for it to exit on its
    /// own, then sends SIGTERM, then kills it.
    pub async fn shutdown(mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = wait_exit(&mut self.exit, grace).await {
            return Some(status);
        }
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            tracing::info!(backend = %self.name, "backend still running after {grace:?}; sending SIGTERM");
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM).ok();
        }
        if let Some(status) = wait_exit(&mut self.exit, Duration::from_secs(1)).await {
            return Some(status);
        }
        tracing::warn!(backend = %self.name, "backend ignored SIGTERM; killing it");
        if let Some(kill) = self.kill.take() {
            kill.send(()).ok();
        }
        wait_exit(&mut self.exit, Duration::from_secs(2)).await
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
