//! Writes the server makes on its own, for a host that runs commands in stand-in databases
//! (the Redis module) to apply to its own keyspace.
//!
//! The Redis module runs each command in a database of the embedded keyspace lent for the
//! call (a stand-in) and copies the command's keys back to Redis. Per-database settings
//! (AI.LOG, AI.MONITOR) and the streams the server appends to by itself (request logs,
//! alerts) belong to the Redis database the stand-in serves, not to the stand-in: the host
//! names that database when it lends one ([`Outbox::lend`]), and with the outbox on, stream
//! entries and alert messages queue here until the host's thread applies them ([`Outbox::drain`]).
//! locus-server leaves the outbox off: each database is its own home and writes go straight
//! into the store.

use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A write for the host to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Forward {
    /// `XADD key MAXLEN maxlen * fields…` in database `db` (no bound when `maxlen` is 0).
    Entry {
        db: usize,
        key: Bytes,
        maxlen: u64,
        fields: Vec<Bytes>,
    },
    /// `PUBLISH channel message`.
    Publish { channel: Bytes, message: Bytes },
}

/// Writes queued for the host, and the home database of each stand-in.
#[derive(Default)]
pub struct Outbox {
    on: AtomicBool,
    homes: OnceLock<Vec<AtomicUsize>>,
    queue: Mutex<Vec<Forward>>,
    /// Whether `queue` may hold writes: the host looks after every call, without the lock.
    queued: AtomicBool,
}

impl Outbox {
    /// Turns forwarding on for a host with `databases` stand-ins.
    pub fn enable(&self, databases: usize) {
        let _ = self
            .homes
            .set((0..databases).map(|_| AtomicUsize::new(0)).collect());
        self.on.store(true, Ordering::Release);
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Lends stand-in `db` to a call in the host's database `home`.
    pub fn lend(&self, db: usize, home: usize) {
        if let Some(h) = self.homes.get().and_then(|h| h.get(db)) {
            h.store(home, Ordering::Relaxed);
        }
    }

    /// The database whose settings and streams a call in database `db` uses.
    pub fn home(&self, db: usize) -> usize {
        match self.homes.get().and_then(|h| h.get(db)) {
            Some(h) => h.load(Ordering::Relaxed),
            None => db,
        }
    }

    pub fn push(&self, f: Forward) {
        self.queue.lock().push(f);
        self.queued.store(true, Ordering::Release);
    }

    /// Takes the queued writes, oldest first.
    pub fn drain(&self) -> Vec<Forward> {
        let mut q = self.queue.lock();
        self.queued.store(false, Ordering::Release);
        std::mem::take(&mut *q)
    }

    /// Whether writes wait (one atomic load).
    pub fn pending(&self) -> bool {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_each_database_is_its_own_home() {
        let o = Outbox::default();
        assert_eq!(o.home(7), 7);
        o.lend(7, 2);
        assert_eq!(o.home(7), 7);
        assert!(!o.is_on());
    }

    #[test]
    fn on_a_stand_in_serves_the_home_it_was_lent_for() {
        let o = Outbox::default();
        o.enable(4);
        o.lend(3, 9);
        assert_eq!(o.home(3), 9);
        assert_eq!(o.home(1), 0);
        o.push(Forward::Publish {
            channel: Bytes::from_static(b"c"),
            message: Bytes::from_static(b"m"),
        });
        assert!(o.pending());
        assert_eq!(o.drain().len(), 1);
        assert!(!o.pending());
    }
}
