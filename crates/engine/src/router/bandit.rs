//! Choosing a BANDIT's arm: epsilon-greedy, UCB1, or Thompson sampling over Beta posteriors.

use super::stats::Bandit;
use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Beta, Distribution};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy {
    /// Explore a random arm with probability e, else exploit the best mean reward.
    Epsilon(f64),
    /// The arm with the highest upper confidence bound (rewards assumed in [0, 1]).
    Ucb1,
    /// A draw from each arm's Beta(1 + successes, 1 + failures); rewards in [0, 1].
    Thompson,
}

impl Bandit {
    pub fn choose(&self, strategy: Strategy, rng: &mut SmallRng) -> usize {
        let n = self.pulls().len();
        // Every arm is tried once before any strategy compares them.
        if let Some(untried) = self.pulls().iter().position(|&p| p == 0) {
            return untried;
        }
        let best_by = |score: &dyn Fn(usize) -> f64| -> usize {
            (0..n)
                .map(|i| (i, score(i)))
                .fold((0, f64::NEG_INFINITY), |best, (i, s)| {
                    if s > best.1 {
                        (i, s)
                    } else {
                        best
                    }
                })
                .0
        };
        match strategy {
            Strategy::Epsilon(e) => {
                if rng.gen::<f64>() < e {
                    rng.gen_range(0..n)
                } else {
                    best_by(&|i| self.mean(i))
                }
            }
            Strategy::Ucb1 => {
                let total: u64 = self.pulls().iter().sum();
                let ln = (total.max(1) as f64).ln();
                best_by(&|i| self.mean(i) + (2.0 * ln / self.pulls()[i] as f64).sqrt())
            }
            Strategy::Thompson => {
                let draws: Vec<f64> = (0..n)
                    .map(|i| {
                        let (count, sum) = self.rewards(i);
                        let a = 1.0 + sum;
                        let b = 1.0 + (count as f64 - sum).max(0.0);
                        Beta::new(a, b).map(|d| d.sample(rng)).unwrap_or(0.0)
                    })
                    .collect();
                best_by(&|i| draws[i])
            }
        }
    }
}
