//! Values held in the keyspace and the entry that wraps them with expiry and access metadata.

use crate::tensor::Tensor;
use ahash::RandomState;
use bytes::Bytes;
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

pub use super::hash::HashValue;

/// A value of any Redis or Locus type. Binary-safe: strings are raw bytes, never `String`.
#[derive(Clone, Debug)]
pub enum Value {
    Str(Bytes),
    Hash(Box<HashValue>),
    List(Box<std::collections::VecDeque<Bytes>>),
    Set(Box<std::collections::HashSet<Bytes, RandomState>>),
    ZSet(Box<super::zset::ZSet>),
    Stream(Box<super::stream::Stream>),
    /// Shared so that model runs and replies read it while a writer swaps in a new one.
    Tensor(Arc<Tensor>),
    /// A stored model with its versions. Changes swap in a whole new state (see
    /// `VersionedModel`); runs hold their own reference to their version's model, so changing
    /// or deleting the key while a run is in flight is safe, and runs still queued for a
    /// version are dropped once no key holds that version.
    Model(Arc<crate::engine::versions::VersionedModel>),
    /// A router: its definition is fixed; its weights and statistics change in place under
    /// its own lock (see `locus_engine::router`), so requests in flight record into it.
    Router(Arc<locus_engine::router::Router>),
}

impl Value {
    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
            Value::Tensor(_) => "AI__TENSOR",
            Value::Model(_) => "AI__MODEL",
            Value::Router(_) => "AI__ROUTER",
        }
    }

    /// The name `OBJECT ENCODING` answers, following Redis's rules for strings.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(b) => {
                if b.len() <= 20 && crate::util::parse_i64(b).is_some() {
                    "int"
                } else if b.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::Hash(h) => h.encoding(),
            // Redis 7.0 keeps every list as a quicklist (listpack lists came in 7.2).
            Value::List(_) => "quicklist",
            // And sets as an intset while all members are integers, else a hash table.
            Value::Set(s) => {
                if s.len() <= limit(&SET_MAX_INTSET_ENTRIES)
                    && s.iter().all(|v| crate::util::parse_i64(v).is_some())
                {
                    "intset"
                } else {
                    "hashtable"
                }
            }
            Value::ZSet(z) => {
                let entries = limit(&ZSET_MAX_LISTPACK_ENTRIES);
                let value = limit(&ZSET_MAX_LISTPACK_VALUE);
                if z.len() <= entries && z.iter().all(|(m, _)| m.len() <= value) {
                    "listpack"
                } else {
                    "skiplist"
                }
            }
            Value::Stream(_) => "stream",
            Value::Tensor(_) | Value::Model(_) | Value::Router(_) => "raw",
        }
    }

    /// Approximate heap bytes owned by the value (for `MEMORY USAGE` and accounting).
    pub fn memory_usage(&self) -> usize {
        match self {
            Value::Str(b) => b.len() + 32,
            Value::Hash(h) => h.memory_usage(),
            Value::List(l) => l.iter().map(|v| v.len() + 32).sum::<usize>() + 48,
            Value::Set(s) => s.iter().map(|v| v.len() + 48).sum::<usize>() + 48,
            Value::ZSet(z) => z.memory_usage(),
            Value::Stream(s) => s.memory_usage(),
            Value::Tensor(t) => t.memory_usage(),
            Value::Model(m) => m.memory_usage(),
            Value::Router(r) => 512 + r.def.targets.len() * (1024 * 8 + 256),
        }
    }
}

/// A key's slot in the keyspace: the value, its absolute expiry and the last access time.
#[derive(Debug)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 means the key is persistent. Change it only through
    /// [`crate::store::Shard::set_expire`] so that the shard's count of volatile keys stays right.
    pub(crate) expire_at: u64,
    /// Seconds since server start of the last access, for `OBJECT IDLETIME`. Atomic so that
    /// readers holding only a shared lock can record their access.
    access: AtomicU32,
    /// Set once a string is modified in place (APPEND, SETRANGE): Redis reports such strings as
    /// `raw` whatever their length.
    pub(crate) modified: bool,
    /// Redis's LFU counter (logarithmic, decaying), kept while an LFU policy is selected.
    freq: AtomicU8,
}

