//! Routers: keys that stand for a choice among models. A router is accepted wherever a model
//! key is; per request it picks one target (SPLIT, BANDIT), runs a primary and a shadow
//! (SHADOW), escalates from one model to another (CASCADE), or runs several and combines their
//! outputs (ENSEMBLE). Guards watch a candidate's errors, tail latency and disagreement and take
//! its traffic away the moment it breaches a bound; a ramp moves traffic to a healthy candidate
//! step by step.
//!
//! The engine knows targets by name only (`key`, `key@n`): the host resolves names to models
//! or routers in its keyspace (see [`route`]), and hears of rollbacks and ramp steps through an
//! [`route::EventSink`], so that it can log, audit and publish them.

mod bandit;
pub mod combine;
mod def;
pub mod route;
mod stats;

pub use bandit::Strategy;
pub use def::{Cascade, Condition, Guard, Kind, Mix, Ramp, RouterDef, TargetRef};
pub use stats::{Agreement, ArmReport, OutputAgreement, OutputReport, TargetReport};

use bytes::Bytes;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use stats::{Bandit, TargetState};
use std::collections::{HashMap, VecDeque};

/// How many output keys a BANDIT remembers for AI.ROUTERREWARD.
const REMEMBERED_OUTPUTS: usize = 100_000;

/// Something a request caused that the host must act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A guard breached: the target's weight is now 0.
    Rollback { target: usize, reason: String },
    /// A ramp moved traffic: the new weights.
    RampStep { target: usize, weights: Vec<f64> },
    /// A ramped target now serves everything: promote it.
    RampDone { target: usize },
}

/// What a router decided for one request.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Run this target only (SPLIT, BANDIT).
    One(usize),
    /// SHADOW: run the primary (target 0); also the candidate (target 1) when sampled.
    Shadow { candidate: bool },
    /// CASCADE: the first target, then perhaps the second.
    Cascade,
    /// ENSEMBLE: every target.
    All,
}

/// A router: its definition and what changes as it serves (weights, statistics, bandit arms).
pub struct Router {
    pub def: RouterDef,
    state: Mutex<State>,
    /// Each target's request latencies in microseconds (`/metrics`), outside the lock: the
    /// histograms keep per-thread buckets of their own.
    latency: Box<[crate::engine::histogram::Histogram]>,
}

struct State {
    /// Current weights: SPLIT's traffic shares, SHADOW's [1, sample], ENSEMBLE's combining
    /// weights. ROUTERWEIGHT, guards and ramps change them.
    weights: Vec<f64>,
    rng: SmallRng,
    targets: Vec<TargetState>,
    bandit: Bandit,
    /// Output key -> the target that wrote it, oldest first (BANDIT rewards).
    outputs: HashMap<Bytes, usize, ahash::RandomState>,
    output_order: VecDeque<Bytes>,
    /// Requests since the ramp last moved.
    since_step: u64,
    ramp_done: bool,
    calls: u64,
    errors: u64,
    rollbacks: u64,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("def", &self.def).finish()
    }
}

impl Router {
    /// A router from a parsed definition, with fresh statistics.
    pub fn new(def: RouterDef) -> Router {
        let n = def.targets.len();
        let seed = match &def.kind {
            Kind::Bandit { seed: Some(s), .. } => *s,
            _ => rand::random(),
        };
        let window = def.guard.as_ref().map(|g| g.window).unwrap_or(0);
        let state = State {
            weights: def.weights.clone(),
            rng: SmallRng::seed_from_u64(seed),
            targets: (0..n).map(|_| TargetState::new(window)).collect(),
            bandit: Bandit::new(n),
            outputs: HashMap::default(),
            output_order: VecDeque::new(),
            since_step: 0,
            ramp_done: false,
            calls: 0,
            errors: 0,
            rollbacks: 0,
        };
        Router {
            def,
            state: Mutex::new(state),
            latency: (0..n)
                .map(|_| crate::engine::histogram::Histogram::latency())
                .collect(),
        }
    }

    /// Parses `KIND …` (the words after the key) into a router.
    pub fn parse(words: &[Bytes]) -> Result<Router, String> {
        RouterDef::parse(words).map(Router::new)
    }

    /// A copy with the same definition and current weights but fresh statistics (COPY).
    pub fn duplicate(&self) -> Router {
        let mut def = self.def.clone();
        def.weights = self.weights();
        Router::new(def)
    }

