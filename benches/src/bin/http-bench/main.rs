//! `http-bench`: what interpose adds to each MCP call when it serves a stdio backend
//! over Streamable HTTP, against the same echo backend served over HTTP directly and
//! against FastMCP's proxy in the same mode; sequentially and with many sessions.

mod client;
mod report;
mod server;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use tokio::task::JoinSet;

use client::{McpSession, http_client};
use interpose_bench::Target;
use interpose_bench::machine::Conditions;
use interpose_bench::options::SharedOptions;
use interpose_bench::session::RoundOrder;
use report::{Concurrent, Latency, Report};
use server::Server;

/// Measures interpose's HTTP->stdio latency and concurrency next to the backend over
/// HTTP directly and FastMCP's proxy, and prints Markdown tables.
#[derive(Parser)]
#[command(name = "http-bench")]
struct Cli {
    /// Sequential `tools/call`s measured per target.
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Unmeasured sequential calls per target before measuring.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Sessions calling at once in the concurrent part (0 skips it).
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Calls per session per concurrent round.
    #[arg(long, default_value_t = 50)]
    session_calls: usize,
    /// Calls per session per concurrent round through FastMCP, which is far slower.
    #[arg(long, default_value_t = 10)]
    fastmcp_session_calls: usize,
    /// Measure servers already running instead of starting the built-in targets:
    /// `NAME=URL[,URL...]`, repeatable, the first one the baseline. A target's
    /// sessions are spread over its URLs in turn, as a round-robin load balancer
    /// spreads clients over replicas (benches/replicas.sh).
    #[arg(long, value_name = "NAME=URL[,URL...]")]
    url: Vec<String>,
    /// Give every call an argument of its own (the same length), so that a response
    /// cache in front of the backend never answers one.
    #[arg(long)]
    distinct_arguments: bool,
    /// Concurrent rounds per target (`--rounds`), FastMCP, output, binaries and extra
    /// targets, e.g. `--extra 'candidate=/tmp/interpose run --listen
    /// http://127.0.0.1:{port} --max-sessions 1000 -- {backend}'`.
    #[command(flatten)]
    shared: SharedOptions,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ensure!(
        cli.calls > 0 && cli.shared.rounds > 0,
        "--calls and --rounds must be positive"
    );
    let conditions = Conditions::start();
    let (targets, servers) = if cli.url.is_empty() {
        let targets = targets(&cli)?;
        let mut servers = Vec::new();
        for target in &targets {
            eprintln!("http-bench: starting {}", target.name);
            servers.push(Server::start(target)?);
        }
        (targets, servers)
    } else {
        running_targets(&cli.url)?
    };
    // Every call carries 1 KiB of printable text.
    let text = Arc::new(Arguments {
        text: ('a'..='z').cycle().take(1024).collect(),
        distinct: cli.distinct_arguments,
        calls: AtomicU64::new(0),
    });

    // One thread for the sequential part: no cross-thread wake-ups in the timings.
    let latency = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(sequential(&cli, &targets, &servers, &text));
    let concurrent = if cli.sessions == 0 {
        Vec::new()
    } else {
        // Both cores for the many sessions, so the driver is not what limits them.
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(concurrent(&cli, &targets, &servers, &text))
    };
    drop(servers);

    let report = Report {
        conditions: conditions.finish(),
        calls: cli.calls,
        warmup: cli.warmup,
        sessions: cli.sessions,
        rounds: cli.shared.rounds,
        latency,
        concurrent,
    };
    cli.shared.print(&report, Report::markdown)
}

