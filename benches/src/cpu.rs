//! CPU time as Linux accounts it: a process's (`/proc/PID/stat`, and per thread
//! `/proc/PID/task/*/schedstat`) and the whole machine's (`/proc/stat`).

use std::time::Duration;

use anyhow::Context;

/// Clock ticks per second of `/proc/PID/stat`'s times: Linux's `USER_HZ`, 100 on
/// every architecture it exposes to user space.
const TICKS_PER_SECOND: u64 = 100;

/// The user and system CPU time of process `pid` so far, all its threads (and those
/// that have ended) included, its children not.
pub fn used(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse(&stat).with_context(|| format!("no utime and stime in {path}"))
}

/// The CPU time of `pid`'s live threads so far, to the nanosecond as the scheduler
/// counts it: for runs too short for [`used`]'s 10 ms ticks. Threads that have
/// ended are not in it.
pub fn on_cpu(pid: u32) -> anyhow::Result<Duration> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let path = task?.path().join("schedstat");
        // A thread that ended since the listing has no more time to add.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        let nanos = stat.split_whitespace().next().and_then(|n| n.parse().ok());
        total += Duration::from_nanos(
            nanos.with_context(|| format!("no run time in {}", path.display()))?,
        );
    }
    Ok(total)
}

/// The whole machine's CPU time so far, all cores together, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MachineTime {
    busy: u64,
    total: u64,
}

impl MachineTime {
    pub fn now() -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        Self::parse(&stat).context("no `cpu` line in /proc/stat")
    }

    /// The first line: `cpu user nice system idle iowait irq softirq steal ...`
    /// (guest time is already counted in user).
    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .take(8)
            .map(|t| t.parse().ok())
            .collect::<Option<_>>()?;
        let total: u64 = ticks.iter().sum();
        let waiting = ticks.get(3)? + ticks.get(4)?;
        Some(MachineTime {
            busy: total - waiting,
            total,
        })
    }

    /// The share of all cores' time that was busy since `earlier`, from 0 to 1;
    /// `None` if no tick passed.
    pub fn busy_since(&self, earlier: &MachineTime) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)?;
        Some(self.busy.saturating_sub(earlier.busy) as f64 / total as f64)
    }
}

fn parse(stat: &str) -> Option<Duration> {
    // The command name (2nd field) is in parentheses and may hold spaces or `)`:
    // the fields after the last `)` start with the 3rd, state; utime and stime are the
    // 14th and 15th.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_the_command_name() {
        let stat = "4242 (inter pose) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 123 77 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse(stat), Some(Duration::from_millis(2000)));
        assert_eq!(parse("4242 (x) S 1"), None);
    }

    #[test]
    fn the_machine_is_busy_for_all_but_idle_and_io_wait() {
        let at = |stat| MachineTime::parse(stat).unwrap();
        let before = at("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n");
        let after = at("cpu  250 0 100 950 100 0 0 0 0 0\n");
        assert_eq!(after.busy_since(&before), Some(200.0 / 400.0));
        assert_eq!(before.busy_since(&before), None);
        assert_eq!(MachineTime::parse("intr 1 2 3"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let pid = std::process::id();
        let before = on_cpu(pid).unwrap();
        // Spins until the scheduler has counted 30 ms more, however busy the machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while on_cpu(pid).unwrap() < before + Duration::from_millis(30) {
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU time counted in 10 s"
            );
        }
        assert!(used(pid).unwrap() > Duration::ZERO);
    }
}
