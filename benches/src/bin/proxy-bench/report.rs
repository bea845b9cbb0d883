//! Turning timings into the table and the ratios the proxy is judged by.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use interpose_bench::machine::Conditions;
use interpose_bench::session::{Pipelined, STALL_TIMEOUT};
use interpose_bench::stats::{added_over, median_and_p99_us, median_rate, micros, round1};

/// interpose's added latency may be at most this multiple of the floor relay's.
const MAX_OVER_FLOOR: f64 = 2.0;
/// ...and at most this fraction of FastMCP's proxy's.
const MAX_OVER_FASTMCP: f64 = 0.1;
/// With `benches/run.sh plugins`: the demo chain may add at most this multiple of
/// what interpose adds over direct (Y/X)...
const MAX_CHAIN_OVER_PROXY: f64 = 0.6;
/// ...and keep at least this share of interpose's pipelined throughput.
const MIN_CHAIN_THROUGHPUT: f64 = 0.5;
/// The target `benches/run.sh plugins` adds: interpose with the demo chain.
const WITH_PLUGINS: &str = "interpose+plugins";

#[derive(Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub conditions: Conditions,
    pub calls: usize,
    pub warmup: usize,
    pub rounds: usize,
    pub targets: Vec<TargetResult>,
    pub criteria: Vec<Criterion>,
}

#[derive(Serialize)]
pub struct TargetResult {
    pub name: String,
    pub median_us: f64,
    pub p99_us: f64,
    /// Over the direct target's; absent for the direct target itself.
    pub added_median_us: Option<f64>,
    pub added_p99_us: Option<f64>,
    /// The median of the completed pipelined rounds; `None` if none completed.
    pub throughput_msg_per_s: Option<f64>,
    pub pipelined_requests: usize,
    /// Set when a pipelined round stopped getting answers (the target was killed).
    pub stalled: Option<String>,
    /// What the completed pipelined rounds cost in CPU; `None` if none completed.
    pub pipelined_cpu: Option<PipelinedCpu>,
}

/// What one pipelined round cost: the CPU time of the target's own process (its
/// threads; for the direct target, the backend itself; else its backend not
/// included) and the share of the whole machine that was busy meanwhile.
#[derive(Clone, Copy)]
pub struct RoundCpu {
    pub process: Duration,
    pub machine_busy: Option<f64>,
}

/// The CPU cost of a target's pipelined rounds together. Where the machine is near
/// 100 % busy, throughput is bound by the CPU each request costs all processes, not
/// by any one of them.
#[derive(Clone, Copy, Serialize)]
pub struct PipelinedCpu {
    /// The target's own CPU time per request.
    pub us_per_request: f64,
    /// Its CPU time over the rounds' wall time: how many cores it kept busy.
    pub cores: f64,
    /// How busy all the machine's cores were during the rounds, on average.
    pub machine_busy_pct: Option<f64>,
}

impl PipelinedCpu {
    /// Over `rounds`: each completed round's request count, wall time and cost.
    fn of(rounds: &[(usize, Duration, RoundCpu)]) -> Option<Self> {
        let requests: usize = rounds.iter().map(|(count, _, _)| count).sum();
        let wall: Duration = rounds.iter().map(|(_, elapsed, _)| *elapsed).sum();
        let process: Duration = rounds.iter().map(|(_, _, cpu)| cpu.process).sum();
        if requests == 0 || wall.is_zero() {
            return None;
        }
        let busy: Vec<f64> = rounds
            .iter()
            .filter_map(|(_, _, cpu)| cpu.machine_busy)
            .collect();
        Some(PipelinedCpu {
            us_per_request: round1(micros(process) / requests as f64),
            cores: (process.as_secs_f64() / wall.as_secs_f64() * 100.0).round() / 100.0,
            machine_busy_pct: (!busy.is_empty())
                .then(|| (busy.iter().sum::<f64>() / busy.len() as f64 * 100.0).round()),
        })
    }
}

/// One ratio and whether it is within its limit.
#[derive(Serialize)]
pub struct Criterion {
    pub what: String,
    /// `None` when the denominator is not positive (the baseline added nothing).
    pub ratio: Option<f64>,
    pub limit: f64,
    /// Whether the ratio may be at most the limit (added latency) or must be at
    /// least it (throughput).
    pub bound: Bound,
    pub pass: Option<bool>,
}

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    AtMost,
    AtLeast,
}

