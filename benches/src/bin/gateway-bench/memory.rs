//! A process's own memory, as Linux accounts it in `/proc/PID/status`.

use anyhow::Context;
use serde::Serialize;

/// Resident memory of one process (its children not included), in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Resident {
    /// Resident now (`VmRSS`).
    pub rss_kib: u64,
    /// The most it has been resident since it started (`VmHWM`).
    pub peak_kib: u64,
    /// Resident now and not backed by a file (`RssAnon`): the heap and stacks, without
    /// the binary's own pages, which count in `VmRSS` as far as the page cache holds them.
    pub anon_kib: u64,
}

impl Resident {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Self::parse(&status).with_context(|| format!("no VmRSS, VmHWM or RssAnon in {path}"))
    }

    fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| {
            status.lines().find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(':')?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
        };
        Some(Resident {
            rss_kib: field("VmRSS")?,
            peak_kib: field("VmHWM")?,
            anon_kib: field("RssAnon")?,
        })
    }

    /// The larger of each figure.
    pub fn max(self, other: Self) -> Self {
        Resident {
            rss_kib: self.rss_kib.max(other.rss_kib),
            peak_kib: self.peak_kib.max(other.peak_kib),
            anon_kib: self.anon_kib.max(other.anon_kib),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_and_peak_are_read_from_status() {
        let status = "Name:\tinterpose\nVmPeak:\t  812344 kB\nVmHWM:\t   14220 kB\nVmRSS:\t   13012 kB\nRssAnon:\t    2940 kB\nRssFile:\t   10072 kB\nThreads:\t4\n";
        assert_eq!(
            Resident::parse(status),
            Some(Resident {
                rss_kib: 13012,
                peak_kib: 14220,
                anon_kib: 2940,
            })
        );
        // A kernel thread has neither.
        assert_eq!(Resident::parse("Name:\tkthreadd\nThreads:\t1\n"), None);
    }

    #[test]
    fn the_status_of_this_process_has_both() {
        let me = Resident::of(std::process::id()).unwrap();
        assert!(me.rss_kib > 0 && me.peak_kib >= me.rss_kib);
        assert!(me.anon_kib > 0 && me.anon_kib <= me.rss_kib);
    }
}
