//! A call that answers later, polled on whichever thread wakes it.
//!
//! A model run's future waits on the engine: when the engine's worker finishes the batch it
//! wakes the future, and polling it right there (storing the outputs in the call's private
//! database, a hash insert) and unblocking the client saves a hop through another thread
//! (a wake-up and a context switch per request, which on a busy machine costs more than the
//! poll). Timers and blocking tasks the future uses come from the module's runtime, entered
//! for each poll.

use locus::cmd::Deferred;
use locus::server::reply::Reply;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// What receives the call's answer.
type Done = Box<dyn FnOnce(Reply) + Send>;

pub struct Task {
    future: Mutex<Option<Deferred>>,
    /// Woken since the last poll began: whoever holds the future polls it again.
    notified: AtomicBool,
    runtime: tokio::runtime::Handle,
    /// Called once with the answer (it unblocks the client).
    done: Mutex<Option<Done>>,
}

impl Task {
    /// Starts polling `future` on this thread; `done` gets its answer, on the thread that
    /// completes it.
    pub fn start(
        future: Deferred,
        runtime: tokio::runtime::Handle,
        done: impl FnOnce(Reply) + Send + 'static,
    ) -> Arc<Task> {
        let task = Arc::new(Task {
            future: Mutex::new(Some(future)),
            notified: AtomicBool::new(false),
            runtime,
            done: Mutex::new(Some(Box::new(done))),
        });
        task.run();
        task
    }

    /// Drops the call's future (what it queued is skipped, as when a locus-server client goes
    /// away) and answers `reply` in its place, unless it has answered already.
    pub fn cancel(&self, reply: Reply) {
        drop(self.future.lock().take());
        if let Some(done) = self.done.lock().take() {
            done(reply);
        }
    }

    fn run(self: &Arc<Self>) {
        self.notified.store(true, Ordering::Release);
        loop {
            // Another thread is polling: it sees `notified` when its poll ends.
            let Some(mut slot) = self.future.try_lock() else {
                return;
            };
            if !self.notified.swap(false, Ordering::AcqRel) {
                drop(slot);
                // A wake that came while the lock was held found it taken and left the poll
                // to its holder: look again now that it is free.
                if self.notified.load(Ordering::Acquire) {
                    continue;
                }
                return;
            }
            let Some(future) = slot.as_mut() else {
                return;
            };
            let waker = Waker::from(Arc::clone(self));
            let mut cx = Context::from_waker(&waker);
            let polled = {
                let _runtime = self.runtime.enter();
                future.as_mut().poll(&mut cx)
            };
            if let Poll::Ready(reply) = polled {
                *slot = None;
                drop(slot);
                if let Some(done) = self.done.lock().take() {
                    done(reply);
                }
                return;
            }
        }
    }
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.run();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.run();
    }
}
