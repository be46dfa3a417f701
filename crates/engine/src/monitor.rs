//! Drift and outlier monitors: live rows of a model's first input (and first output) over a
//! sliding window, compared feature by feature (a column of the last dimension) with baseline
//! rows, by the population stability index over the baseline's deciles or by the two-sample
//! Kolmogorov-Smirnov statistic; rows with any feature beyond k standard deviations of the
//! baseline count as outliers. Knows nothing of keys or streams: the host feeds it runs and
//! publishes what it reports.

use crate::tensor::Tensor;
use std::collections::VecDeque;

/// The least time between two KS scorings of one monitor.
pub const KS_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Psi,
    Ks,
}

/// What a monitor is told at creation.
#[derive(Clone, Debug)]
pub struct MonitorSpec {
    pub method: Method,
    /// Rows kept in the sliding window.
    pub window: usize,
    /// Scores are recomputed every this many rows.
    pub every: usize,
    /// A feature drifts when its score (PSI, or KS's statistic D) is above this.
    pub threshold: f64,
    /// Rows with a feature beyond this many standard deviations are outliers.
    pub zscore: Option<f64>,
    /// The outlier rate above which the monitor alerts.
    pub outlier_rate: f64,
}

/// A change of state worth an alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Drift {
        features: Vec<usize>,
        outputs: Vec<usize>,
    },
    DriftCleared,
    Outliers {
        rate: f64,
    },
    OutliersCleared,
}

/// Per-column figures of one side (inputs or outputs).
#[derive(Clone, Debug, Default)]
pub struct Scores {
    pub scores: Vec<f64>,
    /// KS only: each feature's asymptotic two-sided p-value.
    pub p_values: Vec<f64>,
}

struct Side {
    /// Baseline columns, each sorted.
    baseline: Vec<Vec<f64>>,
    mean: Vec<f64>,
    std: Vec<f64>,
    /// Decile edges per column (PSI).
    edges: Vec<Vec<f64>>,
    /// The baseline's share of rows per decile bin, per column (PSI).
    expected: Vec<Vec<f64>>,
    /// The window's rows per decile bin, per column, kept as rows come and go, so a PSI
    /// score costs ten terms per feature whatever the window.
    bins: Vec<[u64; 10]>,
    window: VecDeque<Vec<f64>>,
    last: Scores,
}

pub struct Monitor {
    pub spec: MonitorSpec,
    inputs: Side,
    outputs: Option<Side>,
    since: usize,
    outliers: VecDeque<bool>,
    outlier_count: usize,
    drifting: bool,
    outlying: bool,
    last_scored: Option<std::time::Instant>,
    pub rows_seen: u64,
    /// The baselines it was made from, kept so that the definition can be saved and the
    /// monitor rebuilt after a restart (tensors share their data: no copy).
    baseline: Tensor,
    output_baseline: Option<Tensor>,
}

/// A tensor's rows as f64 columns: [N, F] (or [N], one feature); `None` for strings.
pub fn rows(t: &Tensor) -> Option<Vec<Vec<f64>>> {
    let v = crate::router::combine::values(t)?;
    let cols = match t.shape() {
        [] | [_] => 1,
        s => s[1..].iter().product::<usize>().max(1),
    };
    Some(v.chunks(cols).map(|c| c.to_vec()).collect())
}

/// numpy's default (linear) quantile of sorted data.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = (sorted.len() - 1) as f64 * q;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The population stability index of `actual` against `expected`'s bins, (-inf, e1], (e1, e2],
/// …, (e9, inf); empty bins count as 1e-4 of their side.
pub fn psi(edges: &[f64], expected: &[f64], actual: &[f64]) -> f64 {
    psi_terms(
        &shares(&bin_counts(edges, expected), expected.len()),
        &shares(&bin_counts(edges, actual), actual.len()),
    )
}

/// The bin of `x` among (-inf, e1], (e1, e2], …, (e9, inf).
fn bin(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|&e| e < x)
}

fn bin_counts(edges: &[f64], data: &[f64]) -> [u64; 10] {
    let mut counts = [0u64; 10];
    for &x in data {
        counts[bin(edges, x)] += 1;
    }
    counts
}

/// Bin counts as shares of `n`; empty bins count as 1e-4.
fn shares(counts: &[u64; 10], n: usize) -> Vec<f64> {
    counts
        .iter()
        .map(|&c| (c as f64 / n.max(1) as f64).max(1e-4))
        .collect()
}

fn psi_terms(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(e, a)| (a - e) * (a / e).ln())
        .sum()
}

