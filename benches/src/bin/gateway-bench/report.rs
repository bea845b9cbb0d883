//! Turning the series into tables and the verdicts against issue #13's targets.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use interpose_bench::machine::Conditions;
use interpose_bench::stats::Summary;

use crate::memory::Resident;

/// A routed call through the gateway may add at most this much over one backend, µs.
const MAX_ROUTED_ADDED_US: f64 = 10.0;
/// A merged list may take at most this multiple of the slowest server's own.
const MAX_LIST_OVER_SLOWEST: f64 = 2.0;
/// The gateway's `initialize` may come at most this long after the slowest server's
/// start, ms.
const MAX_START_ADDED_MS: f64 = 20.0;
/// The gateway's own resident memory must stay under this, MiB.
const MAX_RESIDENT_MIB: f64 = 20.0;

/// echo-backend alone, in the routed-call part.
pub const DIRECT: &str = "direct";
/// The start-up part's baseline: the servers spawned by the benchmark itself.
pub const SERVERS_ALONE: &str = "servers alone";
/// What the list part's servers alone are called, before their name.
pub const SERVER: &str = "server ";

pub fn server(name: &str) -> String {
    format!("{SERVER}{name}")
}

pub fn one_backend(build: &str) -> String {
    format!("{build} one-backend")
}

pub fn gateway(build: &str) -> String {
    format!("{build} gateway")
}

#[derive(Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub conditions: Conditions,
    pub calls: usize,
    pub warmup: usize,
    pub lists: usize,
    pub tools_per_server: u16,
    /// Servers behind the gateway in the list part.
    pub list_servers: u8,
    pub starts: usize,
    pub start_servers: u8,
    pub routed_call: Vec<Series>,
    /// Timed to the answer read, as a client reads it: the verdict's.
    pub merged_list: Vec<Series>,
    /// The same lists timed to the answer's last byte, with no JSON read.
    pub merged_list_last_byte: Vec<Series>,
    pub merged_list_cpu: Vec<ListCpu>,
    pub start_up: Vec<Series>,
    pub gateway_memory: Vec<Memory>,
    pub criteria: Vec<Criterion>,
}

/// One target's timings in one part.
#[derive(Serialize)]
pub struct Series {
    pub target: String,
    #[serde(flatten)]
    pub summary: Summary,
}

impl Series {
    pub fn new(target: &str, samples: &mut [Duration]) -> Self {
        Series {
            target: target.to_owned(),
            summary: Summary::of(samples),
        }
    }
}

/// A target's own CPU time (its threads', `/proc/PID/task/*/schedstat`) over the measured
/// lists, per list; for the servers alone, the server's per list of its own.
#[derive(Serialize)]
pub struct ListCpu {
    pub target: String,
    pub per_list_us: f64,
}

impl ListCpu {
    pub fn new(target: &str, used: Duration, lists: usize) -> Self {
        ListCpu {
            target: target.to_owned(),
            per_list_us: (used.as_secs_f64() * 1e6 / lists as f64).round(),
        }
    }
}

/// A gateway's own resident memory, the highest seen over the start-up rounds.
#[derive(Serialize)]
pub struct Memory {
    pub target: String,
    pub rss_mib: f64,
    pub peak_mib: f64,
    pub anon_mib: f64,
}

impl Memory {
    pub fn new(target: &str, resident: Resident) -> Self {
        let mib = |kib: u64| (kib as f64 / 1024.0 * 10.0).round() / 10.0;
        Memory {
            target: target.to_owned(),
            rss_mib: mib(resident.rss_kib),
            peak_mib: mib(resident.peak_kib),
            anon_mib: mib(resident.anon_kib),
        }
    }
}

/// One figure against its target.
#[derive(Debug, PartialEq, Serialize)]
pub struct Criterion {
    pub what: String,
    pub value: f64,
    pub unit: &'static str,
    /// `≤` or `<`, as the issue words the target.
    pub op: &'static str,
    pub limit: f64,
    pub pass: bool,
}

impl Criterion {
    fn at_most(what: String, value: f64, unit: &'static str, limit: f64) -> Self {
        Criterion {
            what,
            value: (value * 100.0).round() / 100.0,
            unit,
            op: "≤",
            limit,
            pass: value <= limit,
        }
    }
}

/// The median of the slowest of the list part's servers alone.
fn slowest_server(merged_list: &[Series]) -> Option<f64> {
    merged_list
        .iter()
        .filter(|s| s.target.starts_with(SERVER))
        .map(|s| s.summary.median_us)
        .max_by(f64::total_cmp)
}

