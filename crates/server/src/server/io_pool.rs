//! Event-loop threads: each runs a single-threaded tokio runtime that owns the connections
//! handed to it, as redis-server's one event loop does, but one per core. A connection stays on
//! its loop for life, so serving it takes no cross-thread wake-ups or work stealing; the
//! acceptor spreads new connections round-robin.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::runtime::{Builder, Handle};
use tokio::sync::watch;

/// `busy-poll-us`: how long an event loop that has just served requests polls its connections
/// before it sleeps waiting for events. While it polls, clients' packets arrive without having
/// to wake it, so their sends skip the cost of a wake-up (tens of microseconds of the sender's
/// time on a virtual machine); the poll ends as soon as a connection has data. It pays off when
/// many clients keep the loop busy. A loop that served nothing since it last waited, that
/// serves a single connection (a lone client's next request is a round trip away), or that has
/// submitted model runs in the last millisecond (their workers need the cores, and their
/// results come back through a wake-up the poll cannot see) sleeps at once.
pub static BUSY_POLL_US: AtomicU64 = AtomicU64::new(20);

thread_local! {
    /// Whether this event loop served a batch of requests since it last went idle.
    static SERVED: Cell<bool> = const { Cell::new(false) };
    /// Connections this event loop serves.
    static CONNECTIONS: Cell<usize> = const { Cell::new(0) };
    /// This loop's connections in a level-triggered epoll set of their own, which the busy
    /// poll asks without blocking whether any has data (the runtime's own set is not exposed).
    static ARRIVALS: Arrivals = Arrivals::new();
}

struct Arrivals(i32);

impl Arrivals {
    fn new() -> Arrivals {
        // SAFETY: plain system call; a negative result means no set, and no busy poll.
        Arrivals(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
    }

    /// True when a watched connection has unread data (or there is no set to ask).
    fn any(&self) -> bool {
        if self.0 < 0 {
            return true;
        }
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }];
        // SAFETY: `ev` has room for the one event asked for.
        unsafe { libc::epoll_wait(self.0, ev.as_mut_ptr(), 1, 0) != 0 }
    }
}

impl Drop for Arrivals {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: the descriptor is ours and closed once.
            unsafe { libc::close(self.0) };
        }
    }
}

/// A connection counted on its event loop until dropped.
pub struct Watched;

impl Drop for Watched {
    fn drop(&mut self) {
        CONNECTIONS.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Adds a connection's socket to this event loop's busy-poll set and count (call on the loop
/// that serves it; keep the guard while it does). The kernel drops the socket from the set when
/// it is closed.
pub fn watch(fd: i32) -> Watched {
    CONNECTIONS.with(|c| c.set(c.get() + 1));
    ARRIVALS.with(|a| {
        if a.0 >= 0 && fd >= 0 {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: fd as u64,
            };
            // SAFETY: both descriptors are open; a failure only means no early end of a poll.
            unsafe { libc::epoll_ctl(a.0, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        }
    });
    Watched
}

/// Notes that this event loop served requests (called once per batch of a connection).
pub fn note_served() {
    SERVED.with(|s| s.set(true));
}

/// Time each event loop spent serving (between waking and going idle), for the metrics'
/// `locus_event_loop_busy_seconds_total`: its rate is the loop's busy ratio.
pub static LOOP_BUSY: parking_lot::Mutex<Vec<std::sync::Arc<AtomicU64>>> =
    parking_lot::Mutex::new(Vec::new());

thread_local! {
    /// This loop's busy counter (nanoseconds) and when it last woke.
    static BUSY: std::cell::RefCell<Option<(std::sync::Arc<AtomicU64>, quanta::Instant)>> =
        const { std::cell::RefCell::new(None) };
}

/// The event loops' unpark hook: notes when the loop woke.
pub fn on_unpark() {
    BUSY.with(|b| {
        let mut b = b.borrow_mut();
        let now = crate::util::instant();
        match b.as_mut() {
            Some((_, woke)) => *woke = now,
            None => {
                let counter = std::sync::Arc::new(AtomicU64::new(0));
                LOOP_BUSY.lock().push(counter.clone());
                *b = Some((counter, now));
            }
        }
    });
}

/// Adds the time since the loop woke to its busy counter.
fn note_idle() {
    BUSY.with(|b| {
        if let Some((counter, woke)) = b.borrow().as_ref() {
            let ns = crate::util::instant().duration_since(*woke).as_nanos() as u64;
            counter.fetch_add(ns, Ordering::Relaxed);
        }
    });
}

/// The event loops' park hook: the engine's bookkeeping, then the busy poll.
pub fn on_park() {
    note_idle();
    crate::engine::event_loop_idle(&|| ARRIVALS.with(Arrivals::any));
    let served = SERVED.with(|s| s.replace(false));
    let us = BUSY_POLL_US.load(Ordering::Relaxed);
    if served
        && us > 0
        && CONNECTIONS.with(|c| c.get()) >= 2
        && crate::engine::loop_models_quiet(std::time::Duration::from_millis(1))
    {
        let limit = std::time::Duration::from_micros(us);
        ARRIVALS.with(|a| crate::util::spin_until(limit, || a.any()));
    }
}

pub struct IoPool {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: watch::Sender<bool>,
    threads: parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl IoPool {
    /// Starts `extra` event-loop threads besides the caller's runtime `main` (which is loop 0).
    pub fn start(main: Handle, extra: usize) -> std::io::Result<IoPool> {
        let (stop, _) = watch::channel(false);
        let mut handles = vec![main];
        let mut threads = Vec::new();
        for i in 0..extra {
            let rt = Builder::new_current_thread()
                .enable_all()
                .on_thread_park(on_park)
                .on_thread_unpark(on_unpark)
                .build()?;
            handles.push(rt.handle().clone());
            let mut rx = stop.subscribe();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("locus-io-{}", i + 1))
                    .spawn(move || {
                        rt.block_on(async move {
                            let _ = rx.wait_for(|s| *s).await;
                        });
                    })?,
            );
        }
        Ok(IoPool {
            handles,
            next: AtomicUsize::new(0),
            stop,
            threads: parking_lot::Mutex::new(threads),
        })
    }

    /// Runs `fut` on the next event loop.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(fut);
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Stops the extra loops (their remaining tasks are dropped) and joins them.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}