/// The two-sample Kolmogorov-Smirnov statistic of two sorted samples.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// The asymptotic two-sided p-value of D for samples of n and m: Kolmogorov's limiting
/// distribution at sqrt(nm/(n+m)) * D (scipy's `kstwobign.sf`).
pub fn ks_p_value(d: f64, n: usize, m: usize) -> f64 {
    let en = (n * m) as f64 / (n + m) as f64;
    let lambda = en.sqrt() * d;
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=200 {
        let k = k as f64;
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if (k as i64) % 2 == 1 { term } else { -term };
        if term < 1e-17 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

impl Side {
    fn new(baseline: Vec<Vec<f64>>) -> Result<Side, String> {
        let width = baseline.first().map(|r| r.len()).unwrap_or(0);
        if width == 0 || baseline.iter().any(|r| r.len() != width) {
            return Err("ERR the baseline needs rows of one width".into());
        }
        if baseline.len() < 10 {
            return Err("ERR the baseline needs at least 10 rows".into());
        }
        let mut cols: Vec<Vec<f64>> = (0..width)
            .map(|c| baseline.iter().map(|r| r[c]).collect())
            .collect();
        for c in &mut cols {
            c.sort_by(|a, b| a.total_cmp(b));
        }
        let mean: Vec<f64> = cols
            .iter()
            .map(|c| c.iter().sum::<f64>() / c.len() as f64)
            .collect();
        let std = cols
            .iter()
            .zip(&mean)
            .map(|(c, m)| (c.iter().map(|x| (x - m).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
            .collect();
        let edges: Vec<Vec<f64>> = cols
            .iter()
            .map(|c| (1..10).map(|i| quantile(c, i as f64 / 10.0)).collect())
            .collect();
        let expected = cols
            .iter()
            .zip(&edges)
            .map(|(c, e)| shares(&bin_counts(e, c), c.len()))
            .collect();
        Ok(Side {
            bins: vec![[0; 10]; cols.len()],
            baseline: cols,
            mean,
            std,
            edges,
            expected,
            window: VecDeque::new(),
            last: Scores::default(),
        })
    }

    fn width(&self) -> usize {
        self.baseline.len()
    }

    fn push(&mut self, rows: Vec<Vec<f64>>, cap: usize) {
        for r in rows {
            if self.window.len() == cap {
                if let Some(old) = self.window.pop_front() {
                    for (c, x) in old.iter().enumerate() {
                        self.bins[c][bin(&self.edges[c], *x)] -= 1;
                    }
                }
            }
            for (c, x) in r.iter().enumerate() {
                self.bins[c][bin(&self.edges[c], *x)] += 1;
            }
            self.window.push_back(r);
        }
    }

    fn score(&mut self, method: Method) {
        let mut scores = Scores::default();
        for c in 0..self.width() {
            match method {
                Method::Psi => {
                    let actual = shares(&self.bins[c], self.window.len());
                    scores.scores.push(psi_terms(&self.expected[c], &actual));
                }
                Method::Ks => {
                    let mut live: Vec<f64> = self.window.iter().map(|r| r[c]).collect();
                    live.sort_by(|a, b| a.total_cmp(b));
                    let d = ks_statistic(&self.baseline[c], &live);
                    scores.scores.push(d);
                    scores
                        .p_values
                        .push(ks_p_value(d, self.baseline[c].len(), live.len()));
                }
            }
        }
        self.last = scores;
    }
}

impl Monitor {
    pub fn new(
        spec: MonitorSpec,
        baseline: &Tensor,
        output_baseline: Option<&Tensor>,
    ) -> Result<Monitor, String> {
        let inputs = Side::new(rows(baseline).ok_or("ERR the baseline must be numeric")?)?;
        let outputs = match output_baseline {
            Some(t) => Some(Side::new(
                rows(t).ok_or("ERR the output baseline must be numeric")?,
            )?),
            None => None,
        };
        Ok(Monitor {
            spec,
            inputs,
            outputs,
            since: 0,
            outliers: VecDeque::new(),
            outlier_count: 0,
            drifting: false,
            outlying: false,
            last_scored: None,
            rows_seen: 0,
            baseline: baseline.clone(),
            output_baseline: output_baseline.cloned(),
        })
    }

    /// The input baseline and the output baseline it was made from.
    pub fn baselines(&self) -> (&Tensor, Option<&Tensor>) {
        (&self.baseline, self.output_baseline.as_ref())
    }

    /// The number of input features the baseline has.
    pub fn width(&self) -> usize {
        self.inputs.width()
    }

    /// Feeds one run's first input and first output; returns the changes of state it caused.
    pub fn observe(&mut self, input: &Tensor, output: Option<&Tensor>) -> Vec<Change> {
        let Some(rows_in) =
            rows(input).filter(|r| r.first().map(|x| x.len()) == Some(self.width()))
        else {
            return Vec::new();
        };
        let n = rows_in.len();
        self.rows_seen += n as u64;
        if let Some(k) = self.spec.zscore {
            for r in &rows_in {
                let out = r.iter().enumerate().any(|(c, x)| {
                    let s = self.inputs.std[c];
                    s > 0.0 && ((x - self.inputs.mean[c]) / s).abs() > k
                });
                if self.outliers.len() == self.spec.window {
                    if let Some(old) = self.outliers.pop_front() {
                        self.outlier_count -= old as usize;
                    }
                }
                self.outliers.push_back(out);
                self.outlier_count += out as usize;
            }
        }
        self.inputs.push(rows_in, self.spec.window);
        if let (Some(side), Some(out)) = (&mut self.outputs, output.and_then(rows)) {
            if out.first().map(|r| r.len()) == Some(side.width()) {
                side.push(out, self.spec.window);
            }
        }
        self.since += n;
        let mut changes = Vec::new();
        if self.since < self.spec.every {
            return changes;
        }
        // KS sorts the window per feature: on a busy key it is rescored at most every
        // KS_MIN_INTERVAL, however few rows EVERY asks for.
        if self.spec.method == Method::Ks
            && self
                .last_scored
                .is_some_and(|t| t.elapsed() < KS_MIN_INTERVAL)
        {
            return changes;
        }
        self.last_scored = Some(std::time::Instant::now());
        self.since = 0;
        self.inputs.score(self.spec.method);
        if let Some(side) = &mut self.outputs {
            if !side.window.is_empty() {
                side.score(self.spec.method);
            }
        }
        let over = |s: &Scores| -> Vec<usize> {
            s.scores
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > self.spec.threshold)
                .map(|(i, _)| i)
                .collect()
        };
        let features = over(&self.inputs.last);
        let outputs = self
            .outputs
            .as_ref()
            .map(|s| over(&s.last))
            .unwrap_or_default();
        let drifting = !features.is_empty() || !outputs.is_empty();
        if drifting && !self.drifting {
            changes.push(Change::Drift { features, outputs });
        } else if !drifting && self.drifting {
            changes.push(Change::DriftCleared);
        }
        self.drifting = drifting;
        if self.spec.zscore.is_some() {
            let rate = self.outlier_rate();
            let outlying = rate > self.spec.outlier_rate;
            if outlying && !self.outlying {
                changes.push(Change::Outliers { rate });
            } else if !outlying && self.outlying {
                changes.push(Change::OutliersCleared);
            }
            self.outlying = outlying;
        }
        changes
    }

    pub fn outlier_rate(&self) -> f64 {
        if self.outliers.is_empty() {
            0.0
        } else {
            self.outlier_count as f64 / self.outliers.len() as f64
        }
    }

    pub fn input_scores(&self) -> &Scores {
        &self.inputs.last
    }

    pub fn output_scores(&self) -> Option<&Scores> {
        self.outputs.as_ref().map(|s| &s.last)
    }

    pub fn window_rows(&self) -> usize {
        self.inputs.window.len()
    }

    pub fn state(&self) -> &'static str {
        match (self.drifting, self.outlying) {
            (false, false) => "ok",
            (true, false) => "drift",
            (false, true) => "outliers",
            (true, true) => "drift+outliers",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_matches_known_values() {
        let a: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let b: Vec<f64> = (50..150).map(|i| i as f64).collect();
        assert!((ks_statistic(&a, &b) - 0.5).abs() < 1e-12);
        assert_eq!(ks_statistic(&a, &a), 0.0);
        // Kolmogorov's distribution: Q(1.0) = 0.26999967...
        let p = ks_p_value(1.0 / (50.0f64).sqrt(), 100, 100);
        assert!((p - 0.269_999_671_677_355_4).abs() < 1e-9, "{p}");
    }

    #[test]
    fn psi_is_zero_on_the_baseline_and_grows_with_shift() {
        let base: Vec<f64> = (0..1000).map(|i| i as f64 / 10.0).collect();
        let edges: Vec<f64> = (1..10).map(|i| quantile(&base, i as f64 / 10.0)).collect();
        assert!(psi(&edges, &base, &base).abs() < 1e-12);
        let shifted: Vec<f64> = base.iter().map(|x| x + 30.0).collect();
        assert!(psi(&edges, &base, &shifted) > 0.5);
    }
}
