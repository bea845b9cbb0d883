//! Turning timings into the table and the ratios the proxy is judged by.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use interpose_bench::machine::Conditions;
use interpose_bench::session::{Pipelined, STALL_TIMEOUT};
use interpose_bench::stats::{added_over, median_and_p99_us, median_rate};

/// interpose's added latency may be at most this multiple of the floor relay's.
const MAX_OVER_FLOOR: f64 = 2.0;
/// ...and at most this fraction of FastMCP's proxy's.
const MAX_OVER_FASTMCP: f64 = 0.1;

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
}

/// One ratio of added latencies and whether it is within its limit.
#[derive(Serialize)]
pub struct Criterion {
    pub what: String,
    /// `None` when the denominator is not positive (the baseline added nothing).
    pub ratio: Option<f64>,
    pub limit: f64,
    pub pass: Option<bool>,
}

impl TargetResult {
    /// `latencies` are this target's sequential calls, `rounds` its pipelined runs,
    /// `direct` the direct target's (median, p99) in µs.
    pub fn new(
        name: String,
        mut latencies: Vec<Duration>,
        rounds: &[Pipelined],
        direct: Option<(f64, f64)>,
    ) -> Self {
        let (median_us, p99_us) = median_and_p99_us(&mut latencies);
        let mut throughputs = Vec::new();
        let (mut pipelined_requests, mut stalled) = (0, None);
        for (round, run) in rounds.iter().enumerate() {
            match *run {
                Pipelined::Done { count, elapsed } => {
                    pipelined_requests = count;
                    throughputs.push(count as f64 / elapsed.as_secs_f64());
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
        }
    }
}

/// The criteria that apply given which targets ran: interpose against the floor and
/// against FastMCP, on median and on p99 added latency.
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
            let ratio = match (ours, theirs) {
                (Some(ours), Some(theirs)) if theirs > 0.0 => {
                    Some((ours / theirs * 1000.0).round() / 1000.0)
                }
                _ => None,
            };
            out.push(Criterion {
                what: format!("interpose added / {baseline} added ({stat})"),
                ratio,
                limit,
                pass: ratio.map(|r| r <= limit),
            });
        }
    }
    out
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = self.conditions.markdown();
        let _ = writeln!(
            out,
            "Latency: {} sequential `tools/call` (1 KiB argument) per target, interleaved round-robin after {} warm-up calls each.\nThroughput: pipelined requests, median of {} interleaved rounds.\n",
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
        if !self.criteria.is_empty() {
            out.push_str("\n| criterion | ratio | limit | verdict |\n|---|---:|---:|---|\n");
            for c in &self.criteria {
                let (ratio, verdict) = match (c.ratio, c.pass) {
                    (Some(r), Some(pass)) => {
                        (format!("{r:.2}"), if pass { "PASS" } else { "FAIL" })
                    }
                    _ => ("n/a".to_owned(), "n/a (baseline added nothing)"),
                };
                let _ = writeln!(out, "| {} | {ratio} | ≤ {} | {verdict} |", c.what, c.limit);
            }
        }
        out
    }
}
