//! One logical database (`SELECT n`): a fixed set of shards, each a hash map behind its own
//! reader-writer lock, so that connections on different cores rarely meet on the same lock.

use super::value::Entry;
use crate::notify;
use ahash::RandomState;
use bytes::Bytes;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keys removed because they expired, whoever noticed (INFO's `expired_keys`).
pub static EXPIRED_KEYS: AtomicU64 = AtomicU64::new(0);

fn count_expired(n: usize) {
    if n > 0 {
        EXPIRED_KEYS.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Shards per database. A power of two; SCAN cursors are shard indexes.
pub const SHARDS: usize = 256;

pub type KeyMap = HashMap<Bytes, Entry, RandomState>;

/// One shard's keys. Expired keys may linger until they are touched or active expiry reaches
/// them; every accessor here hides them.
#[derive(Default)]
pub struct Shard {
    map: KeyMap,
    /// Keys with an expiry; a hint that lets active expiry skip shards with none.
    volatile: usize,
    /// Versions of the keys clients WATCH; `None` (the common case) costs one branch per write.
    watched: Option<HashMap<Bytes, Watch, RandomState>>,
    /// The database this shard belongs to, for the keyspace events it notices itself (keys
    /// created, keys found expired).
    db: usize,
}

/// A watched key: bumped on every change, so EXEC can tell whether it was touched.
struct Watch {
    version: u64,
    watchers: u32,
}

impl Shard {
    /// Records a change of `key` for its watchers and for clients caching it.
    #[inline]
    fn touch(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.as_mut() {
            if let Some(w) = w.get_mut(key) {
                w.version += 1;
            }
        }
        if crate::tracking::active() {
            crate::tracking::key_changed(key, false);
        }
    }

    /// WATCH: registers one more watcher of `key`; returns its current version. A key that
    /// has already expired is removed first: its later lazy deletion is no change to it.
    pub fn watch(&mut self, key: &Bytes, now: u64) -> u64 {
        self.purge_if_expired(key, now);
        let w = self
            .watched
            .get_or_insert_with(Default::default)
            .entry(key.clone())
            .or_insert(Watch {
                version: 0,
                watchers: 0,
            });
        w.watchers += 1;
        w.version
    }

    /// Drops one watcher of `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        let Some(map) = self.watched.as_mut() else {
            return;
        };
        if let Some(w) = map.get_mut(key) {
            w.watchers -= 1;
            if w.watchers == 0 {
                map.remove(key);
            }
        }
        if map.is_empty() {
            self.watched = None;
        }
    }

    /// The version of a watched key (changes whenever the key does).
    pub fn watch_version(&self, key: &[u8]) -> u64 {
        self.watched
            .as_ref()
            .and_then(|m| m.get(key))
            .map_or(u64::MAX, |w| w.version)
    }

    /// The live entry for `key`, if any.
    pub fn get(&self, key: &[u8], now: u64) -> Option<&Entry> {
        self.map.get(key).filter(|e| !e.is_expired(now))
    }

    /// The live entry for `key` for update, removing it first if it has expired.
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        self.purge_if_expired(key, now);
        self.touch(key);
        self.map.get_mut(key)
    }

    /// Whether `key` is present but expired (so a reader should reclaim it under a write lock).
    pub fn holds_expired(&self, key: &[u8], now: u64) -> bool {
        self.map.get(key).is_some_and(|e| e.is_expired(now))
    }

    pub fn contains(&self, key: &[u8], now: u64) -> bool {
        self.get(key, now).is_some()
    }

    /// Inserts or replaces, returning the previous live entry.
    pub fn insert(&mut self, key: Bytes, entry: Entry, now: u64) -> Option<Entry> {
        self.touch(&key);
        if entry.expire_at != 0 {
            self.volatile += 1;
        }
        let events = notify::wanted(notify::NEW | notify::EXPIRED);
        let name = events.then(|| key.clone());
        let Some(old) = self.map.insert(key, entry) else {
            if let Some(k) = name {
                notify::emit(notify::NEW, "new", &k, self.db);
            }
            return None;
        };
        if old.expire_at != 0 {
            self.volatile -= 1;
        }
        if old.is_expired(now) {
            count_expired(1);
            if let Some(k) = name {
                notify::emit(notify::EXPIRED, "expired", &k, self.db);
                notify::emit(notify::NEW, "new", &k, self.db);
            }
            return None;
        }
        Some(old)
    }

    /// Removes `key`, returning its entry if it was live.
    pub fn remove(&mut self, key: &[u8], now: u64) -> Option<Entry> {
        self.remove_as(key, now, false)
    }

    /// Removes `key` to free memory (eviction): a change no client made.
    pub fn evict(&mut self, key: &[u8], now: u64) -> Option<Entry> {
        self.remove_as(key, now, true)
    }

    fn remove_as(&mut self, key: &[u8], now: u64, by_server: bool) -> Option<Entry> {
        let old = self.map.remove(key)?;
        if old.expire_at != 0 {
            self.volatile -= 1;
        }
        if old.is_expired(now) {
            self.touch_by_server(key);
            count_expired(1);
            notify::emit(notify::EXPIRED, "expired", key, self.db);
            return None;
        }
        if by_server {
            self.touch_by_server(key);
        } else {
            self.touch(key);
        }
        Some(old)
    }

    /// Records a change no client made (expiry, eviction).
    fn touch_by_server(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.as_mut().and_then(|w| w.get_mut(key)) {
            w.version += 1;
        }
        if crate::tracking::active() {
            crate::tracking::key_changed(key, true);
        }
    }

    /// Sets (or clears, with 0) a live key's expiry. Returns false if the key is absent.
    pub fn set_expire(&mut self, key: &[u8], at: u64, now: u64) -> bool {
        self.purge_if_expired(key, now);
        if !self.map.contains_key(key) {
            return false;
        }
        self.touch(key);
        let Some(e) = self.map.get_mut(key) else {
            return false;
        };
        match (e.expire_at != 0, at != 0) {
            (false, true) => self.volatile += 1,
            (true, false) => self.volatile -= 1,
            _ => {}
        }
        e.expire_at = at;
        true
    }

    fn purge_if_expired(&mut self, key: &[u8], now: u64) {
        if self.map.get(key).is_some_and(|e| e.is_expired(now)) {
            self.remove(key, now);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The database this shard belongs to (for keyspace events).
    pub fn db_index(&self) -> usize {
        self.db
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn volatile(&self) -> usize {
        self.volatile
    }

    /// Live entries, in the shard's order.
    pub fn iter(&self, now: u64) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.map.iter().filter(move |(_, e)| !e.is_expired(now))
    }

    /// Drops every expired key; returns how many went.
    pub fn expire_all(&mut self, now: u64) -> usize {
        let before = self.map.len();
        let mut gone_volatile = 0;
        let watched = &mut self.watched;
        let db = self.db;
        let events = notify::wanted(notify::EXPIRED);
        let tracking = crate::tracking::active();
        self.map.retain(|k, e| {
            let keep = !e.is_expired(now);
            if !keep {
                if events {
                    notify::emit(notify::EXPIRED, "expired", k, db);
                }
                if tracking {
                    crate::tracking::key_changed(k, true);
                }
                gone_volatile += 1;
                if let Some(w) = watched.as_mut().and_then(|w| w.get_mut(k)) {
                    w.version += 1;
                }
            }
            keep
        });
        self.volatile -= gone_volatile;
        count_expired(before - self.map.len());
        before - self.map.len()
    }

    /// SWAPDB: exchanges this shard's keys with `other`'s. The watchers on either side see a
    /// change to every key that exists there before or after, as Redis's
    /// touchAllWatchedKeysInDb makes it.
    pub fn swap_keys(&mut self, other: &mut Shard) {
        std::mem::swap(&mut self.map, &mut other.map);
        std::mem::swap(&mut self.volatile, &mut other.volatile);
        self.touch_present(other);
        other.touch_present(self);
    }

    /// Bumps the version of every watched key present here or in `other`.
    fn touch_present(&mut self, other: &Shard) {
        if let Some(w) = self.watched.as_mut() {
            for (k, w) in w.iter_mut() {
                if self.map.contains_key(k) || other.map.contains_key(k) {
                    w.version += 1;
                }
            }
        }
    }

    pub fn clear(&mut self) -> KeyMap {
        self.volatile = 0;
        if let Some(w) = self.watched.as_mut() {
            for (k, w) in w.iter_mut() {
                if self.map.contains_key(k) {
                    w.version += 1;
                }
            }
        }
        std::mem::take(&mut self.map)
    }
}

/// A database: `SHARDS` shards chosen by key hash.
pub struct Db {
    shards: Box<[RwLock<Shard>]>,
}

/// A fixed hash of a key for choosing its shard: the same on every machine and in every run,
/// so a key's shard (the order SCAN and scoring jobs walk the keyspace in, and a scoring
/// job's checkpoint) survives restarts. Each shard's map keeps its own random seed.
#[inline]
pub fn shard_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut h = key.len() as u64;
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(b));
    }
    // MurmurHash3's finalizer: every input bit reaches the top bits that pick the shard.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl Default for Db {
    fn default() -> Self {
        Db::new()
    }
}

