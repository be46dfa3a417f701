//! `maxmemory`: what Locus holds, and eviction under Redis's policies.
//!
//! Used memory is every byte the process holds for data and clients: what the allocator has
//! handed out (strings and collections, tensors, model blobs, client buffers, all through
//! jemalloc) plus what the native libraries hold through the C allocator (ONNX Runtime's
//! sessions and their arenas, Lua). Reading the allocator's statistics costs a few
//! microseconds, so the figure is refreshed at most once a millisecond on the command path,
//! and at once while evicting. The AOF's buffers are left out of what the limit is held
//! against, as Redis leaves them out: evicting cannot shrink them.
//!
//! Over the limit, a command that may grow memory (DENYOOM) first evicts keys under
//! `maxmemory-policy` (`allkeys-*` from every key, `volatile-*` from keys with an expiry; LRU
//! by last access, LFU by Redis's decaying counter, TTL by the nearest expiry, or random),
//! each pick the best of `maxmemory-samples` sampled keys, each eviction logged to the AOF as
//! a DEL. If it cannot get under the limit (`noeviction`, or nothing left to evict) the
//! command gets Redis's OOM error. Reads run regardless, and model runs go ahead: their
//! outputs are checked when they are stored (see [`outputs_fit`]).

use crate::server::Server;
use crate::store::SHARDS;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub const OOM_ERR: &str = "OOM command not allowed when used memory > 'maxmemory'.";

static USED: AtomicUsize = AtomicUsize::new(0);
static READ_AT_US: AtomicU64 = AtomicU64::new(0);
/// Keys evicted since start (INFO stats `evicted_keys`).
pub static EVICTED: AtomicU64 = AtomicU64::new(0);

/// Bytes the C allocator has handed out: ONNX Runtime's and Lua's memory.
pub fn native_bytes() -> usize {
    // SAFETY: mallinfo2 only reads the C allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    m.uordblks + m.hblkhd
}

/// Bytes held now, read afresh.
pub fn used_now() -> usize {
    let (allocated, _) = crate::cmd::server::allocator_stats();
    let used = allocated + native_bytes();
    USED.store(used, Ordering::Relaxed);
    READ_AT_US.store(crate::util::now_us(), Ordering::Relaxed);
    used
}

/// Bytes held, at most a millisecond old.
pub fn used() -> usize {
    if crate::util::now_us().saturating_sub(READ_AT_US.load(Ordering::Relaxed)) > 1000 {
        return used_now();
    }
    USED.load(Ordering::Relaxed)
}

/// What `maxmemory` is held against: used memory less the AOF's buffers, which eviction
/// cannot shrink (Redis leaves them out too, see freeMemoryGetNotCountedMemory).
pub fn counted(server: &Server) -> usize {
    used().saturating_sub(server.aof.buffer_bytes())
}

