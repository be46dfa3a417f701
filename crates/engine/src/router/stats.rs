//! What a router keeps per target: call counts, recent latencies, shadow agreement, the
//! guard's sliding window, and a bandit's arms.

use super::def::Guard;
use std::collections::VecDeque;

/// Recent latencies kept per target for the p50 and p99 that AI.ROUTERINFO prints.
const LATENCY_SAMPLES: usize = 1024;

/// How one shadow request's outputs compared with the primary's, per output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Agreement {
    pub outputs: Vec<OutputAgreement>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputAgreement {
    /// Largest absolute element difference (infinite when the shapes differ).
    pub max_abs_diff: f64,
    /// Rows compared by argmax (or label), and how many agreed.
    pub rows: u64,
    pub rows_agree: u64,
}

impl Agreement {
    /// Whether any compared row (or shape) disagreed: what DISAGREE counts.
    pub fn disagrees(&self) -> bool {
        self.outputs
            .iter()
            .any(|o| o.rows_agree < o.rows || o.max_abs_diff.is_infinite())
    }
}

/// Accumulated agreement of one output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputReport {
    pub compared: u64,
    pub max_abs_diff: f64,
    pub mean_max_abs_diff: f64,
    pub rows: u64,
    pub rows_agree: u64,
}

impl OutputReport {
    /// The share of rows whose argmax (or label) agreed, when any were compared.
    pub fn argmax_agreement(&self) -> Option<f64> {
        (self.rows > 0).then(|| self.rows_agree as f64 / self.rows as f64)
    }
}

/// A bandit arm's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArmReport {
    pub pulls: u64,
    pub rewards: u64,
    pub mean_reward: f64,
}

/// One target's figures for AI.ROUTERINFO.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetReport {
    pub weight: f64,
    pub calls: u64,
    pub errors: u64,
    /// This target's share of the runs the router's targets made.
    pub share: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// `off`, `ok`, or `breached: <reason>`.
    pub guard: String,
    pub rollbacks: u64,
    pub shadow: Vec<OutputReport>,
    pub arm: Option<ArmReport>,
}

/// The guard's view of one target's last `window` requests, kept as running counts so that a
/// check costs nothing whatever the window.
struct Window {
    size: usize,
    /// (failed, slower than the P99 bound) per request.
    runs: VecDeque<(bool, bool)>,
    errors: u64,
    slow: u64,
    disagreements: VecDeque<bool>,
    disagree: u64,
}

impl Window {
    fn new(size: usize) -> Window {
        Window {
            size,
            runs: VecDeque::with_capacity(size.min(1 << 16)),
            errors: 0,
            slow: 0,
            disagreements: VecDeque::new(),
            disagree: 0,
        }
    }
    fn clear(&mut self) {
        *self = Window::new(self.size);
    }
}

pub struct TargetState {
    pub calls: u64,
    errors: u64,
    latencies: VecDeque<u64>,
    window: Option<Window>,
    breached: Option<String>,
    rollbacks: u64,
    shadow: Vec<OutputReport>,
}

impl TargetState {
    pub fn new(window: u64) -> TargetState {
        TargetState {
            calls: 0,
            errors: 0,
            latencies: VecDeque::with_capacity(64),
            window: (window > 0).then(|| Window::new(window as usize)),
            breached: None,
            rollbacks: 0,
            shadow: Vec::new(),
        }
    }

    pub fn record(&mut self, latency_us: u64, ok: bool, p99_bound_us: Option<u64>) {
        self.calls += 1;
        if !ok {
            self.errors += 1;
        }
        if self.latencies.len() == LATENCY_SAMPLES {
            self.latencies.pop_front();
        }
        self.latencies.push_back(latency_us);
        if let Some(w) = &mut self.window {
            let slow = p99_bound_us.is_some_and(|b| latency_us > b);
            if w.runs.len() == w.size {
                if let Some((e, s)) = w.runs.pop_front() {
                    w.errors -= e as u64;
                    w.slow -= s as u64;
                }
            }
            w.runs.push_back((!ok, slow));
            w.errors += !ok as u64;
            w.slow += slow as u64;
        }
    }

