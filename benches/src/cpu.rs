//! CPU time as Linux accounts it: a process's, thread by thread
//! (`/proc/PID/task/*/schedstat`), and the whole machine's (`/proc/stat`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;

/// The CPU time of each live thread of a process so far, to the nanosecond as the
/// scheduler counts it (`/proc/PID/task/*/schedstat`), by thread id.
pub struct ThreadTimes(HashMap<u32, Duration>);

impl ThreadTimes {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let tasks = format!("/proc/{pid}/task");
        let mut times = HashMap::new();
        for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
            let task = task?;
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let path = task.path().join("schedstat");
            // A thread that ended since the listing has no more time to add.
            let Ok(stat) = std::fs::read_to_string(&path) else {
                continue;
            };
            let nanos = stat.split_whitespace().next().and_then(|n| n.parse().ok());
            let nanos = nanos.with_context(|| format!("no run time in {}", path.display()))?;
            times.insert(tid, Duration::from_nanos(nanos));
        }
        Ok(ThreadTimes(times))
    }

    /// The CPU time the process spent since `earlier`: each live thread's time since
    /// then (all of it for a thread started since). Thread by thread, so a thread
    /// that ended in between takes away nothing but its own last moments.
    pub fn since(&self, earlier: &ThreadTimes) -> Duration {
        self.0
            .iter()
            .map(|(tid, now)| now.saturating_sub(earlier.0.get(tid).copied().unwrap_or_default()))
            .sum()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let before = ThreadTimes::of(pid).unwrap();
        // Spins until the scheduler has counted 30 ms more, however busy the machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ThreadTimes::of(pid).unwrap().since(&before) < Duration::from_millis(30) {
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU time counted in 10 s"
            );
        }
    }

    #[test]
    fn threads_count_from_where_they_were_and_new_ones_from_nothing() {
        let ms = Duration::from_millis;
        let earlier = ThreadTimes(HashMap::from([(1, ms(10)), (2, ms(50))]));
        // Thread 2 ended; thread 3 started.
        let now = ThreadTimes(HashMap::from([(1, ms(15)), (3, ms(4))]));
        assert_eq!(now.since(&earlier), ms(9));
    }
}