fn counted_now(server: &Server) -> usize {
    used_now().saturating_sub(server.aof.buffer_bytes())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Policy {
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    pub fn parse(s: &str) -> Policy {
        match s {
            "allkeys-lru" => Policy::AllKeysLru,
            "allkeys-lfu" => Policy::AllKeysLfu,
            "allkeys-random" => Policy::AllKeysRandom,
            "volatile-lru" => Policy::VolatileLru,
            "volatile-lfu" => Policy::VolatileLfu,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            _ => Policy::NoEviction,
        }
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }
}

/// A sampled key and how good a victim it is (higher: evict first).
struct Candidate {
    db: usize,
    key: Bytes,
    score: u64,
}

/// Samples `n` live keys of `db` (from random shards, a few consecutive keys from each, as
/// Redis's dictGetSomeKeys does) and keeps the best victim in `best`.
fn sample(
    server: &Server,
    policy: Policy,
    db: usize,
    n: usize,
    now: u64,
    best: &mut Option<Candidate>,
) {
    let store = server.store.db(db);
    let now_secs = (now / 1000) as u32;
    let mut taken = 0;
    // From a random shard on, each shard once: a small database leaves most shards empty, and
    // random picks could miss its few keys altogether.
    let start = rand::random::<usize>();
    for i in 0..SHARDS {
        if taken >= n {
            return;
        }
        let shard = store.shard(start.wrapping_add(i) % SHARDS).read();
        let len = shard.len();
        if len == 0 || (policy.volatile_only() && shard.volatile() == 0) {
            continue;
        }
        let skip = rand::random::<usize>() % len;
        for (key, entry) in shard.iter(now).skip(skip).take(n - taken) {
            if policy.volatile_only() && entry.expire_at() == 0 {
                continue;
            }
            let score = match policy {
                Policy::AllKeysLru | Policy::VolatileLru => entry.idle_secs() as u64,
                Policy::AllKeysLfu | Policy::VolatileLfu => 255 - entry.freq(now_secs) as u64,
                Policy::VolatileTtl => u64::MAX - entry.expire_at(),
                _ => rand::random::<u32>() as u64,
            };
            if best.as_ref().is_none_or(|b| score > b.score) {
                *best = Some(Candidate {
                    db,
                    key: key.clone(),
                    score,
                });
            }
            taken += 1;
        }
    }
}

/// Deletes one victim chosen by `policy`; false when there is nothing to evict.
fn evict_one(server: &Server, policy: Policy, samples: usize) -> bool {
    let now = crate::util::now_ms();
    let dbs: Vec<usize> = (0..server.store.db_count())
        .filter(|&d| {
            let db = server.store.db(d);
            if policy.volatile_only() {
                db.volatile() > 0
            } else {
                !db.is_empty()
            }
        })
        .collect();
    if dbs.is_empty() {
        return false;
    }
    let mut best = None;
    let db = dbs[rand::random::<usize>() % dbs.len()];
    sample(server, policy, db, samples, now, &mut best);
    let Some(victim) = best else { return false };
    let store = server.store.db(victim.db);
    let removed = {
        let mut txn = server.aof.begin();
        let mut shard = store.write(&victim.key);
        let removed = shard.evict(&victim.key, now);
        if removed.is_some() {
            if let Some(t) = txn.as_mut() {
                let del: [&[u8]; 2] = [b"DEL", &victim.key];
                t.record(victim.db, now, [del.into_iter()]);
            }
        }
        removed
    };
    if let Some(entry) = removed {
        EVICTED.fetch_add(1, Ordering::Relaxed);
        crate::notify::notify(
            server,
            crate::notify::EVICTED,
            "evicted",
            &victim.key,
            victim.db,
        );
        server.store.add_dirty(1);
        // Freed here and now, not in the background as UNLINK frees: the next reading of
        // used memory must see it, or eviction would go on taking keys it need not.
        drop(entry);
    }
    true
}

/// Still over `maxmemory` once the policy has evicted what it may.
#[derive(Debug)]
pub struct OverLimit;

/// Gets under `maxmemory` by evicting, as far as the policy allows. Ok when under the limit
/// (or no limit is set).
pub fn reclaim(server: &Server) -> Result<(), OverLimit> {
    let limit = server.config.live.maxmemory.load(Ordering::Relaxed);
    if limit == 0 || counted(server) <= limit {
        return Ok(());
    }
    let policy = Policy::parse(&server.config.get("maxmemory-policy"));
    if policy == Policy::NoEviction {
        return Err(OverLimit);
    }
    let samples = server.config.get_i64("maxmemory-samples").clamp(1, 64) as usize;
    // Bounded work per command, as Redis's eviction tenacity bounds it.
    for round in 0..4096 {
        if !evict_one(server, policy, samples) {
            break;
        }
        if round % 16 == 15 && counted_now(server) <= limit {
            return Ok(());
        }
    }
    if counted_now(server) <= limit {
        Ok(())
    } else {
        Err(OverLimit)
    }
}

/// Whether a finished run's outputs may be stored: they are in memory already, so they fit
/// when the server is under the limit once the policy has evicted what it may.
pub fn outputs_fit(server: &Server) -> bool {
    reclaim(server).is_ok()
}
