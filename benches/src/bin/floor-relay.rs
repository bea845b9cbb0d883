//! The do-nothing relay: `floor-relay -- BACKEND ARGS...` spawns the backend and copies
//! newline-delimited JSON both ways, parsing each line into a `serde_json::Value` and
//! writing it back out. No ids, no tables, no interceptors: the least any JSON-aware
//! proxy must pay, and so the floor interpose is measured against.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::thread;

use anyhow::{Context, bail};
use serde_json::Value;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backend = match args.split_first() {
        Some((dash, rest)) if dash == "--" && !rest.is_empty() => rest,
        _ => bail!("usage: floor-relay -- BACKEND [ARGS...]"),
    };
    let mut child = Command::new(&backend[0])
        .args(&backend[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", backend[0]))?;
    let child_in = child.stdin.take().context("child stdin")?;
    let child_out = child.stdout.take().context("child stdout")?;

    // When our stdin ends, this thread drops `child_in`, which tells the backend to
    // exit; its stdout then ends and the copy below returns.
    thread::spawn(move || {
        if let Err(e) = relay(io::stdin().lock(), child_in) {
            eprintln!("floor-relay: client -> backend: {e}");
        }
    });
    if let Err(e) = relay(child_out, io::stdout().lock()) {
        eprintln!("floor-relay: backend -> client: {e}");
    }
    let status = child.wait()?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Copies lines from `from` to `to`, parsing and re-serializing each one.
fn relay(from: impl Read, to: impl Write) -> io::Result<()> {
    let mut from = BufReader::new(from);
    let mut to = BufWriter::new(to);
    let mut line = String::new();
    loop {
        line.clear();
        if from.read_line(&mut line)? == 0 {
            return Ok(());
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(message) => {
                serde_json::to_writer(&mut to, &message)?;
                to.write_all(b"\n")?;
                to.flush()?;
            }
            // A relay that dies on a bad line would be no floor for one that does not.
            Err(e) if !line.trim().is_empty() => eprintln!("floor-relay: dropped a bad line: {e}"),
            Err(_) => {}
        }
    }
}