/// One session per target, calls interleaved (every target once per round, in a new
/// order each round) so a noisy moment hits every target alike. A target that fails
/// is reported as such; the others go on.
async fn sequential(
    cli: &Cli,
    targets: &[Target],
    servers: &[Server],
    text: &Arguments,
) -> Vec<Latency> {
    let mut sessions = Vec::new();
    let mut failed: Vec<Option<String>> = Vec::new();
    for (target, server) in targets.iter().zip(servers) {
        match open(&server.urls[0]).await {
            Ok(session) => {
                sessions.push(Some(session));
                failed.push(None);
            }
            Err(e) => {
                sessions.push(None);
                failed.push(Some(why(&target.name, server, &e)));
            }
        }
    }
    eprintln!("http-bench: {} warm-up calls per target", cli.warmup);
    let mut samples = vec![Vec::with_capacity(cli.calls); targets.len()];
    let mut order = RoundOrder::new(targets.len());
    for call in 0..cli.warmup + cli.calls {
        if call == cli.warmup {
            eprintln!(
                "http-bench: {} measured calls per target, interleaved",
                cli.calls
            );
        }
        for &i in order.next_round() {
            let Some(session) = &mut sessions[i] else {
                continue;
            };
            match session.timed_echo(&text.next()).await {
                Ok(elapsed) if call >= cli.warmup => samples[i].push(elapsed),
                Ok(_) => {}
                Err(e) => {
                    failed[i] = Some(why(&targets[i].name, &servers[i], &e));
                    sessions[i] = None;
                }
            }
        }
    }
    for session in sessions.into_iter().flatten() {
        let _ = session.close().await;
    }
    let mut results: Vec<Latency> = Vec::new();
    for ((target, samples), failed) in targets.iter().zip(samples).zip(failed) {
        let direct = results
            .first()
            .filter(|d| d.failed.is_none())
            .map(|d| (d.median_us, d.p99_us));
        results.push(Latency::new(target.name.clone(), samples, direct, failed));
    }
    results
}

/// Many sessions per target, all opened at once and then all calling at once.
async fn concurrent(
    cli: &Cli,
    targets: &[Target],
    servers: &[Server],
    text: &Arc<Arguments>,
) -> Vec<Concurrent> {
    struct State {
        sessions: Vec<McpSession>,
        open: Duration,
        calls: usize,
        rounds: Vec<(Duration, Vec<Duration>)>,
        failed: Option<String>,
    }
    let mut states = Vec::new();
    for (target, server) in targets.iter().zip(servers) {
        eprintln!(
            "http-bench: opening {} sessions on {}",
            cli.sessions, target.name
        );
        let calls = if target.name == "fastmcp" {
            cli.fastmcp_session_calls
        } else {
            cli.session_calls
        };
        let start = Instant::now();
        let (sessions, failed) = match open_many(&server.urls, cli.sessions).await {
            Ok(sessions) => (sessions, None),
            Err(e) => (Vec::new(), Some(why(&target.name, server, &e))),
        };
        states.push(State {
            sessions,
            open: start.elapsed(),
            calls,
            rounds: Vec::new(),
            failed,
        });
    }
    for round in 1..=cli.shared.rounds {
        eprintln!("http-bench: concurrent round {round}/{}", cli.shared.rounds);
        for ((state, target), server) in states.iter_mut().zip(targets).zip(servers) {
            if state.failed.is_some() {
                continue;
            }
            let sessions = std::mem::take(&mut state.sessions);
            match call_all(sessions, state.calls, text).await {
                Ok((sessions, elapsed, samples)) => {
                    state.sessions = sessions;
                    state.rounds.push((elapsed, samples));
                }
                Err(e) => state.failed = Some(why(&target.name, server, &e)),
            }
        }
    }
    let mut results = Vec::new();
    for (state, target) in states.into_iter().zip(targets) {
        // Ended one by one: the backends interpose stops should not be in the next
        // target's way, and this is not timed.
        for session in state.sessions {
            if let Err(e) = session.close().await {
                eprintln!("http-bench: {}: DELETE failed: {e:#}", target.name);
                break;
            }
        }
        results.push(Concurrent::new(
            target.name.clone(),
            cli.sessions,
            state.calls,
            state.open,
            state.rounds,
            state.failed,
        ));
    }
    results
}

async fn open(url: &str) -> anyhow::Result<McpSession> {
    McpSession::open(http_client()?, url).await
}