    pub fn weights(&self) -> Vec<f64> {
        self.state.lock().weights.clone()
    }

    /// The definition as ROUTERSET words, with the current weights: what snapshots keep.
    pub fn to_words(&self) -> Vec<Bytes> {
        let mut def = self.def.clone();
        def.weights = self.weights();
        def.to_words()
    }

    /// Sets one target's weight (ROUTERWEIGHT). A weight given by hand also re-arms the
    /// target's guard.
    pub fn set_weight(&self, target: usize, w: f64) -> Result<(), String> {
        match self.def.kind {
            Kind::Split { .. } | Kind::Shadow | Kind::Ensemble { .. } => {}
            Kind::Cascade(_) => return Err("ERR a CASCADE router has no weights".into()),
            Kind::Bandit { .. } => {
                return Err("ERR a BANDIT router chooses its targets itself".into())
            }
        }
        if !(w.is_finite() && w >= 0.0) {
            return Err("ERR weight must be a non-negative number".into());
        }
        let mut s = self.state.lock();
        if matches!(self.def.kind, Kind::Shadow) && target == 0 {
            return Err("ERR the primary of a SHADOW router always serves".into());
        }
        if matches!(self.def.kind, Kind::Shadow) && w > 1.0 {
            return Err("ERR a shadow's sample rate is between 0 and 1".into());
        }
        let mut next = s.weights.clone();
        next[target] = w;
        if matches!(self.def.kind, Kind::Split { .. }) && next.iter().all(|&x| x == 0.0) {
            return Err("ERR at least one target must keep a positive weight".into());
        }
        s.weights = next;
        s.targets[target].guard_rearm();
        s.ramp_done = false;
        s.since_step = 0;
        Ok(())
    }

    /// Decides where one request goes. `sticky_name` is the first input key's name.
    pub fn decide(&self, sticky_name: &[u8]) -> Decision {
        let mut s = self.state.lock();
        s.calls += 1;
        match &self.def.kind {
            Kind::Split { sticky } => {
                let total: f64 = s.weights.iter().sum();
                let point = if *sticky {
                    // Stable across restarts and processes: a fixed hash, not a seeded one.
                    (fnv1a(sticky_name) % 1_000_000) as f64 / 1_000_000.0 * total
                } else {
                    s.rng.gen::<f64>() * total
                };
                Decision::One(pick(&s.weights, point))
            }
            Kind::Shadow => {
                let p = s.weights[1];
                let candidate = p >= 1.0 || (p > 0.0 && s.rng.gen::<f64>() < p);
                Decision::Shadow { candidate }
            }
            Kind::Cascade(_) => Decision::Cascade,
            Kind::Ensemble { .. } => Decision::All,
            Kind::Bandit { strategy, .. } => {
                let st = *strategy;
                let State { bandit, rng, .. } = &mut *s;
                Decision::One(bandit.choose(st, rng))
            }
        }
    }

    /// Records one finished run of `target` and returns what the host must act on.
    pub fn record(&self, target: usize, latency_us: u64, ok: bool) -> Vec<Event> {
        if let Some(h) = self.latency.get(target) {
            h.observe(latency_us);
        }
        let mut s = self.state.lock();
        if !ok {
            s.errors += 1;
        }
        if let Kind::Bandit { .. } = self.def.kind {
            s.bandit.pulled(target);
        }
        let bound = self
            .def
            .guard
            .and_then(|g| g.p99_ms)
            .map(|ms| (ms * 1000.0) as u64);
        s.targets[target].record(latency_us, ok, bound);
        self.after_record(&mut s, target)
    }

    /// Records how a shadow's outputs compared with the primary's.
    pub fn record_agreement(&self, agreement: &Agreement) -> Vec<Event> {
        let mut s = self.state.lock();
        s.targets[1].record_agreement(agreement);
        self.after_record(&mut s, 1)
    }

