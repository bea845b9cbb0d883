//! `proxy-bench`: interpose's latency and throughput against a direct backend, a
//! do-nothing relay (the floor) and FastMCP's proxy, measured interleaved in one run
//! so that the machine's mood affects every target alike.

mod report;

use anyhow::ensure;
use clap::Parser;

use interpose_bench::Target;
use interpose_bench::cpu::{MachineTime, ThreadTimes};
use interpose_bench::machine::Conditions;
use interpose_bench::options::SharedOptions;
use interpose_bench::session::{self, Pipelined, Session};
use report::{Report, RoundCpu, TargetResult, criteria};

/// Measures what interpose adds to each MCP call, next to a do-nothing relay and
/// FastMCP's proxy, and prints a Markdown table.
#[derive(Parser)]
#[command(name = "proxy-bench")]
struct Cli {
    /// Sequential `tools/call`s measured per target.
    #[arg(long, default_value_t = 3000)]
    calls: usize,
    /// Unmeasured calls per target before measuring.
    #[arg(long, default_value_t = 300)]
    warmup: usize,
    /// Requests per pipelined throughput round.
    #[arg(long, default_value_t = 5000)]
    pipelined: usize,
    /// Requests per pipelined round through FastMCP, which is far slower.
    #[arg(long, default_value_t = 1000)]
    fastmcp_pipelined: usize,
    /// Pipelined rounds per target (`--rounds`), FastMCP, output, binaries and
    /// extra targets, e.g. `--extra 'candidate=/tmp/interpose run -- {backend}'`.
    #[command(flatten)]
    shared: SharedOptions,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ensure!(
        cli.calls > 0 && cli.shared.rounds > 0,
        "--calls and --rounds must be positive"
    );
    let targets = targets(&cli)?;
    let conditions = Conditions::start();

    let mut sessions = Vec::new();
    for target in &targets {
        eprintln!("proxy-bench: starting {}", target.name);
        sessions.push(Session::start(target, "echo")?);
    }
    // Every call carries the same 1 KiB of printable text.
    let text: String = ('a'..='z').cycle().take(1024).collect();

    eprintln!("proxy-bench: {} warm-up calls per target", cli.warmup);
    session::interleaved(&mut sessions, cli.warmup, |s| s.timed_echo(&text))?;
    eprintln!(
        "proxy-bench: {} measured calls per target, interleaved",
        cli.calls
    );
    let latencies = session::interleaved(&mut sessions, cli.calls, |s| s.timed_echo(&text))?;
    let mut rounds: Vec<Vec<(Pipelined, Option<RoundCpu>)>> = vec![Vec::new(); sessions.len()];
    for round in 1..=cli.shared.rounds {
        eprintln!("proxy-bench: pipelined round {round}/{}", cli.shared.rounds);
        for (session, runs) in sessions.iter_mut().zip(&mut rounds) {
            // A stalled target was killed; it has nothing more to measure.
            if matches!(runs.last(), Some((Pipelined::Stalled { .. }, _))) {
                continue;
            }
            let count = if session.name == "fastmcp" {
                cli.fastmcp_pipelined
            } else {
                cli.pipelined
            };
            let pid = session.pid();
            let (process, machine) = (ThreadTimes::of(pid)?, MachineTime::now()?);
            let run = session.pipelined(count, &text)?;
            let spent = match run {
                Pipelined::Done { .. } => Some(RoundCpu {
                    process: ThreadTimes::of(pid)?.since(&process),
                    machine_busy: MachineTime::now()?.busy_since(&machine),
                }),
                Pipelined::Stalled { answered, count } => {
                    eprintln!(
                        "proxy-bench: {} stalled: {answered} of {count} answered, then none for {:?}",
                        session.name,
                        session::STALL_TIMEOUT
                    );
                    None
                }
            };
            runs.push((run, spent));
        }
    }
    drop(sessions);

    let mut results: Vec<TargetResult> = Vec::new();
    for ((target, samples), runs) in targets.iter().zip(latencies).zip(&rounds) {
        let direct = results.first().map(|d| (d.median_us, d.p99_us));
        results.push(TargetResult::new(
            target.name.clone(),
            samples,
            runs,
            direct,
        ));
    }
    let report = Report {
        conditions: conditions.finish(),
        calls: cli.calls,
        warmup: cli.warmup,
        rounds: cli.shared.rounds,
        criteria: criteria(&results),
        targets: results,
    };
    cli.shared.print(&report, Report::markdown)
}

/// The targets, direct first: the others' added latency is measured against it.
fn targets(cli: &Cli) -> anyhow::Result<Vec<Target>> {
    let bin = cli.shared.binaries()?;
    let backend = bin.get("echo-backend")?;
    let mut targets = vec![
        Target {
            name: "direct".into(),
            command: vec![backend.clone()],
        },
        Target {
            name: "floor".into(),
            command: vec![bin.get("floor-relay")?, "--".into(), backend.clone()],
        },
        Target {
            name: "interpose".into(),
            command: vec![
                bin.get("interpose")?,
                "run".into(),
                "--".into(),
                backend.clone(),
            ],
        },
    ];
    targets.extend(
        cli.shared
            .fastmcp("fastmcp_proxy.py", vec![backend.clone()])?,
    );
    targets.extend(cli.shared.extra_targets(&backend)?);
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_compare_added_latency_against_each_baseline() {
        let t = |name: &str, added: f64| TargetResult {
            name: name.into(),
            median_us: 0.0,
            p99_us: 0.0,
            added_median_us: Some(added),
            added_p99_us: Some(added * 2.0),
            throughput_msg_per_s: None,
            pipelined_requests: 0,
            stalled: None,
            pipelined_cpu: None,
        };
        let c = criteria(&[t("floor", 10.0), t("interpose", 15.0), t("fastmcp", 100.0)]);
        let verdicts: Vec<_> = c.iter().map(|c| (c.what.as_str(), c.pass)).collect();
        assert_eq!(
            verdicts,
            [
                ("interpose added / floor added (median)", Some(true)),
                ("interpose added / floor added (p99)", Some(true)),
                ("interpose added / fastmcp added (median)", Some(false)),
                ("interpose added / fastmcp added (p99)", Some(false)),
            ]
        );
    }
}
