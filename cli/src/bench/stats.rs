//! Summaries of raw samples (p50, p99, mean, the paper's window), a
//! least-squares line, and the CSV files the raw samples are kept in.
//!
//! Every figure in a bench result comes from a series here: its samples
//! are written to a CSV file under the run's directory (one row each), and
//! its summary names that file and the number of rows.

use std::path::Path;

use anyhow::{Context, Result};
use mint_traffic::Summary;
use serde_json::{Value, json};

/// The paper's window: the mean of sends 1000-2000 of 3000.
pub const PAPER_WINDOW: std::ops::Range<usize> = 1000..2000;

/// One measured series: raw samples in TSC ticks, in the order taken.
pub struct Series {
    /// File name under `raw/` (without `.csv`).
    pub name: String,
    pub ticks: Vec<u64>,
}

impl Series {
    pub fn new(name: impl Into<String>, ticks: Vec<u64>) -> Series {
        Series {
            name: name.into(),
            ticks,
        }
    }

    /// Where its CSV goes, relative to the run's directory.
    pub fn csv_path(&self) -> String {
        format!("raw/{}.csv", self.name)
    }

    /// Writes `raw/<name>.csv` under `dir`: `index,ticks,ns`, one row per
    /// sample, in the order taken.
    pub fn write_csv(&self, dir: &Path, tsc_hz: f64) -> Result<()> {
        let path = dir.join(self.csv_path());
        let mut text = String::with_capacity(self.ticks.len() * 24 + 16);
        text.push_str("index,ticks,ns\n");
        for (i, &t) in self.ticks.iter().enumerate() {
            text.push_str(&format!("{i},{t},{:.3}\n", to_ns(t as f64, tsc_hz)));
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The summary in ns, scaled by `scale` (0.5 for a one-way figure
    /// from round trips); every figure `null` without samples.
    pub fn summary_ns(&self, tsc_hz: f64, scale: f64) -> Value {
        summary_ns(&self.ticks, tsc_hz, scale, &self.csv_path())
    }
}

/// `ticks` at `tsc_hz`, in ns.
pub fn to_ns(ticks: f64, tsc_hz: f64) -> f64 {
    ticks * 1e9 / tsc_hz
}

/// `count`, `mean`, `p50`, `p99`, `min`, `max` and (with at least 2000
/// samples) `mean_1000_2000`, all in ns (times `scale`), and the CSV that
/// holds the samples.
pub fn summary_ns(ticks: &[u64], tsc_hz: f64, scale: f64, csv: &str) -> Value {
    let ns = |t: f64| to_ns(t, tsc_hz) * scale;
    let window = ticks
        .get(PAPER_WINDOW)
        .map(|w| ns(w.iter().map(|&t| t as f64).sum::<f64>() / w.len() as f64));
    let mut sorted = ticks.to_vec();
    let Some(s) = Summary::from_samples(&mut sorted).non_empty() else {
        return json!({
            "count": 0, "mean": null, "p50": null, "p99": null, "min": null, "max": null,
            "mean_1000_2000": null, "csv": csv,
        });
    };
    json!({
        "count": s.count,
        "mean": ns(s.mean),
        "p50": ns(s.p50 as f64),
        "p99": ns(s.p99 as f64),
        "min": ns(s.min as f64),
        "max": ns(s.max as f64),
        "mean_1000_2000": window,
        "csv": csv,
    })
}

/// A least-squares line `y = slope * x + intercept` and its R^2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    pub slope: f64,
    pub intercept: f64,
    pub r2: f64,
}

/// The least-squares line through `points`; `None` with fewer than two
/// distinct x values.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    // Every y equal: the line explains all there is.
    let r2 = if syy == 0.0 {
        1.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    Some(Fit {
        slope,
        intercept,
        r2,
    })
}

/// A fit of ns against bytes as the issue's `send_time_fit` has it: ns
/// per KB (1024 B), intercept in ns, R^2.
pub fn fit_json(points: &[(f64, f64)]) -> Value {
    match linear_fit(points) {
        Some(f) => json!({
            "ns_per_kb": f.slope * 1024.0,
            "intercept_ns": f.intercept,
            "r2": f.r2,
        }),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_found_exactly() {
        let f = linear_fit(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]).expect("fit");
        assert!((f.slope - 2.0).abs() < 1e-12);
        assert!((f.intercept - 1.0).abs() < 1e-12);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        let noisy = linear_fit(&[(0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (3.0, 3.0)]).expect("fit");
        assert!(noisy.r2 > 0.0 && noisy.r2 < 1.0, "{noisy:?}");
    }

    #[test]
    fn no_line_through_one_x() {
        assert_eq!(linear_fit(&[]), None);
        assert_eq!(linear_fit(&[(1.0, 1.0)]), None);
        assert_eq!(linear_fit(&[(1.0, 1.0), (1.0, 2.0)]), None);
        assert!(fit_json(&[(1.0, 1.0)]).is_null());
    }

    #[test]
    fn summaries_scale_and_keep_the_paper_window() {
        // 3000 samples: 1000 of 10 ticks, 1000 of 20, 1000 of 30; at 1 GHz
        // a tick is a ns.
        let ticks: Vec<u64> = [10, 20, 30]
            .iter()
            .flat_map(|&t| std::iter::repeat_n(t, 1000))
            .collect();
        let s = summary_ns(&ticks, 1e9, 1.0, "raw/x.csv");
        assert_eq!(s["count"], 3000);
        assert_eq!(s["mean_1000_2000"], 20.0);
        assert_eq!(s["p50"], 20.0);
        assert_eq!(s["p99"], 30.0);
        let half = summary_ns(&ticks, 1e9, 0.5, "raw/x.csv");
        assert_eq!(half["p99"], 15.0);
        let few = summary_ns(&[4, 8], 1e9, 1.0, "raw/x.csv");
        assert!(few["mean_1000_2000"].is_null());
        assert_eq!(few["mean"], 6.0);
        let none = summary_ns(&[], 1e9, 1.0, "raw/x.csv");
        assert!(none["p50"].is_null() && none["mean"].is_null());
    }
}
