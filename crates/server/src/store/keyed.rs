//! Settings attached to a key name in a database (AI.LOG, AI.MONITOR), looked up on the run
//! path: a server with none pays one atomic load per run.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Database index -> key -> entry: looked up by a borrowed key, without allocating.
type Map<T> = HashMap<usize, HashMap<Bytes, Arc<T>>>;

pub struct KeyedRegistry<T> {
    map: parking_lot::RwLock<Map<T>>,
    /// Whether anything is registered.
    any: AtomicBool,
}

impl<T> Default for KeyedRegistry<T> {
    fn default() -> Self {
        KeyedRegistry {
            map: Default::default(),
            any: AtomicBool::new(false),
        }
    }
}

impl<T> KeyedRegistry<T> {
    pub fn get(&self, db: usize, key: &[u8]) -> Option<Arc<T>> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        self.map.read().get(&db)?.get(key).cloned()
    }

    pub fn set(&self, db: usize, key: Bytes, value: T) {
        self.map
            .write()
            .entry(db)
            .or_default()
            .insert(key, Arc::new(value));
        self.any.store(true, Ordering::Relaxed);
    }

    /// Registers an entry the caller keeps a handle to.
    pub fn insert(&self, db: usize, key: Bytes, value: Arc<T>) {
        self.map.write().entry(db).or_default().insert(key, value);
        self.any.store(true, Ordering::Relaxed);
    }

    /// Entries of database `db`.
    pub fn count(&self, db: usize) -> usize {
        self.map.read().get(&db).map_or(0, |m| m.len())
    }

    pub fn remove(&self, db: usize, key: &[u8]) -> bool {
        let mut m = self.map.write();
        let removed = m
            .get_mut(&db)
            .is_some_and(|keys| keys.remove(key).is_some());
        m.retain(|_, keys| !keys.is_empty());
        self.any.store(!m.is_empty(), Ordering::Relaxed);
        removed
    }

    /// Forgets the entries of one database (FLUSHDB) or of all (FLUSHALL).
    pub fn clear(&self, db: Option<usize>) {
        let mut m = self.map.write();
        m.retain(|d, _| db.is_some_and(|x| x != *d));
        self.any.store(!m.is_empty(), Ordering::Relaxed);
    }

    /// SWAPDB: the entries of two databases change places with their keys.
    pub fn swap(&self, a: usize, b: usize) {
        let mut m = self.map.write();
        let x = m.remove(&a);
        let y = m.remove(&b);
        if let Some(x) = x {
            m.insert(b, x);
        }
        if let Some(y) = y {
            m.insert(a, y);
        }
    }

    pub fn all(&self) -> Vec<(usize, Bytes, Arc<T>)> {
        self.map
            .read()
            .iter()
            .flat_map(|(d, keys)| keys.iter().map(|(k, v)| (*d, k.clone(), Arc::clone(v))))
            .collect()
    }
}
