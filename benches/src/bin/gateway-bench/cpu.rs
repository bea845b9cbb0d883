//! A process's CPU time, as Linux accounts it in `/proc/PID/stat`.

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
    fn this_process_has_used_some_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(used(std::process::id()).unwrap() > Duration::ZERO);
    }
}