impl Db {
    pub fn new() -> Self {
        Db::numbered(0)
    }

    /// Database `index` (its shards name it in the keyspace events they notice).
    pub fn numbered(index: usize) -> Self {
        Db {
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        db: index,
                        ..Shard::default()
                    })
                })
                .collect(),
        }
    }

    /// Index of the shard that owns `key`.
    pub fn shard_index(&self, key: &[u8]) -> usize {
        (shard_hash(key) >> (64 - SHARDS.trailing_zeros())) as usize
    }

    pub fn read(&self, key: &[u8]) -> RwLockReadGuard<'_, Shard> {
        self.shards[self.shard_index(key)].read()
    }

    pub fn write(&self, key: &[u8]) -> RwLockWriteGuard<'_, Shard> {
        self.shards[self.shard_index(key)].write()
    }

    /// Removes `key` if it has expired: readers call this after seeing an expired key under a
    /// shared lock, so expired keys go (and are counted) when read, as in Redis.
    pub fn reclaim(&self, key: &[u8], now: u64) {
        self.write(key).purge_if_expired(key, now);
    }

    pub fn shard(&self, index: usize) -> &RwLock<Shard> {
        &self.shards[index]
    }

    /// Write-locks every shard that owns one of `keys`, in index order so that two multi-key
    /// commands can never deadlock; the result answers for any of those keys.
    pub fn write_many<'a, K: AsRef<[u8]>>(&'a self, keys: &[K]) -> MultiGuard<'a> {
        let mut idx: Vec<usize> = keys.iter().map(|k| self.shard_index(k.as_ref())).collect();
        idx.sort_unstable();
        idx.dedup();
        let guards = idx.iter().map(|&i| (i, self.shards[i].write())).collect();
        MultiGuard { db: self, guards }
    }

    /// Read-locks every shard that owns one of `keys` (in index order), for multi-key reads that
    /// must see one consistent state, like MGET racing an MSET.
    pub fn read_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> MultiReadGuard<'_> {
        let mut idx: Vec<usize> = keys.iter().map(|k| self.shard_index(k.as_ref())).collect();
        idx.sort_unstable();
        idx.dedup();
        let guards = idx.iter().map(|&i| (i, self.shards[i].read())).collect();
        MultiReadGuard { db: self, guards }
    }

    /// Number of keys (expired keys not yet reclaimed included, as Redis counts them).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.read().is_empty())
    }

    pub fn volatile(&self) -> usize {
        self.shards.iter().map(|s| s.read().volatile()).sum()
    }

    /// Empties the database, returning the old maps so the caller can drop them elsewhere
    /// (FLUSHALL ASYNC frees memory off the client's thread).
    pub fn clear(&self) -> Vec<KeyMap> {
        self.shards
            .iter()
            .map(|s| s.write().clear())
            .filter(|m| !m.is_empty())
            .collect()
    }
}

