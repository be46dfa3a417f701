//! The isolation gate MULTI/EXEC needs: every command runs holding one stripe of it shared, and
//! EXEC holds all stripes exclusively, so no other connection sees a transaction half done or
//! changes a key in the middle of one. Each thread has its own stripe (a cache line of its own),
//! so ordinary commands on many cores never contend on it.

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::sync::atomic::{AtomicUsize, Ordering};

const STRIPES: usize = 64;

#[repr(align(64))]
#[derive(Default)]
struct Stripe(RwLock<()>);

pub struct Gate {
    stripes: Box<[Stripe]>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }
}

fn my_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

impl Gate {
    /// Held while one command runs.
    pub fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.stripes[my_stripe()].0.read()
    }

    /// The stripe if no transaction or script holds the gate; `None` at once otherwise.
    pub fn try_shared(&self) -> Option<RwLockReadGuard<'_, ()>> {
        self.stripes[my_stripe()].0.try_read()
    }

    /// The stripe, waiting up to `wait` for a transaction or script to let go.
    pub fn shared_within(&self, wait: std::time::Duration) -> Option<RwLockReadGuard<'_, ()>> {
        self.stripes[my_stripe()].0.try_read_for(wait)
    }

    /// Held while a transaction runs: waits for every running command, holds off the rest.
    pub fn exclusive(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.stripes.iter().map(|s| s.0.write()).collect()
    }
}
