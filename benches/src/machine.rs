//! What the numbers were measured on, printed with them.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cpu_mhz: f64,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// UTC, minutes.
    pub date: String,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = read("/proc/cpuinfo");
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix(name)?.split_once(':').map(|(_, v)| v.trim()))
        };
        let cpu = field("model name").unwrap_or("unknown").to_owned();
        // Virtual machines often name only the CPU family; the clock says a little more.
        let cpu_mhz = field("cpu MHz")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            .round();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0);
        Machine {
            cpu,
            cpu_mhz,
            cores,
            memory_gib: (memory_kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            date: utc_now(),
        }
    }
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
pub fn load_average() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// "YYYY-MM-DD HH:MM UTC", without a date crate for one line of output.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The machine and its load around a run, as both reports start.
#[derive(Serialize)]
pub struct Conditions {
    pub machine: Machine,
    pub load_before: String,
    pub load_after: String,
}

impl Conditions {
    /// Describes the machine now; call [`Conditions::finish`] when the run is done.
    pub fn start() -> Self {
        Conditions {
            machine: Machine::describe(),
            load_before: load_average(),
            load_after: String::new(),
        }
    }

    pub fn finish(mut self) -> Self {
        self.load_after = load_average();
        self
    }

    /// The lines that head a report.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        format!(
            "Machine: {} ({} MHz), {} cores, {} GiB RAM, Linux {}; {}\nLoad average (1/5/15 min): {} before, {} after\n\n",
            m.cpu,
            m.cpu_mhz,
            m.cores,
            m.memory_gib,
            m.kernel,
            m.date,
            self.load_before,
            self.load_after
        )
    }
}