/// Write guards over several shards of one database.
pub struct MultiGuard<'a> {
    db: &'a Db,
    guards: Vec<(usize, RwLockWriteGuard<'a, Shard>)>,
}

impl MultiGuard<'_> {
    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let i = self.db.shard_index(key);
        let pos = self
            .guards
            .binary_search_by_key(&i, |(j, _)| *j)
            .expect("key's shard is locked");
        &mut self.guards[pos].1
    }
}

/// Read guards over several shards of one database.
pub struct MultiReadGuard<'a> {
    db: &'a Db,
    guards: Vec<(usize, RwLockReadGuard<'a, Shard>)>,
}

impl MultiReadGuard<'_> {
    pub fn shard(&self, key: &[u8]) -> &Shard {
        let i = self.db.shard_index(key);
        let pos = self
            .guards
            .binary_search_by_key(&i, |(j, _)| *j)
            .expect("key's shard is locked");
        &self.guards[pos].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_hash_is_fixed_and_spreads_keys() {
        // Fixed values: a key's shard must not change between builds or machines.
        assert_eq!(shard_hash(b""), 0);
        assert_eq!(shard_hash(b"user:1"), 9043426452499376335);
        let db = Db::new();
        let mut counts = vec![0usize; SHARDS];
        for i in 0..256_000 {
            counts[db.shard_index(format!("user:{i}").as_bytes())] += 1;
        }
        // About 1,000 keys a shard; none far off.
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