    fn after_record(&self, s: &mut State, target: usize) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(guard) = &self.def.guard else {
            return events;
        };
        // The first target of a SPLIT and the primary of a SHADOW are the baseline.
        if target == 0 || s.weights[target] == 0.0 {
            return events;
        }
        if let Some(reason) = s.targets[target].breach(guard) {
            s.weights[target] = 0.0;
            s.targets[target].rolled_back(&reason);
            s.rollbacks += 1;
            s.ramp_done = false;
            events.push(Event::Rollback { target, reason });
            return events;
        }
        if let (Some(ramp), Kind::Split { .. }) = (&self.def.ramp, &self.def.kind) {
            s.since_step += 1;
            if !s.ramp_done && s.since_step >= ramp.every {
                s.since_step = 0;
                let total: f64 = s.weights.iter().sum();
                let share = s.weights[target] / total * 100.0;
                let next = (share + ramp.step).min(100.0);
                // The candidate gets `next` percent; the others share the rest as before.
                let others: f64 = total - s.weights[target];
                let rest = 100.0 - next;
                for (i, w) in s.weights.iter_mut().enumerate() {
                    *w = if i == target {
                        next
                    } else if others > 0.0 {
                        *w / others * rest
                    } else {
                        0.0
                    };
                }
                events.push(Event::RampStep {
                    target,
                    weights: s.weights.clone(),
                });
                if next >= 100.0 {
                    s.ramp_done = true;
                    events.push(Event::RampDone { target });
                }
            }
        }
        events
    }

    /// Remembers which target wrote these output keys (BANDIT), for AI.ROUTERREWARD.
    pub fn remember_outputs(&self, target: usize, keys: &[Bytes]) {
        if !matches!(self.def.kind, Kind::Bandit { .. }) {
            return;
        }
        let mut s = self.state.lock();
        for k in keys {
            if s.outputs.insert(k.clone(), target).is_none() {
                s.output_order.push_back(k.clone());
            }
        }
        while s.output_order.len() > REMEMBERED_OUTPUTS {
            if let Some(old) = s.output_order.pop_front() {
                s.outputs.remove(&old);
            }
        }
    }

    /// Credits `reward` to the target that wrote `output` (BANDIT). Returns that target.
    pub fn reward(&self, output: &[u8], reward: f64) -> Result<usize, String> {
        let Kind::Bandit { strategy, .. } = self.def.kind else {
            return Err("ERR only a BANDIT router takes rewards".into());
        };
        if !reward.is_finite() {
            return Err("ERR reward must be a number".into());
        }
        if strategy == Strategy::Thompson && !(0.0..=1.0).contains(&reward) {
            return Err("ERR a THOMPSON router takes rewards between 0 and 1".into());
        }
        let mut s = self.state.lock();
        let Some(&target) = s.outputs.get(output) else {
            return Err("ERR no recent request of this router wrote that output key".into());
        };
        s.bandit.rewarded(target, reward);
        Ok(target)
    }

    /// Clears the statistics (ROUTERINFO RESETSTAT); weights and guard state stay.
    pub fn reset_stats(&self) {
        let mut s = self.state.lock();
        s.calls = 0;
        s.errors = 0;
        for t in &mut s.targets {
            t.reset();
        }
        for h in self.latency.iter() {
            h.reset();
        }
        // What a bandit learnt stays: that is its model, not a statistic.
    }

    /// Target `i`'s request latencies (microseconds), merged from every thread.
    pub fn latency(&self, i: usize) -> Option<crate::engine::histogram::Snapshot> {
        self.latency.get(i).map(|h| h.snapshot())
    }

    /// Totals: requests routed, failed requests, rollbacks.
    pub fn totals(&self) -> (u64, u64, u64) {
        let s = self.state.lock();
        (s.calls, s.errors, s.rollbacks)
    }

    /// Per-target statistics for AI.ROUTERINFO.
    pub fn report(&self) -> Vec<TargetReport> {
        let s = self.state.lock();
        let routed: u64 = s.targets.iter().map(|t| t.calls).sum();
        s.targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut r = t.report(routed);
                r.weight = s.weights[i];
                if let Kind::Bandit { .. } = self.def.kind {
                    r.arm = Some(s.bandit.arm(i));
                }
                r
            })
            .collect()
    }
}

/// The index whose cumulative weight range holds `point`.
fn pick(weights: &[f64], point: f64) -> usize {
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w <= 0.0 {
            continue;
        }
        acc += w;
        last = i;
        if point < acc {
            return i;
        }
    }
    last
}

/// FNV-1a, 64 bits: a fixed hash, so STICKY assignments survive restarts.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests;