impl Criterion {
    fn new(what: String, ratio: Option<f64>, bound: Bound, limit: f64) -> Self {
        let ratio = ratio.map(|r| (r * 1000.0).round() / 1000.0);
        let pass = ratio.map(|r| match bound {
            Bound::AtMost => r <= limit,
            Bound::AtLeast => r >= limit,
        });
        Criterion {
            what,
            ratio,
            limit,
            bound,
            pass,
        }
    }
}

/// `ours / theirs`, when `theirs` is positive.
fn ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => Some(ours / theirs),
        _ => None,
    }
}

impl TargetResult {
    /// `latencies` are this target's sequential calls, `rounds` its pipelined runs
    /// (with their cost when they completed), `direct` the direct target's (median,
    /// p99) in µs.
    pub fn new(
        name: String,
        mut latencies: Vec<Duration>,
        rounds: &[(Pipelined, Option<RoundCpu>)],
        direct: Option<(f64, f64)>,
    ) -> Self {
        let (median_us, p99_us) = median_and_p99_us(&mut latencies);
        let mut throughputs = Vec::new();
        let (mut pipelined_requests, mut stalled, mut spent) = (0, None, Vec::new());
        for (round, (run, cpu)) in rounds.iter().enumerate() {
            match *run {
                Pipelined::Done { count, elapsed } => {
                    pipelined_requests = count;
                    throughputs.push(count as f64 / elapsed.as_secs_f64());
                    spent.extend(cpu.map(|cpu| (count, elapsed, cpu)));
                }
                Pipelined::Stalled { answered, count } => {
                    pipelined_requests = count;
                    stalled = Some(format!(
                        "stalled in round {}: {answered} of {count} answered, then none for {} s",
                        round + 1,
                        STALL_TIMEOUT.as_secs()
                    ));
                }
            }
        }
        let [added_median_us, added_p99_us] = added_over(median_us, p99_us, direct);
        TargetResult {
            name,
            median_us,
            p99_us,
            added_median_us,
            added_p99_us,
            throughput_msg_per_s: median_rate(throughputs),
            pipelined_requests,
            stalled,
            pipelined_cpu: PipelinedCpu::of(&spent),
        }
    }
}

