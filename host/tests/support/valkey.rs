//! A real Valkey (or Redis) server for the store tests: `valkey-server` or
//! `redis-server` (Debian packages, installed by scripts/setup-tests.sh) on a free
//! loopback port, without persistence; stopped when dropped. Tests stop and start
//! it again on the same port to fault the store under a running proxy.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PATIENCE;

pub struct Valkey {
    child: Option<Child>,
    port: u16,
}

/// The server binary: Valkey where installed, else Redis.
fn server_binary() -> &'static str {
    let found = |name: &str| {
        Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if found("valkey-server") {
        "valkey-server"
    } else {
        "redis-server"
    }
}

impl Valkey {
    pub fn start() -> Valkey {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut valkey = Valkey { child: None, port };
        valkey.resume();
        valkey
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would: no shutdown handshake).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on its port (empty: nothing is persisted).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let binary = server_binary();
        let child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{binary}` ({e}): run scripts/setup-tests.sh to install it")
            });
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while self.command(&["PING"]) != Some(Reply::Status("PONG".into())) {
            assert!(
                Instant::now() < deadline,
                "{binary} did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends one command and returns its reply, or `None` when the server
    /// cannot be reached.
    pub fn command(&self, args: &[&str]) -> Option<Reply> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(PATIENCE)).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        read_reply(&mut BufReader::new(stream))
    }

    /// The keys matching `pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let Some(Reply::Array(items)) = self.command(&["KEYS", pattern]) else {
            panic!("KEYS did not answer with an array");
        };
        let mut keys: Vec<String> = items
            .into_iter()
            .map(|item| match item {
                Reply::Bulk(Some(key)) => String::from_utf8_lossy(&key).into_owned(),
                other => panic!("a key, not {other:?}"),
            })
            .collect();
        keys.sort();
        keys
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.command(&["GET", key]) {
            Some(Reply::Bulk(value)) => value,
            other => panic!("GET answered {other:?}"),
        }
    }
}

/// A RESP2 reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

fn read_reply(reader: &mut impl BufRead) -> Option<Reply> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1)?;
    Some(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(rest.parse().ok()?),
        "$" if rest == "-1" => Reply::Bulk(None),
        "$" => {
            let mut value = vec![0; rest.parse::<usize>().ok()? + 2];
            reader.read_exact(&mut value).ok()?;
            value.truncate(value.len() - 2);
            Reply::Bulk(Some(value))
        }
        "*" => {
            let count: usize = rest.parse().ok()?;
            Reply::Array(
                (0..count)
                    .map(|_| read_reply(reader))
                    .collect::<Option<_>>()?,
            )
        }
        _ => return None,
    })
}

impl Drop for Valkey {
    fn drop(&mut self) {
        self.kill();
    }
}
