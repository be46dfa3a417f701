//! The `error-rate` alert: a model version whose requests failed more often than
//! `alert-error-rate` over the last `alert-error-window` seconds (with at least
//! [`MIN_REQUESTS`] requests in it) raises an alert, at most once a minute.
//!
//! The server's periodic task calls [`check`] every tick; it samples the models' counters once
//! a second, and only while requests are failing (the engine's count of failed requests moved)
//! or a window it keeps still holds failures, so a healthy server pays one atomic load.

use crate::server::Server;
use crate::store::{Value, SHARDS};
use bytes::Bytes;
use locus_engine::engine::model::FAILED_REQUESTS;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

/// Requests a window needs before its error rate counts.
pub const MIN_REQUESTS: u64 = 20;

/// One reading of a model version's counters.
#[derive(Clone, Copy)]
struct Sample {
    at_ms: u64,
    calls: u64,
    errors: u64,
}

#[derive(Default)]
struct State {
    last_check_ms: u64,
    failed_seen: u64,
    /// Per (database, key, version): readings, oldest first; the first may be older than the
    /// window (the baseline the window's rate is measured from).
    samples: HashMap<(usize, Bytes, u64), VecDeque<Sample>>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

pub fn check(server: &Server) {
    let rate: f64 = server.config.get("alert-error-rate").parse().unwrap_or(0.0);
    if rate <= 0.0 {
        return;
    }
    let now = crate::util::now_ms();
    let mut guard = STATE.lock();
    let state = guard.get_or_insert_with(State::default);
    if now.saturating_sub(state.last_check_ms) < 1000 {
        return;
    }
    state.last_check_ms = now;
    let failed = FAILED_REQUESTS.load(Ordering::Relaxed);
    if failed == state.failed_seen && state.samples.is_empty() {
        return;
    }
    state.failed_seen = failed;
    let window_ms = server.config.get_i64("alert-error-window").max(1) as u64 * 1000;
    let mut seen = Vec::new();
    for db_index in 0..server.store.db_count() {
        let db = server.store.db(db_index);
        for i in 0..SHARDS {
            let shard = db.shard(i).read();
            for (key, e) in shard.iter(now) {
                if let Value::Model(vm) = &e.value {
                    for v in vm.versions() {
                        let s = &v.model.stats;
                        seen.push((
                            (db_index, key.clone(), v.number),
                            Sample {
                                at_ms: now,
                                calls: s.calls.load(Ordering::Relaxed),
                                errors: s.errors.load(Ordering::Relaxed),
                            },
                        ));
                    }
                }
            }
        }
    }
    let mut alerts = Vec::new();
    let mut kept = HashMap::with_capacity(seen.len());
    for (id, sample) in seen {
        let mut q = state.samples.remove(&id).unwrap_or_default();
        q.push_back(sample);
        // Keep one reading at or before the window's start as its baseline.
        while q.len() > 2 && q[1].at_ms + window_ms <= now {
            q.pop_front();
        }
        let base = q[0];
        let calls = sample.calls.saturating_sub(base.calls);
        let errors = sample.errors.saturating_sub(base.errors);
        if calls >= MIN_REQUESTS && errors as f64 > rate * calls as f64 {
            alerts.push((id.clone(), errors, calls));
        }
        // A version whose window holds no failures is no longer followed.
        if errors > 0 || q.len() == 1 {
            kept.insert(id, q);
        }
    }
    state.samples = kept;
    drop(guard);
    for ((db, key, version), errors, calls) in alerts {
        let xadd = crate::cmd::routers::raise_alert(
            server,
            db,
            now,
            "error-rate",
            &[
                ("key", String::from_utf8_lossy(&key).into_owned()),
                ("version", version.to_string()),
                (
                    "detail",
                    format!(
                        "{errors} of {calls} requests failed in the last {} s (alert-error-rate {rate})",
                        window_ms / 1000
                    ),
                ),
            ],
        );
        if let (Some(xadd), Some(mut txn)) = (xadd, server.aof.begin()) {
            txn.record(db, now, [xadd.iter()]);
        }
    }
}
