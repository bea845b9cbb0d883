//! Turning timings into the figures the tables show.

use std::time::Duration;

use serde::Serialize;

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], pct: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (pct / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Tenths of a microsecond are past what these measurements can tell apart.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Median and p99 of `samples` in µs, rounded to tenths.
pub fn median_and_p99_us(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    (
        round1(micros(percentile(samples, 50.0))),
        round1(micros(percentile(samples, 99.0))),
    )
}

/// A series of timings as the tables show it, in µs rounded to tenths.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub median_us: f64,
    pub p99_us: f64,
    /// The interquartile range, p75 − p25: how much the middle half of the samples
    /// varies, which p99 alone does not tell.
    pub spread_us: f64,
}

impl Summary {
    pub fn of(samples: &mut [Duration]) -> Self {
        let (median_us, p99_us) = median_and_p99_us(samples);
        let quartile = |pct| micros(percentile(samples, pct));
        Summary {
            median_us,
            p99_us,
            spread_us: round1(quartile(75.0) - quartile(25.0)),
        }
    }
}

/// What a target adds over the direct target's (median, p99), both in µs.
pub fn added_over(median_us: f64, p99_us: f64, direct: Option<(f64, f64)>) -> [Option<f64>; 2] {
    [
        direct.map(|(m, _)| round1(median_us - m)),
        direct.map(|(_, p)| round1(p99_us - p)),
    ]
}

/// The middle value of a set of rates (the upper one of an even count).
pub fn median_rate(mut rates: Vec<f64>) -> Option<f64> {
    rates.sort_unstable_by(f64::total_cmp);
    rates.get(rates.len() / 2).map(|r| r.round())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<_> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(median_and_p99_us(&mut samples), (50.0, 99.0));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn a_summary_has_the_median_p99_and_interquartile_range() {
        let mut samples: Vec<_> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(
            Summary::of(&mut samples),
            Summary {
                median_us: 50.0,
                p99_us: 99.0,
                spread_us: 50.0
            }
        );
    }

    #[test]
    fn added_latency_is_over_direct() {
        assert_eq!(
            added_over(50.0, 99.0, Some((10.0, 20.0))),
            [Some(40.0), Some(79.0)]
        );
        assert_eq!(added_over(50.0, 99.0, None), [None, None]);
    }

    #[test]
    fn the_median_rate_is_the_middle_one() {
        assert_eq!(median_rate(vec![250.0, 1000.0, 500.0]), Some(500.0));
        assert_eq!(median_rate(Vec::new()), None);
    }
}