/// Redis's encoding thresholds (`hash-max-listpack-entries` and the like), as configured: OBJECT
/// ENCODING answers with the encoding Redis would give a value like this one.
pub static HASH_MAX_LISTPACK_ENTRIES: AtomicUsize = AtomicUsize::new(512);
pub static HASH_MAX_LISTPACK_VALUE: AtomicUsize = AtomicUsize::new(64);
pub static SET_MAX_INTSET_ENTRIES: AtomicUsize = AtomicUsize::new(512);
pub static ZSET_MAX_LISTPACK_ENTRIES: AtomicUsize = AtomicUsize::new(128);
pub static ZSET_MAX_LISTPACK_VALUE: AtomicUsize = AtomicUsize::new(64);

pub(super) fn limit(a: &AtomicUsize) -> usize {
    a.load(Ordering::Relaxed)
}

/// Whether an LFU `maxmemory-policy` is selected: only then are access frequencies counted.
pub static LFU: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Redis's defaults: new keys start at 5; `lfu-log-factor` 10; `lfu-decay-time` 1 minute.
const LFU_INIT: u8 = 5;
const LFU_LOG_FACTOR: f64 = 10.0;

impl Clone for Entry {
    fn clone(&self) -> Self {
        Entry {
            value: self.value.clone(),
            expire_at: self.expire_at,
            access: AtomicU32::new(self.access.load(Ordering::Relaxed)),
            modified: self.modified,
            freq: AtomicU8::new(self.freq.load(Ordering::Relaxed)),
        }
    }
}

impl Entry {
    pub fn new(value: Value) -> Self {
        Entry {
            value,
            expire_at: 0,
            access: AtomicU32::new(crate::util::clock_secs()),
            modified: false,
            freq: AtomicU8::new(LFU_INIT),
        }
    }

    pub fn with_expiry(value: Value, expire_at: u64) -> Self {
        Entry {
            expire_at,
            ..Entry::new(value)
        }
    }

    /// `OBJECT ENCODING`.
    pub fn encoding(&self) -> &'static str {
        match &self.value {
            Value::Str(_) if self.modified => "raw",
            v => v.encoding(),
        }
    }

    /// Marks a string as modified in place.
    pub fn mark_modified(&mut self) {
        self.modified = true;
    }

    pub fn expire_at(&self) -> u64 {
        self.expire_at
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }

    /// Records an access at `now_ms` (the command's clock; no clock read here).
    pub fn touch(&self, now_ms: u64) {
        let secs = (now_ms / 1000) as u32;
        if LFU.load(Ordering::Relaxed) {
            self.lfu_access(secs);
        }
        // Skip the store when nothing changes, so readers on many cores do not fight over the
        // cache line.
        if self.access.load(Ordering::Relaxed) != secs {
            self.access.store(secs, Ordering::Relaxed);
        }
    }

    /// The LFU counter after decay: one step down per minute since the last access.
    pub fn freq(&self, now_secs: u32) -> u8 {
        let idle_min = now_secs.saturating_sub(self.access.load(Ordering::Relaxed)) / 60;
        self.freq
            .load(Ordering::Relaxed)
            .saturating_sub(idle_min.min(255) as u8)
    }

    /// Redis's LFULogIncr after decay: the more accesses counted, the less likely the next one
    /// moves the counter.
    fn lfu_access(&self, now_secs: u32) {
        let mut c = self.freq(now_secs);
        if c < 255 {
            let base = c.saturating_sub(LFU_INIT) as f64;
            if rand::random::<f64>() < 1.0 / (base * LFU_LOG_FACTOR + 1.0) {
                c += 1;
            }
        }
        self.freq.store(c, Ordering::Relaxed);
    }

    /// RESTORE's FREQ or IDLETIME (Redis's objectSetLRUOrLFU): the frequency counts under an
    /// LFU policy, the idle time under any other.
    pub fn set_lru_or_lfu(&self, freq: Option<u8>, idle_secs: Option<u64>) {
        if LFU.load(Ordering::Relaxed) {
            if let Some(f) = freq {
                self.freq.store(f, Ordering::Relaxed);
            }
        } else if let Some(idle) = idle_secs {
            let now = crate::util::clock_secs();
            self.access.store(
                now.saturating_sub(idle.min(u32::MAX as u64) as u32),
                Ordering::Relaxed,
            );
        }
    }

    pub fn idle_secs(&self) -> u32 {
        crate::util::clock_secs().saturating_sub(self.access.load(Ordering::Relaxed))
    }
}
