//! Turning timings into the tables, in the style of proxy-bench's.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use interpose_bench::machine::Conditions;
use interpose_bench::stats::{added_over, median_and_p99_us, median_rate, round1};

#[derive(Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub conditions: Conditions,
    pub calls: usize,
    pub warmup: usize,
    pub sessions: usize,
    pub rounds: usize,
    pub latency: Vec<Latency>,
    pub concurrent: Vec<Concurrent>,
}

/// One target's sequential calls on one session.
#[derive(Serialize)]
pub struct Latency {
    pub name: String,
    pub median_us: f64,
    pub p99_us: f64,
    /// Over the direct target's; absent for the direct target itself.
    pub added_median_us: Option<f64>,
    pub added_p99_us: Option<f64>,
    /// Why the target has no figures, if it failed.
    pub failed: Option<String>,
}

/// One target under many sessions calling at once.
#[derive(Serialize)]
pub struct Concurrent {
    pub name: String,
    pub sessions: usize,
    pub calls_per_session: usize,
    /// From the first `initialize` sent to the last session ready, all opened at once.
    pub open_ms: f64,
    /// Calls per second over all sessions; the median of the rounds.
    pub throughput_calls_per_s: f64,
    /// Over every call of every round.
    pub median_us: f64,
    pub p99_us: f64,
    pub failed: Option<String>,
}

impl Latency {
    /// `direct` is the direct target's (median, p99) in µs.
    pub fn new(
        name: String,
        mut samples: Vec<Duration>,
        direct: Option<(f64, f64)>,
        failed: Option<String>,
    ) -> Self {
        let (median_us, p99_us) = median_and_p99_us(&mut samples);
        let direct = direct.filter(|_| failed.is_none());
        let [added_median_us, added_p99_us] = added_over(median_us, p99_us, direct);
        Latency {
            name,
            median_us,
            p99_us,
            added_median_us,
            added_p99_us,
            failed,
        }
    }
}

impl Concurrent {
    /// `rounds` are the (elapsed, per-call latencies) of each completed round.
    pub fn new(
        name: String,
        sessions: usize,
        calls_per_session: usize,
        open: Duration,
        rounds: Vec<(Duration, Vec<Duration>)>,
        failed: Option<String>,
    ) -> Self {
        let throughputs = rounds
            .iter()
            .map(|(elapsed, _)| (sessions * calls_per_session) as f64 / elapsed.as_secs_f64())
            .collect();
        let mut samples: Vec<Duration> = rounds.into_iter().flat_map(|(_, s)| s).collect();
        let (median_us, p99_us) = median_and_p99_us(&mut samples);
        Concurrent {
            name,
            sessions,
            calls_per_session,
            open_ms: round1(open.as_secs_f64() * 1e3),
            throughput_calls_per_s: median_rate(throughputs).unwrap_or(0.0),
            median_us,
            p99_us,
            failed,
        }
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = self.conditions.markdown();
        let _ = writeln!(
            out,
            "Latency over HTTP: {} sequential `tools/call` (1 KiB argument) per target on one keep-alive connection, interleaved (each round in a new random order) after {} warm-up calls each; timed until the answer is read.\n",
            self.calls, self.warmup
        );
        out.push_str("| target | median µs | p99 µs | added median µs | added p99 µs |\n");
        out.push_str("|---|---:|---:|---:|---:|\n");
        for t in &self.latency {
            if let Some(why) = &t.failed {
                let _ = writeln!(out, "| {} | **failed: {}** | | | |", t.name, one_line(why));
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {} | {} |",
                t.name,
                t.median_us,
                t.p99_us,
                opt(t.added_median_us),
                opt(t.added_p99_us),
            );
        }
        let _ = writeln!(
            out,
            "\nConcurrent sessions: {} clients, each with its own connection and session, opened at once, then all calling `echo` back to back; {} rounds, targets interleaved. Throughput is the median round's; latency percentiles are over all calls.\n",
            self.sessions, self.rounds
        );
        out.push_str(
            "| target | sessions × calls | open all sessions ms | throughput calls/s | median µs | p99 µs |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        for t in &self.concurrent {
            if let Some(why) = &t.failed {
                let _ = writeln!(
                    out,
                    "| {} | {} × {} | **failed: {}** | | | |",
                    t.name,
                    t.sessions,
                    t.calls_per_session,
                    one_line(why)
                );
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} × {} | {:.1} | {:.0} | {:.1} | {:.1} |",
                t.name,
                t.sessions,
                t.calls_per_session,
                t.open_ms,
                t.throughput_calls_per_s,
                t.median_us,
                t.p99_us
            );
        }
        let comparison = self.comparison();
        if !comparison.is_empty() {
            out.push_str("\n| interpose / fastmcp | ratio |\n|---|---:|\n");
            for (what, ratio) in comparison {
                let _ = writeln!(out, "| {what} | {ratio:.3} |");
            }
        }
        out
    }

    /// interpose against FastMCP on each figure, where both have one.
    fn comparison(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        let latency = |name: &str| {
            self.latency
                .iter()
                .find(|t| t.name == name && t.failed.is_none())
        };
        if let (Some(ours), Some(theirs)) = (latency("interpose"), latency("fastmcp")) {
            for (what, a, b) in [
                (
                    "added latency, median",
                    ours.added_median_us,
                    theirs.added_median_us,
                ),
                ("added latency, p99", ours.added_p99_us, theirs.added_p99_us),
            ] {
                if let (Some(a), Some(b)) = (a, b)
                    && b > 0.0
                {
                    out.push((what, a / b));
                }
            }
        }
        let concurrent = |name: &str| {
            self.concurrent
                .iter()
                .find(|t| t.name == name && t.failed.is_none())
        };
        if let (Some(ours), Some(theirs)) = (concurrent("interpose"), concurrent("fastmcp")) {
            for (what, a, b) in [
                (
                    "concurrent throughput",
                    ours.throughput_calls_per_s,
                    theirs.throughput_calls_per_s,
                ),
                (
                    "concurrent latency, median",
                    ours.median_us,
                    theirs.median_us,
                ),
                ("concurrent latency, p99", ours.p99_us, theirs.p99_us),
            ] {
                if b > 0.0 {
                    out.push((what, a / b));
                }
            }
        }
        out
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.1}"))
}

/// A table cell must not break the table.
fn one_line(s: &str) -> String {
    s.replace(['\n', '|'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn added_latency_is_over_direct_and_absent_when_failed() {
        let samples: Vec<_> = (1..=100).map(us).collect();
        let t = Latency::new("x".into(), samples.clone(), Some((10.0, 20.0)), None);
        assert_eq!((t.median_us, t.p99_us), (50.0, 99.0));
        assert_eq!(
            (t.added_median_us, t.added_p99_us),
            (Some(40.0), Some(79.0))
        );
        let failed = Latency::new("x".into(), samples, Some((10.0, 20.0)), Some("e".into()));
        assert_eq!(failed.added_median_us, None);
    }

    #[test]
    fn concurrent_throughput_is_the_median_round() {
        let round = |ms| (Duration::from_millis(ms), vec![us(5)]);
        // 10 sessions × 10 calls = 100 calls in 100, 200 and 400 ms.
        let t = Concurrent::new(
            "x".into(),
            10,
            10,
            us(0),
            vec![round(400), round(100), round(200)],
            None,
        );
        assert_eq!(t.throughput_calls_per_s, 500.0);
        assert_eq!(t.median_us, 5.0);
    }
}
