//! The keyspace: numbered databases of sharded maps, expiry, and the counters persistence and
//! INFO read. Knows nothing of sockets or RESP.

mod db;
pub mod gate;
pub mod geohash;
pub mod glob;
pub mod hash;
pub mod hll;
pub mod keyed;
pub mod stream;
pub mod value;
pub mod zset;

pub use db::{Db, KeyMap, MultiGuard, MultiReadGuard, Shard, EXPIRED_KEYS, SHARDS};
pub use value::{Entry, HashValue, Value, LFU};

use parking_lot::RwLockWriteGuard;
use std::sync::atomic::{AtomicU64, Ordering};

/// All databases plus keyspace-wide counters.
pub struct Store {
    dbs: Vec<Db>,
    /// Writes since the last snapshot (Redis's `dirty`).
    pub dirty: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    /// The code of every FUNCTION library, kept beside the keyspace so that snapshots and AOF
    /// rewrites carry them (the interpreter that runs them keeps its own copy).
    pub function_libraries: parking_lot::RwLock<Vec<bytes::Bytes>>,
    /// AI.LOG settings per database and key.
    pub request_logs: keyed::KeyedRegistry<crate::request_log::LogSpec>,
    /// AI.MONITOR drift and outlier monitors per database and key.
    pub monitors: keyed::KeyedRegistry<parking_lot::Mutex<locus_engine::monitor::Monitor>>,
    /// AI.SCORE jobs per database and name.
    pub jobs: keyed::KeyedRegistry<locus_engine::score::Job>,
}

impl Store {
    pub fn new(databases: usize) -> Self {
        Store {
            dbs: (0..databases.max(1)).map(Db::numbered).collect(),
            dirty: AtomicU64::new(0),
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
            function_libraries: Default::default(),
            request_logs: Default::default(),
            monitors: Default::default(),
            jobs: Default::default(),
        }
    }

    pub fn db(&self, index: usize) -> &Db {
        &self.dbs[index]
    }

    pub fn db_count(&self) -> usize {
        self.dbs.len()
    }

    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }

    pub fn add_dirty(&self, n: u64) {
        if n > 0 {
            self.dirty.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn hit(&self, found: bool) {
        if found {
            self.keyspace_hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.keyspace_misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// SWAPDB: exchanges the keys of two databases at one instant (every shard of both locked,
    /// in (database, shard) order as every multi-shard lock is taken).
    pub fn swap_dbs(&self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let mut low: Vec<_> = (0..SHARDS).map(|i| self.dbs[lo].shard(i).write()).collect();
        let mut high: Vec<_> = (0..SHARDS).map(|i| self.dbs[hi].shard(i).write()).collect();
        for (x, y) in low.iter_mut().zip(high.iter_mut()) {
            x.swap_keys(y);
        }
    }

    /// Locks the shards of two keys that may live in different databases (MOVE, COPY … DB),
    /// always in (database, shard) order so that concurrent callers cannot deadlock.
    pub fn write_pair(
        &self,
        (db_a, key_a): (usize, &[u8]),
        (db_b, key_b): (usize, &[u8]),
    ) -> PairGuard<'_> {
        let ia = (db_a, self.dbs[db_a].shard_index(key_a));
        let ib = (db_b, self.dbs[db_b].shard_index(key_b));
        if ia == ib {
            return PairGuard::Same(self.dbs[db_a].shard(ia.1).write());
        }
        let (first, second) = if ia < ib { (ia, ib) } else { (ib, ia) };
        let g1 = self.dbs[first.0].shard(first.1).write();
        let g2 = self.dbs[second.0].shard(second.1).write();
        if ia < ib {
            PairGuard::Two(g1, g2)
        } else {
            PairGuard::Two(g2, g1)
        }
    }

    /// One round of active expiry over `budget` shards, starting at `cursor` (a position over
    /// every database's shards). Each shard is locked only while it is swept, so clients wait at
    /// most one shard's sweep. Returns the next cursor.
    pub fn active_expire_step(&self, cursor: usize, budget: usize, now: u64) -> usize {
        let total = self.dbs.len() * SHARDS;
        let mut pos = cursor % total;
        // The budget counts shards that hold keys with an expiry: the empty ones cost a
        // shared lock each, and skipping them at once keeps a sparse keyspace's expiry prompt.
        let mut budget = budget.min(total);
        for _ in 0..total {
            if budget == 0 {
                break;
            }
            let shard = self.dbs[pos / SHARDS].shard(pos % SHARDS);
            if shard.read().volatile() > 0 {
                shard.write().expire_all(now);
                budget -= 1;
            }
            pos = (pos + 1) % total;
        }
        pos
    }
}

/// Write access to the shards of two keys, which may be the same shard.
pub enum PairGuard<'a> {
    Same(RwLockWriteGuard<'a, Shard>),
    Two(RwLockWriteGuard<'a, Shard>, RwLockWriteGuard<'a, Shard>),
}

impl PairGuard<'_> {
    /// The (first key's shard, second key's shard); the same shard twice is refused by the borrow
    /// checker, so callers working in one shard use [`PairGuard::Same`] directly.
    pub fn split(&mut self) -> (&mut Shard, Option<&mut Shard>) {
        match self {
            PairGuard::Same(g) => (g, None),
            PairGuard::Two(a, b) => (a, Some(b)),
        }
    }
}