/// Opens `count` sessions at once, each with its own client, on `urls` in turn.
async fn open_many(urls: &[String], count: usize) -> anyhow::Result<Vec<McpSession>> {
    let mut tasks = JoinSet::new();
    for url in urls.iter().cycle().take(count) {
        let url = url.clone();
        tasks.spawn(async move { open(&url).await });
    }
    let mut sessions = Vec::with_capacity(count);
    while let Some(opened) = tasks.join_next().await {
        sessions.push(opened??);
    }
    Ok(sessions)
}

/// Every session makes `calls` calls back to back, all sessions at once. Returns the
/// sessions, the time until the last call was answered, and every call's latency.
async fn call_all(
    sessions: Vec<McpSession>,
    calls: usize,
    text: &Arc<Arguments>,
) -> anyhow::Result<(Vec<McpSession>, Duration, Vec<Duration>)> {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for mut session in sessions {
        let text = Arc::clone(text);
        tasks.spawn(async move {
            let mut samples = Vec::with_capacity(calls);
            for _ in 0..calls {
                samples.push(session.timed_echo(&text.next()).await?);
            }
            anyhow::Ok((session, samples))
        });
    }
    let mut sessions = Vec::new();
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (session, samples) = done??;
        sessions.push(session);
        all.extend(samples);
    }
    Ok((sessions, start.elapsed(), all))
}

/// A failure as the table shows it, naming the target's log.
fn why(name: &str, server: &Server, e: &anyhow::Error) -> String {
    eprintln!("http-bench: {name} failed: {e:#}");
    match &server.log {
        Some(log) => format!("{e:#} (stderr in {})", log.display()),
        None => format!("{e:#}"),
    }
}

/// The echo argument of each call.
struct Arguments {
    text: String,
    /// Each call's own (its number in place of the first characters), or all the same.
    distinct: bool,
    calls: AtomicU64,
}

impl Arguments {
    fn next(&self) -> Cow<'_, str> {
        if !self.distinct {
            return Cow::Borrowed(&self.text);
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let number = format!("{call:016x}");
        Cow::Owned(number.clone() + &self.text[number.len()..])
    }
}

/// `--url` targets: servers already running, not started (nor stopped) here.
fn running_targets(urls: &[String]) -> anyhow::Result<(Vec<Target>, Vec<Server>)> {
    let mut targets = Vec::new();
    let mut servers = Vec::new();
    for spec in urls {
        let (name, urls) = spec
            .split_once('=')
            .context("--url wants NAME=URL[,URL...]")?;
        let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
        ensure!(
            urls.iter().all(|u| u.starts_with("http://")),
            "--url {spec}: not http:// URLs"
        );
        targets.push(Target {
            name: name.to_owned(),
            command: Vec::new(),
        });
        servers.push(Server::running(urls));
    }
    Ok((targets, servers))
}

/// The targets, direct first: the others' added latency is measured against it.
fn targets(cli: &Cli) -> anyhow::Result<Vec<Target>> {
    let bin = cli.shared.binaries()?;
    let backend = bin.get("echo-backend")?;
    // Room for every concurrent session plus the sequential one; interpose refuses
    // more than --max-sessions (64 by default) with 503.
    let max_sessions = (cli.sessions + 16).to_string();
    let mut targets = vec![
        Target {
            name: "direct".into(),
            command: vec![backend.clone(), "--http".into(), "127.0.0.1:{port}".into()],
        },
        Target {
            name: "interpose".into(),
            command: vec![
                bin.get("interpose")?,
                "run".into(),
                "--listen".into(),
                "http://127.0.0.1:{port}".into(),
                "--max-sessions".into(),
                max_sessions.into(),
                "--".into(),
                backend.clone(),
            ],
        },
    ];
    targets.extend(cli.shared.fastmcp(
        "fastmcp_http_proxy.py",
        vec!["{port}".into(), backend.clone()],
    )?);
    targets.extend(cli.shared.extra_targets(&backend)?);
    Ok(targets)
}