/// The targets each build is judged by, from the parts' series. A figure whose
/// series is missing is left out.
pub fn criteria(
    builds: &[&str],
    routed_call: &[Series],
    merged_list: &[Series],
    start_up: &[Series],
    memory: &[Memory],
) -> Vec<Criterion> {
    let median = |series: &[Series], target: &str| {
        series
            .iter()
            .find(|s| s.target == target)
            .map(|s| s.summary.median_us)
    };
    let slowest_server = slowest_server(merged_list);
    let servers_alone = median(start_up, SERVERS_ALONE);
    let mut out = Vec::new();
    for build in builds {
        let gateway = gateway(build);
        if let (Some(routed), Some(one)) = (
            median(routed_call, &gateway),
            median(routed_call, &one_backend(build)),
        ) {
            out.push(Criterion::at_most(
                format!("{gateway}: routed `tools/call` median − one-backend's"),
                routed - one,
                "µs",
                MAX_ROUTED_ADDED_US,
            ));
        }
        if let (Some(merged), Some(slowest)) = (median(merged_list, &gateway), slowest_server)
            && slowest > 0.0
        {
            out.push(Criterion::at_most(
                format!("{gateway}: merged `tools/list` median / slowest server's"),
                merged / slowest,
                "x",
                MAX_LIST_OVER_SLOWEST,
            ));
        }
        if let (Some(start), Some(alone)) = (median(start_up, &gateway), servers_alone) {
            out.push(Criterion::at_most(
                format!("{gateway}: `initialize` answered, median − slowest server's start"),
                (start - alone) / 1000.0,
                "ms",
                MAX_START_ADDED_MS,
            ));
        }
        if let Some(memory) = memory.iter().find(|m| m.target == gateway) {
            out.push(Criterion {
                what: format!("{gateway}: own peak resident memory (VmHWM)"),
                value: memory.peak_mib,
                unit: "MiB",
                op: "<",
                limit: MAX_RESIDENT_MIB,
                pass: memory.peak_mib < MAX_RESIDENT_MIB,
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
            "**Routed `tools/call`** (1 KiB argument): {} per target, interleaved (each round in a new random order) after {} warm-up calls each; the gateway calls `a_echo` of three echo-backends, one-backend is `interpose run -- echo-backend`.\n",
            self.calls, self.warmup
        );
        series_table(&mut out, &self.routed_call, "µs", 1.0, Some(DIRECT));
        let _ = writeln!(
            out,
            "\n**Merged `tools/list`**: {} per target, interleaved after {} warm-up lists each; every server lists {} tools, the gateway merges {} of them{}.\n",
            self.lists,
            self.lists.div_ceil(10),
            self.tools_per_server,
            self.list_servers,
            if self.list_servers == 3 {
                ""
            } else {
                " (issue #13's target is for three: the verdict below is this run's ratio against that limit)"
            }
        );
        out.push_str("Timed to the answer read as a client reads it (the line checked as UTF-8 and scanned as JSON for its id), as every other part is; the verdict is on this.\n\n");
        series_table(&mut out, &self.merged_list, "µs", 1.0, None);
        out.push_str("\nThe same lists timed to the answer's last byte (its newline) read from the pipe, without the client's scan of the answer (as many times as long through the gateway as it merges servers); for comparison only:\n\n");
        series_table(&mut out, &self.merged_list_last_byte, "µs", 1.0, None);
        if let Some(slowest) = slowest_server(&self.merged_list_last_byte) {
            out.push('\n');
            for s in &self.merged_list_last_byte {
                if !s.target.starts_with(SERVER) && slowest > 0.0 {
                    let _ = writeln!(
                        out,
                        "- {}: to the last byte, {:.2}x the slowest server's.",
                        s.target,
                        s.summary.median_us / slowest
                    );
                }
            }
        }
        out.push_str("\nEach target's own CPU time (its threads', `/proc/PID/task/*/schedstat`, the processes behind a gateway not included) over the measured lists, per list:\n\n| target | CPU µs per list |\n|---|---:|\n");
        for c in &self.merged_list_cpu {
            let _ = writeln!(out, "| {} | {:.0} |", c.target, c.per_list_us);
        }
        let _ = writeln!(
            out,
            "\n**Start with {} stdio servers**: {} rounds, interleaved; from spawning the gateway to its `initialize` answered, against from spawning {} echo-backends at once (each sent `initialize` as it starts) to the last answer.\n",
            self.start_servers, self.starts, self.start_servers
        );
        series_table(&mut out, &self.start_up, "ms", 1000.0, None);
        out.push_str(
            "\nThe gateway's own memory (`/proc/PID/status` of the interpose process, its servers not included) after `initialize` and `tools/list`, the highest of all rounds. `RssAnon` is the part not backed by a file; the rest of `VmRSS` is mostly the binary's own pages, as many as the page cache holds:\n\n| target | VmRSS MiB | VmHWM MiB | RssAnon MiB |\n|---|---:|---:|---:|\n",
        );
        for m in &self.gateway_memory {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} |",
                m.target, m.rss_mib, m.peak_mib, m.anon_mib
            );
        }
        if !self.criteria.is_empty() {
            out.push_str("\n| criterion | value | target | verdict |\n|---|---:|---:|---|\n");
            for c in &self.criteria {
                let _ = writeln!(
                    out,
                    "| {} | {:.2} {} | {} {} {} | {} |",
                    c.what,
                    c.value,
                    c.unit,
                    c.op,
                    c.limit,
                    c.unit,
                    if c.pass { "PASS" } else { "FAIL" }
                );
            }
        }
        out
    }
}