    pub fn record_agreement(&mut self, a: &Agreement) {
        if self.shadow.len() < a.outputs.len() {
            self.shadow.resize(a.outputs.len(), OutputReport::default());
        }
        for (acc, o) in self.shadow.iter_mut().zip(&a.outputs) {
            let n = acc.compared as f64;
            acc.compared += 1;
            acc.max_abs_diff = acc.max_abs_diff.max(o.max_abs_diff);
            acc.mean_max_abs_diff = (acc.mean_max_abs_diff * n + o.max_abs_diff) / (n + 1.0);
            acc.rows += o.rows;
            acc.rows_agree += o.rows_agree;
        }
        if let Some(w) = &mut self.window {
            let d = a.disagrees();
            if w.disagreements.len() == w.size {
                if let Some(old) = w.disagreements.pop_front() {
                    w.disagree -= old as u64;
                }
            }
            w.disagreements.push_back(d);
            w.disagree += d as u64;
        }
    }

    /// The bound the window breaches, if any. A bound is breached as soon as the window holds
    /// more bad requests than the bound allows over a full window: from then on no later
    /// request can bring the rate back under it, so waiting would only serve more bad answers.
    pub fn breach(&self, g: &Guard) -> Option<String> {
        let w = self.window.as_ref()?;
        let n = w.size as f64;
        if let Some(r) = g.errors {
            if w.errors as f64 > r * n {
                return Some(format!(
                    "errors: {} of the last {} requests failed (bound {}%)",
                    w.errors,
                    w.size,
                    r * 100.0
                ));
            }
        }
        if let Some(ms) = g.p99_ms {
            if w.slow as f64 > 0.01 * n {
                return Some(format!(
                    "p99: {} of the last {} requests took over {ms} ms",
                    w.slow, w.size
                ));
            }
        }
        if let Some(r) = g.disagree {
            if w.disagree as f64 > r * n {
                return Some(format!(
                    "disagree: {} of the last {} shadowed requests disagreed with the primary (bound {}%)",
                    w.disagree,
                    w.size,
                    r * 100.0
                ));
            }
        }
        None
    }

    pub fn rolled_back(&mut self, reason: &str) {
        self.breached = Some(reason.to_string());
        self.rollbacks += 1;
    }

    /// A weight set by hand: the guard watches afresh.
    pub fn guard_rearm(&mut self) {
        self.breached = None;
        if let Some(w) = &mut self.window {
            w.clear();
        }
    }

    pub fn reset(&mut self) {
        self.calls = 0;
        self.errors = 0;
        self.latencies.clear();
        self.shadow.clear();
    }

    pub fn report(&self, routed: u64) -> TargetReport {
        let mut sorted: Vec<u64> = self.latencies.iter().copied().collect();
        sorted.sort_unstable();
        let pct = |p: f64| -> u64 {
            if sorted.is_empty() {
                return 0;
            }
            let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[i]
        };
        TargetReport {
            weight: 0.0,
            calls: self.calls,
            errors: self.errors,
            share: if routed == 0 {
                0.0
            } else {
                self.calls as f64 / routed as f64
            },
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            guard: match (&self.window, &self.breached) {
                (None, _) => "off".into(),
                (Some(_), None) => "ok".into(),
                (Some(_), Some(r)) => format!("breached: {r}"),
            },
            rollbacks: self.rollbacks,
            shadow: self.shadow.clone(),
            arm: None,
        }
    }
}

/// A bandit's arms: how often each was chosen and what it earned.
pub struct Bandit {
    pulls: Vec<u64>,
    rewards: Vec<u64>,
    sums: Vec<f64>,
}

impl Bandit {
    pub fn new(n: usize) -> Bandit {
        Bandit {
            pulls: vec![0; n],
            rewards: vec![0; n],
            sums: vec![0.0; n],
        }
    }
    pub fn pulled(&mut self, i: usize) {
        self.pulls[i] += 1;
    }
    pub fn rewarded(&mut self, i: usize, r: f64) {
        self.rewards[i] += 1;
        self.sums[i] += r;
    }
    pub fn mean(&self, i: usize) -> f64 {
        if self.rewards[i] == 0 {
            0.0
        } else {
            self.sums[i] / self.rewards[i] as f64
        }
    }
    pub fn pulls(&self) -> &[u64] {
        &self.pulls
    }
    pub fn rewards(&self, i: usize) -> (u64, f64) {
        (self.rewards[i], self.sums[i])
    }
    pub fn arm(&self, i: usize) -> ArmReport {
        ArmReport {
            pulls: self.pulls[i],
            rewards: self.rewards[i],
            mean_reward: self.mean(i),
        }
    }
}