/// The criteria that apply given which targets ran: interpose against the floor and
/// against FastMCP, on median and on p99 added latency; with the demo chain's target,
/// what the chain adds against what interpose adds (Y/X) and the share of
/// throughput it keeps.
pub fn criteria(targets: &[TargetResult]) -> Vec<Criterion> {
    let find = |name: &str| targets.iter().find(|t| t.name == name);
    let Some(interpose) = find("interpose") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (baseline, limit) in [("floor", MAX_OVER_FLOOR), ("fastmcp", MAX_OVER_FASTMCP)] {
        let Some(base) = find(baseline) else { continue };
        for (stat, ours, theirs) in [
            ("median", interpose.added_median_us, base.added_median_us),
            ("p99", interpose.added_p99_us, base.added_p99_us),
        ] {
            out.push(Criterion::new(
                format!("interpose added / {baseline} added ({stat})"),
                ratio(ours, theirs),
                Bound::AtMost,
                limit,
            ));
        }
    }
    if let Some(chain) = find(WITH_PLUGINS) {
        let chain_added = chain
            .added_median_us
            .zip(interpose.added_median_us)
            .map(|(with, without)| with - without);
        out.push(Criterion::new(
            "chain added over interpose / interpose added (median, Y/X)".into(),
            ratio(chain_added, interpose.added_median_us),
            Bound::AtMost,
            MAX_CHAIN_OVER_PROXY,
        ));
        out.push(Criterion::new(
            "pipelined throughput with the chain / without".into(),
            ratio(chain.throughput_msg_per_s, interpose.throughput_msg_per_s),
            Bound::AtLeast,
            MIN_CHAIN_THROUGHPUT,
        ));
    }
    out
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = self.conditions.markdown();
        let _ = writeln!(
            out,
            "Latency: {} sequential `tools/call` (1 KiB argument) per target, interleaved (each round in a new random order) after {} warm-up calls each.\nThroughput: pipelined requests, median of {} interleaved rounds.\n",
            self.calls, self.warmup, self.rounds
        );
        out.push_str(
            "| target | median µs | p99 µs | added median µs | added p99 µs | throughput msg/s |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        for t in &self.targets {
            let added = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
            let throughput = match (t.throughput_msg_per_s, &t.stalled) {
                (Some(rate), None) => format!("{rate:.0} ({} requests)", t.pipelined_requests),
                (Some(rate), Some(stall)) => format!("{rate:.0}; **{stall}**"),
                (None, Some(stall)) => format!("**{stall}**"),
                (None, None) => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {} | {} | {throughput} |",
                t.name,
                t.median_us,
                t.p99_us,
                added(t.added_median_us),
                added(t.added_p99_us),
            );
        }
        out.push_str(
            "\nPipelined CPU, over the same rounds: the target's own process (for direct, the backend itself; for the others, their backend not included), and how busy the whole machine was meanwhile. Near 100 %, throughput is bound by what a request costs all the processes together:\n\n| target | CPU µs per request | cores used | machine busy % |\n|---|---:|---:|---:|\n",
        );
        for t in &self.targets {
            let Some(cpu) = t.pipelined_cpu else { continue };
            let busy = cpu
                .machine_busy_pct
                .map_or("-".to_owned(), |b| format!("{b:.0}"));
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.2} | {busy} |",
                t.name, cpu.us_per_request, cpu.cores
            );
        }
        if !self.criteria.is_empty() {
            out.push_str("\n| criterion | ratio | limit | verdict |\n|---|---:|---:|---|\n");
            for c in &self.criteria {
                let (ratio, verdict) = match (c.ratio, c.pass) {
                    (Some(r), Some(pass)) => {
                        (format!("{r:.2}"), if pass { "PASS" } else { "FAIL" })
                    }
                    _ => ("n/a".to_owned(), "n/a (baseline added nothing)"),
                };
                let bound = match c.bound {
                    Bound::AtMost => "≤",
                    Bound::AtLeast => "≥",
                };
                let _ = writeln!(
                    out,
                    "| {} | {ratio} | {bound} {} | {verdict} |",
                    c.what, c.limit
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_cpu_is_per_request_and_per_wall_second_over_all_rounds() {
        let round = |count, wall_ms, cpu_ms, busy| {
            let cpu = RoundCpu {
                process: Duration::from_millis(cpu_ms),
                machine_busy: busy,
            };
            (count, Duration::from_millis(wall_ms), cpu)
        };
        let cpu = PipelinedCpu::of(&[
            round(1000, 100, 150, Some(0.9)),
            round(1000, 300, 250, None),
        ])
        .unwrap();
        assert_eq!(cpu.us_per_request, 200.0);
        assert_eq!(cpu.cores, 1.0);
        assert_eq!(cpu.machine_busy_pct, Some(90.0));
        assert!(PipelinedCpu::of(&[]).is_none());
    }

    #[test]
    fn the_chain_is_judged_on_y_over_x_and_on_the_throughput_it_keeps() {
        let t = |name: &str, added: f64, rate: f64| TargetResult {
            name: name.into(),
            median_us: 0.0,
            p99_us: 0.0,
            added_median_us: Some(added),
            added_p99_us: Some(added),
            throughput_msg_per_s: Some(rate),
            pipelined_requests: 0,
            stalled: None,
            pipelined_cpu: None,
        };
        let c = criteria(&[
            t("interpose", 20.0, 100_000.0),
            t(WITH_PLUGINS, 30.0, 40_000.0),
        ]);
        let judged: Vec<_> = c
            .iter()
            .map(|c| (c.what.as_str(), c.ratio, c.pass))
            .collect();
        assert_eq!(
            judged,
            [
                (
                    "chain added over interpose / interpose added (median, Y/X)",
                    Some(0.5),
                    Some(true)
                ),
                (
                    "pipelined throughput with the chain / without",
                    Some(0.4),
                    Some(false)
                ),
            ]
        );
    }
}