/// A table of `series` in `unit` (µs divided by `per_unit`), with each row's median
/// over `baseline`'s when there is one.
fn series_table(
    out: &mut String,
    series: &[Series],
    unit: &str,
    per_unit: f64,
    baseline: Option<&str>,
) {
    let base = baseline.and_then(|b| series.iter().find(|s| s.target == b));
    let _ = write!(
        out,
        "| target | median {unit} | p99 {unit} | spread (p75 − p25) {unit} |"
    );
    if let Some(base) = base {
        let _ = write!(out, " added median over {} {unit} |", base.target);
    }
    out.push_str("\n|---|---:|---:|---:|");
    if base.is_some() {
        out.push_str("---:|");
    }
    out.push('\n');
    let decimals = if per_unit > 1.0 { 2 } else { 1 };
    for s in series {
        let v = |us: f64| format!("{:.decimals$}", us / per_unit);
        let _ = write!(
            out,
            "| {} | {} | {} | {} |",
            s.target,
            v(s.summary.median_us),
            v(s.summary.p99_us),
            v(s.summary.spread_us)
        );
        if let Some(base) = base {
            let added = if s.target == base.target {
                "-".to_owned()
            } else {
                v(s.summary.median_us - base.summary.median_us)
            };
            let _ = write!(out, " {added} |");
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(target: &str, median_us: f64) -> Series {
        Series {
            target: target.into(),
            summary: Summary {
                median_us,
                p99_us: median_us * 2.0,
                spread_us: 1.0,
            },
        }
    }

    #[test]
    fn each_build_is_judged_on_the_four_targets() {
        let routed = [
            series(DIRECT, 30.0),
            series("interpose one-backend", 90.0),
            series("interpose gateway", 98.0),
            series("base one-backend", 90.0),
            series("base gateway", 112.0),
        ];
        let lists = [
            series("server a", 200.0),
            series("server b", 250.0),
            series("server c", 220.0),
            series("interpose gateway", 480.0),
            series("base gateway", 600.0),
        ];
        let starts = [
            series(SERVERS_ALONE, 4000.0),
            series("interpose gateway", 19000.0),
            series("base gateway", 30000.0),
        ];
        let memory = [
            Memory::new(
                "interpose gateway",
                Resident {
                    rss_kib: 12 * 1024,
                    peak_kib: 13 * 1024,
                    anon_kib: 3 * 1024,
                },
            ),
            Memory::new(
                "base gateway",
                Resident {
                    rss_kib: 19 * 1024,
                    peak_kib: 20 * 1024,
                    anon_kib: 4 * 1024,
                },
            ),
        ];
        let c = criteria(&["interpose", "base"], &routed, &lists, &starts, &memory);
        let verdicts: Vec<_> = c.iter().map(|c| (c.value, c.unit, c.pass)).collect();
        assert_eq!(
            verdicts,
            [
                (8.0, "µs", true),
                (1.92, "x", true),
                (15.0, "ms", true),
                (13.0, "MiB", true),
                (22.0, "µs", false),
                (2.4, "x", false),
                (26.0, "ms", false),
                // At the limit is over it: the target is "under 20 MiB".
                (20.0, "MiB", false),
            ]
        );
        assert_eq!(
            c[0].what,
            "interpose gateway: routed `tools/call` median − one-backend's"
        );
    }

    #[test]
    fn a_missing_series_leaves_its_criterion_out() {
        let c = criteria(&["interpose"], &[], &[series("server a", 0.0)], &[], &[]);
        assert_eq!(c, []);
    }

    #[test]
    fn the_table_shows_the_median_over_the_baseline() {
        let mut out = String::new();
        series_table(
            &mut out,
            &[series(DIRECT, 30.0), series("interpose gateway", 98.5)],
            "µs",
            1.0,
            Some(DIRECT),
        );
        assert_eq!(
            out,
            "| target | median µs | p99 µs | spread (p75 − p25) µs | added median over direct µs |\n\
             |---|---:|---:|---:|---:|\n\
             | direct | 30.0 | 60.0 | 1.0 | - |\n\
             | interpose gateway | 98.5 | 197.0 | 1.0 | 68.5 |\n"
        );
    }
}
