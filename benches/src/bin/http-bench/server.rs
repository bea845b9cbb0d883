//! One benchmark target: an HTTP server process on a free loopback port, or servers
//! already running (`--url`).

use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use interpose_bench::Target;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Python with FastMCP takes a few seconds to import on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A started target that accepts connections.
pub struct Server {
    /// `None` for servers this benchmark did not start.
    child: Option<Child>,
    /// Where sessions are opened, in turn.
    pub urls: Vec<String>,
    pub log: Option<PathBuf>,
}

impl Server {
    pub fn start(target: &Target) -> anyhow::Result<Self> {
        let port = free_port()?;
        let command: Vec<OsString> = target
            .command
            .iter()
            .map(|word| match word.to_str() {
                Some(w) if w.contains("{port}") => w.replace("{port}", &port.to_string()).into(),
                _ => word.clone(),
            })
            .collect();
        let (program, args) = command.split_first().context("empty command")?;
        let log = std::env::temp_dir().join(format!("http-bench-{}.log", target.name));
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", program.to_string_lossy()))?;
        let mut server = Server {
            child: Some(child),
            urls: vec![format!("http://127.0.0.1:{port}/mcp")],
            log: Some(log.clone()),
        };
        server.wait_until_listening(port).with_context(|| {
            format!(
                "{} did not start; its stderr is in {}",
                target.name,
                log.display()
            )
        })?;
        Ok(server)
    }

    /// Servers someone else started, at `urls`.
    pub fn running(urls: Vec<String>) -> Self {
        Server {
            child: None,
            urls,
            log: None,
        }
    }

    fn wait_until_listening(&mut self, port: u16) -> anyhow::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .map(Child::try_wait)
                .transpose()?
                .flatten()
            {
                bail!("exited with {status}");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("not listening on port {port} after {START_TIMEOUT:?}")
    }
}

/// A port the kernel just handed out and that nobody holds. Another process could take
/// it before the target binds it; that shows up as a start failure, not a wrong figure.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl Drop for Server {
    /// SIGTERM first, so a proxy can stop its backends; SIGKILL after the grace period.
    fn drop(&mut self) {
        let Some(child) = &mut self.child else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        interpose_bench::stop(child);
    }
}
