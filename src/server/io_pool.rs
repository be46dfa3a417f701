//! Event-loop threads: each runs a single-threaded tokio runtime that owns the connections
//! handed to it, as redis-server's one event loop does, but one per core. A connection stays on
//! its loop for life, so serving it takes no cross-thread wake-ups or work stealing; the
//! acceptor spreads new connections round-robin.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::{Builder, Handle};
use tokio::sync::watch;

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
                .on_thread_park(crate::engine::event_loop_idle)
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
